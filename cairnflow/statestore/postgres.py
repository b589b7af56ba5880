"""The PostgreSQL checkpoint store: the store several machines share.

``PostgresStore`` implements ``StateStore`` over the same tables as the SQLite
store (``cairnflow.statestore.models``, with BIGINT keys), with the policy of
``cairnflow.statestore.postgres_policy``. It shares the SQLite store's plan of
rows for a batch of transitions (``sqlite_batch.plan_transitions``) and its
read queries (``sqlite_rows``, through a placeholder-translating cursor); what
is PostgreSQL's own is how a batch is sent (``postgres_batch``: multi-row
statements in one pipeline), row locks for claims, and results: every result,
large or small, is kept in the database (``bytea``), which every machine that
reaches the store reaches too (see docs/postgres.md).

Concurrent ``record_transitions`` calls from several threads are committed
together: while one thread's transaction is in flight the others' batches
queue, and the next transaction carries them all (a group commit). Each call
still returns only once its own batch is committed, and a batch that fails on
its own fails alone.

Example:
    >>> import os
    >>> from cairnflow.statestore.postgres import PostgresStore
    >>> url = os.environ.get("CAIRNFLOW_TEST_PG_URL")
    >>> store = PostgresStore(url) if url else None  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pendulum

from cairnflow.exceptions import (
    FencedOutError, ResultNotFoundError, StoreError, UnknownRunError,
)
from cairnflow.statestore import postgres_policy as policy
from cairnflow.statestore import sqlite_rows as rows
from cairnflow.statestore.base import (
    FlowInfo, FlowRunInfo, FlowRunRecord, LogEntry, ResumeData, StateStore, TaskKey,
    TaskRunInfo, Transition, check_claim, fenced_out_message, require_aware,
)
from cairnflow.statestore.postgres_batch import execute_plan, insert_logs, refuse_logs
from cairnflow.statestore.postgres_orch import OrchestrationPG
from cairnflow.statestore.postgres_policy import Cursor, display_url
from cairnflow.statestore.serialize import SerializedResult
from cairnflow.statestore.sqlite_batch import NOT_MAPPED, RunCaches, StaleCache, plan_transitions
from cairnflow.statestore.sqlite_orch import delete_runs_by_id, prune_finished
from cairnflow.statestore.sqlite_rows import ts

__all__ = ["PostgresStore"]

T = TypeVar("T")

_HEARTBEAT = ("UPDATE flow_run SET updated_at = %s WHERE id = %s "
              "AND (%s::integer IS NULL OR attempt = %s::integer)")


class _Batch:
    """One ``record_transitions`` call waiting in the group commit."""

    __slots__ = ("transitions", "logs", "done", "error")

    def __init__(self, transitions: Sequence[Transition], logs: Sequence[LogEntry] = ()
                 ) -> None:
        self.transitions = transitions
        self.logs = logs
        self.done = False
        self.error: BaseException | None = None


class PostgresStore(OrchestrationPG, StateStore):
    """A ``StateStore`` in a PostgreSQL database, shared by processes on many hosts.

    Args:
        url: ``postgresql+psycopg://user:password@host:port/dbname`` (or
            ``postgresql://...``); libpq options may follow ``?``.
        readonly: read only: never create the schema, every transaction read-only.
            A database without a cairnflow schema reads as an empty store.

    Raises:
        StoreError: the server cannot be reached, or the database holds tables
            that are not a cairnflow store's.
        SchemaVersionError: the database was written by a newer cairnflow.
    """

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.where = display_url(url)
        self.readonly = readonly
        self._lock = threading.Lock()  # the connection: one transaction at a time
        self._queue: list[_Batch] = []
        self._queue_lock = threading.Lock()
        self._runs = RunCaches()
        self._closed = False
        self._conn: Any = None
        self._empty = False  # read-only, and the database has no schema (yet)
        self._psycopg = policy.psycopg_module()
        self._guarded("open", self._open)

    # -- connection ---------------------------------------------------------------

    def _open(self) -> None:
        conn = policy.connect(self.url, readonly=self.readonly)
        try:
            if self.readonly:
                with conn.cursor() as cur:
                    self._empty = not policy.check_schema_readable(cur, self.where)
                conn.rollback()
            else:
                policy.ensure_schema(conn, self.where)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _connection(self) -> Any:
        """The open connection, reopened if the last one broke."""
        if self._closed:
            raise StoreError("this cairnflow store is closed")
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._conn = None
            self._runs.clear()
            self._open()
            conn = self._conn
        return conn

    def _guarded(self, doing: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, with psycopg's errors as ``StoreError``."""
        psycopg = self._psycopg
        try:
            return fn(*args)
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise StoreError(f"the cairnflow database {self.where} was opened read-only"
                             ) from exc
        except psycopg.IntegrityError as exc:
            raise StoreError(f"the cairnflow database {self.where} refused a write: "
                             f"{_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot {doing} the cairnflow database {self.where}: "
                             f"{_first_line(exc)}") from exc

    def _transact(self, fn: Callable[[Cursor | None], T], *, write: bool,
                  doing: str = "write to") -> T:
        """``fn(cursor)`` in one transaction under the store's lock; commit or roll back."""
        if write and self.readonly:
            raise StoreError(f"the cairnflow database {self.where} was opened read-only")
        with self._lock:
            return self._guarded(doing, self._in_transaction, fn)

    def _in_transaction(self, fn: Callable[[Cursor | None], T]) -> T:
        conn = self._connection()
        if self._empty:  # a reader that found no schema: look again, it may be there now
            with conn.cursor() as cur:
                self._empty = not policy.check_schema_readable(cur, self.where)
            conn.rollback()
            if self._empty:
                return fn(None)
        try:
            with conn.cursor() as raw:
                result = fn(Cursor(raw))
            conn.commit()
        except BaseException:
            self._rollback(conn)
            raise
        return result

    @staticmethod
    def _rollback(conn: Any) -> None:
        if not conn.closed and not conn.broken:
            conn.rollback()

    def _read(self, fn: Callable[[Cursor | None], T]) -> T:
        return self._transact(fn, write=False, doing="read")

    # -- writes -----------------------------------------------------------------

    def record_flow_run(self, run: FlowRunRecord,
                        transitions: Sequence[Transition] = ()) -> None:
        values = rows.flow_run_values(run, ts(pendulum.now("UTC")), transitions)
        caches = self._runs

        def start(cur: Cursor) -> None:
            # The row lock makes two claims of one run take turns: exactly one wins.
            stored = cur.execute("SELECT attempt, state, pid, host, updated_at, process_start "
                                 "FROM flow_run WHERE id = ? FOR UPDATE", (run.id,)).fetchone()
            if stored is not None:
                check_claim(run.id, run.attempt, stored[0], stored[1], stored[2], stored[3],
                            rows.from_ts(stored[4]), stored[5])
            cur.execute("INSERT INTO flow (name, created_at) VALUES (?, ?) "
                        "ON CONFLICT (name) DO NOTHING", (run.flow_name, values["updated_at"]))
            values["flow_id"] = cur.execute(
                "SELECT id FROM flow WHERE name = ?", (run.flow_name,)).fetchone()[0]
            pk = cur.execute(rows.upsert_flow_run_sql(keep_flow_blob=run.flow_blob is None),
                             values).fetchone()[0]
            if stored is None:
                caches.created(run.id, pk)
            else:
                caches.forget(run.id)  # another attempt wrote it: read it again

        self._write_batches([_Batch(transitions)], start, run.id)

    def record_transitions(self, transitions: Sequence[Transition],
                           logs: Sequence[LogEntry] = ()) -> None:
        if not transitions:
            if logs:
                self.record_logs(logs)
            return
        if self.readonly:
            raise StoreError(f"the cairnflow database {self.where} was opened read-only")
        mine = _Batch(transitions, logs)
        with self._queue_lock:
            self._queue.append(mine)
        # Whoever holds the connection next writes every queued batch in one commit.
        with self._lock:
            if not mine.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit_group(group)
        if mine.error is not None:
            raise mine.error

    def _commit_group(self, group: list[_Batch]) -> None:
        """Commit the group in one transaction; if that fails, each batch on its own,
        so one bad batch (an unknown run, say) fails alone."""
        if len(group) > 1:
            try:
                self._guarded("write to", self._batch_transaction, group, None, None)
            except Exception:
                pass  # written again below, batch by batch, each with its own error
            else:
                for batch in group:
                    batch.done = True
                return
        for batch in group:
            try:
                self._guarded("write to", self._batch_transaction, [batch], None, None)
            except Exception as exc:
                batch.error = exc
            batch.done = True

    def _write_batches(self, group: list[_Batch], start: Callable[[Cursor], None] | None,
                       run_id: str | None) -> None:
        if self.readonly:
            raise StoreError(f"the cairnflow database {self.where} was opened read-only")
        with self._lock:
            self._guarded("write to", self._batch_transaction, group, start, run_id)

    def _batch_transaction(self, group: list[_Batch], start: Callable[[Cursor], None] | None,
                           run_id: str | None) -> None:
        """The batches' one transaction (after ``start``, unfenced: the claim checked
        the run); tried once more with the runs read afresh if the caches were
        stale (see ``sqlite_batch``)."""
        caches = self._runs
        transitions = [t for batch in group for t in batch.transitions]
        logs = [e for batch in group for e in batch.logs]
        for last_try in (False, True):
            conn = self._connection()
            try:
                with conn.cursor() as raw:
                    cur = Cursor(raw)
                    if start is not None:
                        start(cur)
                    if transitions:
                        plan = plan_transitions(cur, caches, transitions, None)
                        execute_plan(conn, plan, transitions, start is None, logs)
                conn.commit()
                return
            except BaseException as exc:
                self._rollback(conn)
                for t in transitions:
                    caches.forget(t.flow_run_id)
                if run_id is not None:
                    caches.forget(run_id)
                if last_try or not isinstance(exc, StaleCache):
                    raise

    def record_logs(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return

        def write(cur: Cursor) -> None:
            stored = insert_logs(self._conn, entries)
            if sum(c.rowcount for c in stored) != len(entries):
                refuse_logs(cur.cursor, entries)

        self._transact(write, write=True)

    def heartbeat(self, flow_run_id: str, attempt: int | None = None) -> None:
        now = ts(pendulum.now("UTC"))

        def write(cur: Cursor) -> None:
            if not cur.cursor.execute(_HEARTBEAT, (now, flow_run_id, attempt, attempt)).rowcount:
                found = cur.execute("SELECT attempt FROM flow_run WHERE id = ?",
                                    (flow_run_id,)).fetchone()
                if found is None:
                    raise UnknownRunError(f"no run with id {flow_run_id!r}")
                raise FencedOutError(fenced_out_message(flow_run_id, attempt, found[0]))

        self._transact(write, write=True)

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return 0
        return len(self._forget(self._transact(
            lambda cur: delete_runs_by_id(cur, ids, " FOR UPDATE"), write=True)))

    def prune(self, older_than: datetime) -> int:
        cutoff = ts(require_aware(older_than, "older_than"))
        return len(self._forget(self._transact(
            lambda cur: prune_finished(cur, cutoff, " FOR UPDATE"), write=True)))

    def _forget(self, run_ids: list[str]) -> list[str]:
        with self._lock:
            for rid in run_ids:
                self._runs.forget(rid)
        return run_ids

    # -- reads ------------------------------------------------------------------

    def get_flow_run(self, run_id: str) -> FlowRunInfo:
        return self._read(lambda cur: rows.flow_run_info(cur, run_id))

    def list_runs(self, flow_name: str | None = None, state: str | None = None,
                  limit: int | None = None, *, since: datetime | None = None,
                  before: str | None = None) -> list[FlowRunInfo]:
        return self._read(lambda cur: rows.list_runs(cur, flow_name, state, limit, since,
                                                     before))

    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        def read(cur: Cursor | None) -> list[str]:
            if cur is None:
                return []
            return [r[0] for r in cur.execute(
                "SELECT id FROM flow_run WHERE starts_with(id, ?) ORDER BY id LIMIT ?",
                (prefix, limit))]
        return self._read(read)

    def get_task_runs(self, run_id: str) -> list[TaskRunInfo]:
        def read(cur: Cursor | None) -> list[TaskRunInfo]:
            span = rows.require_run(cur, run_id)  # type: ignore[arg-type]
            return [rows.task_run_info(r) for r in cur.execute(  # type: ignore[union-attr]
                rows.TASK_RUNS_SQL, span)]
        return self._read(read)

    def get_history(self, run_id: str, task_slug: str | None = None) -> list[Transition]:
        return self._read(lambda cur: rows.history(cur, run_id, task_slug))  # type: ignore[arg-type]

    def load_result(self, run_id: str, task_slug: str,
                    map_index: int | None = None) -> SerializedResult:
        def read(cur: Cursor | None) -> tuple | None:
            low, high = rows.require_run(cur, run_id)  # type: ignore[arg-type]
            return cur.execute(rows.RESULT_SQL, (  # type: ignore[union-attr]
                low, high, task_slug, NOT_MAPPED if map_index is None else map_index)).fetchone()

        found = self._read(read)
        if found is None:
            where = "" if map_index is None else f"[{map_index}]"
            raise ResultNotFoundError(
                f"task {task_slug!r}{where} of run {run_id} has no checkpointed result")
        return _result(found)

    def load_resume_data(self, run_id: str) -> ResumeData:
        def read(cur: Cursor | None) -> tuple[FlowRunRecord, list]:
            record = rows.flow_run_record(cur, run_id)  # type: ignore[arg-type]
            return record, cur.execute(  # type: ignore[union-attr]
                rows.RESUME_SQL, rows.require_run(cur, run_id)).fetchall()  # type: ignore[arg-type]

        record, found = self._read(read)
        data = ResumeData(run=record)
        for row in found:
            info = rows.task_run_info(row[:9])
            key: TaskKey = (info.task_slug, info.map_index)
            data.task_runs[key] = info
            if info.has_result:
                data.results[key] = _result(row[9:])
        return data

    def get_logs(self, run_id: str, task_slug: str | None = None) -> list[LogEntry]:
        return self._read(lambda cur: rows.logs(cur, run_id, task_slug))  # type: ignore[arg-type]

    def list_flows(self) -> list[FlowInfo]:
        return self._read(rows.flows)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            if self._conn is not None and not self._closed:
                self._conn.close()
            self._closed = True
            self._runs.clear()

    def __repr__(self) -> str:
        mode = ", readonly" if self.readonly else ""
        return f"PostgresStore({self.where!r}{mode})"


def _result(row: Sequence[Any]) -> SerializedResult:
    serializer, python_version, cloudpickle_version, data, _path, _size, _sha = row
    return SerializedResult(bytes(data), serializer, python_version, cloudpickle_version)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
