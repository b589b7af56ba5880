"""The SQLite checkpoint store: every transition of every run, committed to one file.

``SQLiteStore`` implements ``StateStore`` over the tables of
``cairnflow.statestore.models`` with the policy of
``cairnflow.statestore.sqlite_policy``. Its SQL is written out (here, in
``sqlite_batch`` for the hot path and ``sqlite_rows`` for reads) over the
models' table and column names, because a batch of transitions must cost
little more than SQLite itself, and because opening a store or reading one
must not pay for importing SQLAlchemy (half a second).

Example:
    >>> import tempfile, os
    >>> from cairnflow.statestore.sqlite import SQLiteStore
    >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "cairnflow.db"))
    >>> store.list_runs()
    []
    >>> store.close()
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from cairnflow.exceptions import (
    FencedOutError, ResultNotFoundError, StoreError, UnknownRunError,
)
from cairnflow.statestore import sqlite_policy as policy
from cairnflow.statestore import sqlite_rows as rows
from cairnflow.statestore.base import (
    FlowRunRecord, LazyResults, LogEntry, StateStore, TaskKey, Transition, check_claim,
    fenced_out_message, require_aware,
)
from cairnflow.statestore.result_files import ResultFiles, StoredFile
from cairnflow.statestore.serialize import SerializedResult
from cairnflow.statestore.sqlite_orch import OrchestrationSQL, delete_runs_by_id, prune_finished
from cairnflow.statestore.sqlite_batch import (
    NOT_MAPPED, RUN_SHIFT, RunCaches, StaleCache, check_attempts, write_transitions,
)
from cairnflow.statestore.sqlite_rows import ts

if TYPE_CHECKING:
    from cairnflow.statestore.read_records import FlowInfo, FlowRunInfo, ResumeData, TaskRunInfo

__all__ = ["SQLiteStore", "LARGE_RESULT_BYTES", "path_from_url"]

T = TypeVar("T")

LARGE_RESULT_BYTES = 1 << 20
"""Results larger than this (1 MiB) are stored as files beside the database."""

_Refusal = Callable[[sqlite3.IntegrityError], StoreError]

# The run's next log id, read under the write lock; no row if there is no such run,
# or (fenced) if the run is at another attempt than the record's.
_INSERT_LOG = f"""
INSERT INTO log_record (id, task_slug, map_index, timestamp, level, logger, message)
SELECT COALESCE((SELECT MAX(l.id) FROM log_record l
                 WHERE l.id BETWEEN r.pk << {RUN_SHIFT}
                                AND (r.pk << {RUN_SHIFT}) + {(1 << RUN_SHIFT) - 1}),
                r.pk << {RUN_SHIFT}) + 1, :slug, :map_index, :timestamp, :level, :logger, :message
FROM flow_run r WHERE r.id = :run_id AND (:attempt IS NULL OR r.attempt = :attempt)"""

_HEARTBEAT = ("UPDATE flow_run SET updated_at = ? WHERE id = ? "
              "AND (? IS NULL OR attempt = ?)")

# Everything a run owns, by the range of its row ids (see models), then the run.
def path_from_url(url: str) -> str:
    """The database path named by a ``sqlite:///`` URL or a plain path.

    ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's form),
    ``sqlite://`` and ``:memory:`` (in memory), or a filesystem path (``~``
    expanded). Any other URL raises ``StoreError``.
    """
    if url in ("", ":memory:"):
        return ":memory:"
    if "://" not in url:
        return os.path.expanduser(url)
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("sqlite", "sqlite+pysqlite"):
        raise StoreError(f"unknown store URL scheme {scheme!r}: give a URL like "
                         "sqlite:////path/to/cairnflow.db or "
                         "postgresql+psycopg://user:password@host/dbname")
    if "?" in rest:
        raise StoreError(f"URL options are not supported in {url!r}: remove the '?...' part")
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise StoreError(f"a SQLite URL names no host: use sqlite:///path, not {url!r}")
    return rest[1:]


class SQLiteStore(OrchestrationSQL, StateStore):
    """A ``StateStore`` in one SQLite file, shared safely by threads and processes.

    Args:
        url: a database path, a ``sqlite:///path`` URL, or ``:memory:``.
        readonly: open for reading only; the file is never changed (no schema
            creation, no pragma that writes). A read-only store on a missing
            file (or an empty one) behaves as an empty store.
        large_result_bytes: results larger than this go to files under
            ``results/`` beside the database.
        busy_timeout: seconds SQLite waits for another process's lock.
        lock_retry: seconds of retrying a locked database before
            ``StoreLockedError``.

    Raises:
        StoreError: the file cannot be opened or is not a cairnflow database.
        SchemaVersionError: the database was written by a newer cairnflow.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "cairnflow.db")
        >>> SQLiteStore(f"sqlite:///{path}").find_run_ids("")
        []
    """

    def __init__(self, url: str | os.PathLike[str], *, readonly: bool = False,
                 large_result_bytes: int = LARGE_RESULT_BYTES,
                 busy_timeout: float = policy.BUSY_TIMEOUT_SECONDS,
                 lock_retry: float = policy.LOCK_RETRY_SECONDS) -> None:
        self.path = path_from_url(os.fspath(url))
        self.readonly = readonly
        self._busy_timeout = busy_timeout
        self._lock_retry = lock_retry
        self._lock = threading.Lock()
        self._runs = RunCaches()
        self._closed = False
        in_memory = self.path == ":memory:"
        # A database in memory has no directory to keep large results in.
        self._large = float("inf") if in_memory else large_result_bytes
        self.results = None if in_memory else ResultFiles(
            os.path.join(os.path.dirname(os.path.realpath(self.path)), "results"))
        self._conn = self._guarded("open", None, self._open)
        # The write path's one cursor, used under the lock.
        self._cursor = None if self._conn is None else self._conn.cursor()

    # -- opening ----------------------------------------------------------------

    def _open(self) -> sqlite3.Connection | None:
        path = self.path
        if path != ":memory:":
            if os.path.isdir(path):
                raise StoreError(f"{path} is a directory, not a cairnflow database file")
            if not os.path.exists(path):
                if self.readonly:
                    return None  # nothing recorded yet: an empty store
                parent = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(parent):
                    raise StoreError(f"cannot create the cairnflow database {path}: "
                                     f"directory {parent} does not exist")
            elif not self.readonly:
                if policy.on_read_only_media(path):
                    raise StoreError(
                        f"the cairnflow database {path} is on a read-only file system: it "
                        "can be read but not written; give a store that can be written "
                        "(--db, CAIRNFLOW_DB_URL)")
                if policy.probe_schema_version(path, self._busy_timeout) == policy.SCHEMA_VERSION:
                    return self._connect_writer(upgrade=False)
        elif self.readonly:
            return None
        if self.readonly:
            return self._connect_reader()
        return self._connect_writer(upgrade=True)

    def _connect_reader(self) -> sqlite3.Connection | None:
        conn = policy.connect(self.path, readonly=True, busy_timeout=self._busy_timeout)
        try:
            current = policy.in_transaction(
                conn, lambda cur: policy.check_schema_readable(cur, self.path), write=False)
        except BaseException:
            conn.close()
            raise
        if not current:
            conn.close()
            return None
        return conn

    def _connect_writer(self, *, upgrade: bool) -> sqlite3.Connection:
        conn = policy.connect(self.path, readonly=False, busy_timeout=self._busy_timeout)
        try:
            if self.path != ":memory:":
                policy.enable_wal(conn)
            if upgrade:
                policy.in_transaction(
                    conn, lambda cur: policy.ensure_schema(cur, self.path), write=True)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- the one way in -----------------------------------------------------------

    def _guarded(self, doing: str, refused: _Refusal | None, fn: Callable[..., T],
                 *args: Any) -> T:
        """``fn(*args)`` under the retry policy, with SQLite's errors as ours."""
        try:
            return policy.retrying(fn, *args, budget=self._lock_retry, where=self.path)
        except sqlite3.IntegrityError as exc:
            if refused is not None:
                raise refused(exc) from exc
            raise StoreError(f"the cairnflow database {self.path} refused a write: "
                             f"{exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot {doing} the cairnflow database {self.path}: {exc}") from exc

    def _transact(self, fn: Callable[[sqlite3.Cursor], Any], *, write: bool,
                  doing: str = "write to", refused: _Refusal | None = None) -> Any:
        """Run ``fn`` in one transaction under the store's lock, with the policy."""
        if write and self.readonly:
            raise StoreError(f"the cairnflow database {self.path} was opened read-only")
        with self._lock:
            if self._closed:
                raise StoreError("this cairnflow store is closed")
            conn = self._conn
            if conn is None and self.path != ":memory:":
                # A database created (or given its schema) since this reader opened:
                # a long-lived reader, such as the server, must see it.
                conn = self._conn = self._guarded("open", None, self._open)
            if conn is None:
                return fn(None)  # type: ignore[arg-type]  # empty read-only store
            return self._guarded(doing, refused, policy.in_transaction, conn, fn, write)

    def _read(self, fn: Callable[[sqlite3.Cursor | None], T]) -> T:
        return self._transact(fn, write=False, doing="read")

    # -- writes -----------------------------------------------------------------

    def record_flow_run(self, run: FlowRunRecord,
                        transitions: Sequence[Transition] = ()) -> None:
        values = rows.flow_run_values(run, ts(datetime.now(timezone.utc)), transitions)
        caches = self._runs

        def start(cur: sqlite3.Cursor) -> None:
            stored = cur.execute("SELECT attempt, state, pid, host, updated_at, process_start "
                                 "FROM flow_run WHERE id = ?", (run.id,)).fetchone()
            if stored is not None:  # one transaction: of two claims, exactly one wins
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

        self._write_batch(transitions, start, run.id)
        if run.attempt > 1 and self.results is not None:
            self.results.remove_temporaries(run.id)  # left by an attempt that was killed

    def record_transitions(self, transitions: Sequence[Transition],
                           logs: Sequence[LogEntry] = ()) -> None:
        if transitions:
            self._write_batch(transitions, logs=_log_values(logs) if logs else None)
        elif logs:
            self.record_logs(logs)

    def _write_batch(self, transitions: Sequence[Transition],
                     start: Callable[[sqlite3.Cursor], None] | None = None,
                     run_id: str | None = None,
                     logs: list[dict[str, Any]] | None = None) -> None:
        """Commit ``transitions`` (after ``start``, if given; fenced unless it is
        given) and then ``logs`` in one write transaction.

        Results over the threshold are written to files first; if the
        transaction does not commit, they are removed, and once it has, the
        result files it replaced are.
        """
        if self.readonly:
            raise StoreError(f"the cairnflow database {self.path} was opened read-only")
        files = None
        large = self._large
        for t in transitions:
            result = t.result
            if result is not None and len(result.data) > large:
                files = self._write_large_results(transitions)
                break
        with self._lock:
            if self._closed:
                raise StoreError("this cairnflow store is closed")
            try:
                replaced = self._guarded("write to", None, self._batch, transitions, files,
                                         start, run_id, logs)
            except BaseException:
                if files is not None:
                    self._remove_files(f.path for f in files if f)
                raise
        if replaced:
            self._remove_files(replaced)

    def _batch(self, transitions: Sequence[Transition], files: list[StoredFile | None] | None,
               start: Callable[[sqlite3.Cursor], None] | None,
               run_id: str | None, logs: list[dict[str, Any]] | None) -> list[str]:
        """A batch's transaction; the result files it replaced.

        The run caches change as the batch is written: if it does not commit,
        the runs it touched are forgotten, to be read again. If it found them
        stale, it is tried once more (see ``sqlite_batch``).
        """
        cur = self._cursor
        caches = self._runs
        for last_try in (False, True):
            cur.execute("BEGIN IMMEDIATE")
            try:
                if start is not None:
                    start(cur)
                replaced = write_transitions(cur, caches, transitions, files,
                                             fenced=start is None) if transitions else []
                if logs:
                    _insert_logs(cur, logs)
                cur.execute("COMMIT")
                return replaced
            except BaseException as exc:
                if self._conn.in_transaction:  # type: ignore[union-attr]
                    self._conn.rollback()  # type: ignore[union-attr]
                for t in transitions:
                    caches.forget(t.flow_run_id)
                if run_id is not None:
                    caches.forget(run_id)
                if last_try or not isinstance(exc, StaleCache):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_large_results(self, transitions: Sequence[Transition]
                             ) -> list[StoredFile | None] | None:
        """Write results over the threshold to files, before their transaction."""
        files: list[StoredFile | None] = [None] * len(transitions)
        try:
            for i, t in enumerate(transitions):
                if t.result is not None and len(t.result.data) > self._large:
                    files[i] = self.results.write(  # type: ignore[union-attr]
                        t.flow_run_id, t.result.data)
        except OSError as exc:
            self._remove_files(f.path for f in files if f)
            raise StoreError(f"cannot write a result file under {self.results.root}: "
                             f"{exc}") from exc  # type: ignore[union-attr]
        return files if any(files) else None

    def _remove_files(self, relative_paths: Any) -> None:
        for rel in relative_paths:
            self.results.remove(rel)  # type: ignore[union-attr]

    def record_logs(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        values = _log_values(entries)
        self._transact(lambda cur: _insert_logs(cur, values), write=True)

    def heartbeat(self, flow_run_id: str, attempt: int | None = None) -> None:
        now = ts(datetime.now(timezone.utc))

        def write(cur: sqlite3.Cursor) -> None:
            cur.execute(_HEARTBEAT, (now, flow_run_id, attempt, attempt))
            if not cur.rowcount:
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
            lambda cur: delete_runs_by_id(cur, ids), write=True)))

    def prune(self, older_than: datetime) -> int:
        cutoff = ts(require_aware(older_than, "older_than"))
        return len(self._forget(self._transact(
            lambda cur: prune_finished(cur, cutoff), write=True)))

    def _forget(self, run_ids: list[str]) -> list[str]:
        """After deleting runs: drop their cached ids and their result files."""
        with self._lock:
            for rid in run_ids:
                self._runs.forget(rid)
        if self.results is not None:
            for rid in run_ids:
                self.results.remove_run(rid)
        return run_ids

    # -- reads ------------------------------------------------------------------

    def get_flow_run(self, run_id: str) -> FlowRunInfo:
        return self._read(lambda cur: rows.flow_run_info(cur, run_id))

    def list_runs(self, flow_name: str | None = None, state: str | None = None,
                  limit: int | None = None, *, since: datetime | None = None,
                  before: str | None = None) -> list[FlowRunInfo]:
        return self._read(lambda cur: rows.list_runs(cur, flow_name, state, limit, since,
                                                     before))

    def latest_run_id(self) -> str | None:
        def read(cur: sqlite3.Cursor | None) -> str | None:
            if cur is None:
                return None
            row = cur.execute("SELECT id FROM flow_run ORDER BY pk DESC LIMIT 1").fetchone()
            return None if row is None else row[0]
        return self._read(read)

    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        def read(cur: sqlite3.Cursor | None) -> list[str]:
            if cur is None:
                return []
            return [r[0] for r in cur.execute(
                "SELECT id FROM flow_run WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit))]
        return self._read(read)

    def get_task_runs(self, run_id: str) -> list[TaskRunInfo]:
        def read(cur: sqlite3.Cursor | None) -> list[TaskRunInfo]:
            span = rows.require_run(cur, run_id)
            return [rows.task_run_info(r) for r in cur.execute(
                rows.TASK_RUNS_SQL, span)]  # type: ignore[union-attr]
        return self._read(read)

    def get_history(self, run_id: str, task_slug: str | None = None) -> list[Transition]:
        return self._read(lambda cur: rows.history(cur, run_id, task_slug))

    def load_result(self, run_id: str, task_slug: str,
                    map_index: int | None = None) -> SerializedResult:
        def read(cur: sqlite3.Cursor | None) -> tuple | None:
            low, high = rows.require_run(cur, run_id)
            return cur.execute(rows.RESULT_SQL, (  # type: ignore[union-attr]
                low, high, task_slug, NOT_MAPPED if map_index is None else map_index)).fetchone()

        found = self._read(read)
        if found is None:
            where = "" if map_index is None else f"[{map_index}]"
            raise ResultNotFoundError(
                f"task {task_slug!r}{where} of run {run_id} has no checkpointed result")
        return self._result(run_id, task_slug, map_index, found)

    def _result(self, run_id: str, slug: str, map_index: int | None,
                row: Sequence[Any]) -> SerializedResult:
        serializer, python_version, cloudpickle_version, data, path, size, sha = row
        if path is not None:
            what = f"the result of task {slug!r}" + (
                "" if map_index is None else f"[{map_index}]") + f" of run {run_id}"
            data = self.results.read(StoredFile(path, size, sha), what)  # type: ignore[union-attr]
        return SerializedResult(data, serializer, python_version, cloudpickle_version)

    def load_resume_data(self, run_id: str) -> ResumeData:
        def read(cur: sqlite3.Cursor | None) -> tuple[FlowRunRecord, list]:
            record = rows.flow_run_record(cur, run_id)
            return record, cur.execute(  # type: ignore[union-attr]
                rows.TASK_RUNS_SQL, rows.require_run(cur, run_id)).fetchall()

        def result_rows() -> dict[TaskKey, Sequence[Any]]:
            def read_results(cur: sqlite3.Cursor | None) -> list:
                return cur.execute(  # type: ignore[union-attr]
                    rows.RUN_RESULTS_SQL, rows.require_run(cur, run_id)).fetchall()
            return {(slug, None if index == NOT_MAPPED else index): row
                    for slug, index, *row in self._read(read_results)}

        record, found = self._read(read)
        task_runs = {}
        for row in found:
            info = rows.task_run_info(row)
            task_runs[(info.task_slug, info.map_index)] = info
        # Results are read when resume first needs one (all rows in one query, a
        # result file when its result is used): the CLI, which only wants the
        # record, reads none.
        results = LazyResults(result_rows,
                              lambda key, row: self._result(run_id, key[0], key[1], row))
        return rows.records.ResumeData(run=record, task_runs=task_runs, results=results)

    def get_logs(self, run_id: str, task_slug: str | None = None) -> list[LogEntry]:
        return self._read(lambda cur: rows.logs(cur, run_id, task_slug))

    def list_flows(self) -> list[FlowInfo]:
        return self._read(rows.flows)

    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version``: it changes when another connection commits."""
        with self._lock:
            conn = self._conn
            if conn is None or self._closed:
                return None
            return self._guarded("read", None,
                                 lambda: conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            if self._conn is not None and not self._closed:
                self._conn.close()
            self._closed = True
            self._runs.clear()

    def __repr__(self) -> str:
        mode = ", readonly" if self.readonly else ""
        return f"SQLiteStore({self.path!r}{mode})"


def _log_values(entries: Sequence[LogEntry]) -> list[dict[str, Any]]:
    """Named parameters of ``_INSERT_LOG``, one dict per record (``_entry`` is kept
    for the error path)."""
    return [{"run_id": e.flow_run_id, "slug": e.task_slug,
             "map_index": NOT_MAPPED if e.map_index is None else e.map_index,
             "timestamp": ts(e.timestamp), "level": e.level, "logger": e.logger,
             "message": e.message, "attempt": e.attempt, "_entry": e} for e in entries]


def _insert_logs(cur: sqlite3.Cursor, values: list[dict[str, Any]]) -> None:
    """Insert log records inside a write transaction: all of them, or an error."""
    cur.executemany(_INSERT_LOG, values)
    if cur.rowcount != len(values):  # a run that does not exist, or a fenced-out attempt
        entries = [v["_entry"] for v in values]
        check_attempts(cur, entries)
        ids = sorted({e.flow_run_id for e in entries})
        raise UnknownRunError(f"no run with id {', '.join(map(repr, ids))}")


