"""Rows of the SQLite store to and from the store's dataclasses, and its read queries.

Each read is one indexed query (no query per run or per task run), after the
run's key for reads of one run: a run's task runs, history, results and logs
are each one range of their table (see ``models``), read in order. So
``cairnflow runs ls`` over 10,000 runs and ``runs show`` of a run with 10,000
task runs stay fast. One task's history, or one result, is that range filtered
by slug. Every function taking a cursor accepts ``None`` for an empty
read-only store (no database file yet) and answers as an empty store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cairnflow.exceptions import UnknownRunError
from cairnflow import states
from cairnflow.statestore.base import FlowRunRecord, LogEntry, Transition, is_owner_alive
from cairnflow.statestore.serialize import SerializedResult
from cairnflow.statestore.sqlite_batch import NOT_MAPPED, run_range, ts
from cairnflow._lazy import lazy_module

records = lazy_module("cairnflow.statestore.read_records")  # a run reads none back

if TYPE_CHECKING:
    from cairnflow.statestore.read_records import FlowInfo, FlowRunInfo, TaskRunInfo

# -- values ---------------------------------------------------------------------


def from_ts(text: str | None) -> datetime | None:
    """Stored text back to an aware UTC ``datetime`` (stdlib, ``timezone.utc``).

    Every time the query API returns is one of these, a store's rows by the
    thousand included: ``isoformat()``, ``timestamp()`` and comparisons run in C, and
    reading the store never imports pendulum (a third of ``runs ls --json``'s
    process). ``pendulum.instance()`` makes a pendulum DateTime of one where its
    methods are wanted."""
    return None if text is None else _fromisoformat(text)  # the text ends in +00:00


_fromisoformat = datetime.fromisoformat


@lru_cache(maxsize=None)
def is_finished(state_name: str) -> bool:
    """Whether a stored state name is a Finished state (see ``cairnflow.states``)."""
    return states.is_finished(state_name)


def utc_now() -> datetime:
    """Now, as a plain aware datetime: the clock to pass to ``reported_state``."""
    return datetime.now(timezone.utc)


def reported_state(state: str, pid: int, host: str, updated_at: str, now: datetime,
                   process_start: int | None = None) -> str:
    """The stored state, except that a Running run whose owner is dead is Crashed."""
    # Plain datetimes: pendulum's subtraction would cost more than the whole row.
    if state == "Running" and not is_owner_alive(
            pid, host, datetime.fromisoformat(updated_at), now, process_start):
        return "Crashed"
    return state


def _map_index(stored: int) -> int | None:
    return None if stored == NOT_MAPPED else stored


def _blob(data: bytes | None, serializer: str | None, python_version: str | None,
          cloudpickle_version: str | None) -> SerializedResult | None:
    if data is None:
        return None
    return SerializedResult(data, serializer, python_version,  # type: ignore[arg-type]
                            cloudpickle_version)  # type: ignore[arg-type]


# -- flow runs ------------------------------------------------------------------

_BLOB_COLUMNS = ("blob", "serializer", "python_version", "cloudpickle_version")
_RUN_COLUMNS = (
    "id", "flow_id", "flow_hash", "state", "message", "parameters",
    *(f"parameters_{c}" for c in _BLOB_COLUMNS), "source_file", "source_variable",
    *(f"flow_{c}" for c in _BLOB_COLUMNS), "attempt", "pid", "host", "process_start",
    "created_at", "started_at", "updated_at",
)
_KEPT_ON_NEW_ATTEMPT = ("id", "state", "message", "created_at")


def _blob_values(prefix: str, blob: SerializedResult | None) -> dict[str, Any]:
    values = (None,) * 4 if blob is None else (
        blob.data, blob.serializer, blob.python_version, blob.cloudpickle_version)
    return {f"{prefix}_{c}": v for c, v in zip(_BLOB_COLUMNS, values)}


def flow_run_values(run: FlowRunRecord, now: str,
                    transitions: Sequence[Transition] = ()) -> dict[str, Any]:
    """Named parameters for ``upsert_flow_run_sql`` (``flow_id`` still to fill in).

    A new run's row is written in the attempt's first state (the first of
    ``transitions`` of the flow run itself), so that the batch's update of it
    leaves the row its size: SQLite then updates it in place, where a row that
    grows is rewritten, its flow blob with it.
    """
    started = ts(run.started_at, "started_at")
    state, message = next(((t.state, t.message) for t in transitions
                           if t.task_slug is None and t.attempt == run.attempt), ("Running", None))
    return {
        "id": run.id, "flow_id": None, "flow_hash": run.flow_hash,
        "state": state, "message": message,
        "parameters": json.dumps(run.parameters, default=repr),
        **_blob_values("parameters", run.parameters_blob),
        "source_file": run.source_file, "source_variable": run.source_variable,
        **_blob_values("flow", run.flow_blob),
        "attempt": run.attempt, "pid": run.pid, "host": run.host,
        "process_start": run.process_start, "created_at": started, "started_at": started, "updated_at": now,
    }


@lru_cache(maxsize=2)
def upsert_flow_run_sql(keep_flow_blob: bool) -> str:
    """Create a run, or start a new attempt of it, keeping its state and created_at;
    the statement returns the run's ``pk``.

    With ``keep_flow_blob``, an attempt that brings no flow blob keeps the one
    saved at the first run.
    """
    kept = _KEPT_ON_NEW_ATTEMPT + (
        tuple(f"flow_{c}" for c in _BLOB_COLUMNS) if keep_flow_blob else ())
    updated = [c for c in _RUN_COLUMNS if c not in kept]
    return (f"INSERT INTO flow_run ({', '.join(_RUN_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in _RUN_COLUMNS)}) "
            "ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in updated) + " RETURNING pk")


_RUN_INFO_COLUMNS = """r.id, f.name, r.flow_hash, r.state, r.message, r.parameters,
    r.attempt, r.source_file, r.source_variable, r.pid, r.host, r.created_at,
    r.started_at, r.ended_at, r.updated_at, r.process_start, r.flow_version_id, r.labels,
    r.scheduled_start, r.agent_id, r.cancel_requested_at"""


def _run_info(row: tuple, now: datetime) -> FlowRunInfo:
    (run_id, flow_name, flow_hash, state, message, parameters, attempt, source_file,
     source_variable, pid, host, created_at, started_at, ended_at, updated_at,
     process_start, version_id, labels, scheduled_start, agent_id, cancel_requested_at) = row
    return records.FlowRunInfo(
        id=run_id, flow_name=flow_name, flow_hash=flow_hash,
        state=reported_state(state, pid, host, updated_at, now, process_start),
        stored_state=state,
        message=message, parameters=json.loads(parameters), attempt=attempt,
        source_file=source_file, source_variable=source_variable, pid=pid, host=host,
        created_at=from_ts(created_at), started_at=from_ts(started_at),
        ended_at=from_ts(ended_at), updated_at=from_ts(updated_at),
        process_start=process_start,
        flow_version_id=version_id, labels=tuple(json.loads(labels)) if labels else (),
        scheduled_start=from_ts(scheduled_start), agent_id=agent_id,
        cancel_requested=cancel_requested_at is not None,
    )


def require_run(cur: sqlite3.Cursor | None, run_id: str) -> tuple[int, int]:
    """The range of row ids of the run's rows; ``UnknownRunError`` unless the run exists."""
    found = None if cur is None else cur.execute(
        "SELECT pk FROM flow_run WHERE id = ?", (run_id,)).fetchone()
    if found is None:
        raise UnknownRunError(f"no run with id {run_id!r}")
    return run_range(found[0])


def flow_run_info(cur: sqlite3.Cursor | None, run_id: str) -> FlowRunInfo:
    """One run by exact id; ``UnknownRunError`` if there is none."""
    row = None if cur is None else cur.execute(
        f"SELECT {_RUN_INFO_COLUMNS} FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        "WHERE r.id = ?", (run_id,)).fetchone()
    if row is None:
        raise UnknownRunError(f"no run with id {run_id!r}")
    return _run_info(row, utc_now())


def list_runs(cur: sqlite3.Cursor | None, flow_name: str | None, state: str | None,
              limit: int | None, since: datetime | None = None,
              before: str | None = None) -> list[FlowRunInfo]:
    """Runs newest first; a Running/Crashed filter is applied to the reported state.

    ``since``: only runs created at or after it. ``before``: only runs listed
    after the run with this id (keyset pagination: the page after one that
    ended with that run), by the ``created_at`` index, however deep the page.
    """
    if cur is None or limit == 0:
        return []
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("r.created_at >= ?")
        params.append(ts(since))
    if before is not None:
        where.append("(r.created_at < (SELECT created_at FROM flow_run WHERE id = ?) OR "
                     "(r.created_at = (SELECT created_at FROM flow_run WHERE id = ?) AND "
                     "r.pk < (SELECT pk FROM flow_run WHERE id = ?)))")
        params += [before, before, before]
    if flow_name is not None:
        where.append("r.flow_id = (SELECT id FROM flow WHERE name = ?)")
        params.append(flow_name)
    # Running and Crashed depend on the owner's liveness: filter those in Python.
    live_filter = state in ("Running", "Crashed")
    if state == "Crashed":
        where.append("r.state IN ('Running', 'Crashed')")
    elif state is not None:
        where.append("r.state = ?")
        params.append(state)
    sql = (f"SELECT {_RUN_INFO_COLUMNS} FROM flow_run r JOIN flow f ON f.id = r.flow_id"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY r.created_at DESC, r.pk DESC")
    if limit is not None and not live_filter:
        sql += f" LIMIT {int(limit)}"
    now = utc_now()
    runs = []
    for row in cur.execute(sql, params):
        info = _run_info(row, now)
        if live_filter and info.state != state:
            continue
        runs.append(info)
        if limit is not None and len(runs) >= limit:
            break
    return runs


def flow_run_record(cur: sqlite3.Cursor | None, run_id: str) -> FlowRunRecord:
    """The run as the runner recorded it (blobs included), for resume."""
    row = None if cur is None else cur.execute(
        "SELECT r.id, f.name, r.flow_hash, r.parameters, r.parameters_blob, "
        "r.parameters_serializer, r.parameters_python_version, "
        "r.parameters_cloudpickle_version, r.source_file, r.source_variable, r.flow_blob, "
        "r.flow_serializer, r.flow_python_version, r.flow_cloudpickle_version, r.attempt, "
        "r.pid, r.host, r.started_at, r.process_start FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        "WHERE r.id = ?", (run_id,)).fetchone()
    if row is None:
        raise UnknownRunError(f"no run with id {run_id!r}")
    return FlowRunRecord(
        id=row[0], flow_name=row[1], flow_hash=row[2], parameters=json.loads(row[3]),
        parameters_blob=_blob(*row[4:8]), source_file=row[8], source_variable=row[9],
        flow_blob=_blob(*row[10:14]), attempt=row[14], pid=row[15], host=row[16],
        started_at=from_ts(row[17]), process_start=row[18],
    )


def flows(cur: sqlite3.Cursor | None) -> list[FlowInfo]:
    """Flows with runs, by name, each with its newest run."""
    if cur is None:
        return []
    now = utc_now()
    # Each flow's newest run by the (flow_id, created_at) index; no bare columns
    # beside an aggregate, which only SQLite allows.
    found = cur.execute(
        "SELECT f.name, c.runs, r.id, r.state, r.pid, r.host, r.updated_at, r.process_start, "
        "r.created_at FROM flow f "
        "JOIN (SELECT flow_id, COUNT(*) AS runs FROM flow_run GROUP BY flow_id) c "
        "ON c.flow_id = f.id JOIN flow_run r ON r.pk = (SELECT l.pk FROM flow_run l "
        "WHERE l.flow_id = f.id ORDER BY l.created_at DESC, l.pk DESC LIMIT 1) "
        "ORDER BY f.name").fetchall()
    return [records.FlowInfo(name=name, runs=count, last_run_id=run_id,
                             last_state=reported_state(state, pid, host, updated, now, started),
                             last_run_at=from_ts(created))
            for name, count, run_id, state, pid, host, updated, started, created in found]


# -- task runs, history, results, logs -------------------------------------------

_TASK_RUN_COLUMNS = """t.task_slug, t.task_name, t.map_index, t.state, t.message,
    t.attempts, t.started_at, t.ended_at, x.task_run_id IS NOT NULL"""

_JOIN_RESULT = "LEFT JOIN task_result x ON x.task_run_id = t.id"

# A run's task runs are the ids in its range, in the order first recorded.
TASK_RUNS_SQL = (f"SELECT {_TASK_RUN_COLUMNS} FROM task_run t {_JOIN_RESULT} "
                 "WHERE t.id BETWEEN ? AND ? ORDER BY t.id")

RESUME_SQL = (f"SELECT {_TASK_RUN_COLUMNS}, x.serializer, x.python_version, "
              "x.cloudpickle_version, x.data, x.path, x.size, x.sha256 "
              f"FROM task_run t {_JOIN_RESULT} WHERE t.id BETWEEN ? AND ? ORDER BY t.id")

RUN_RESULTS_SQL = ("SELECT t.task_slug, t.map_index, x.serializer, x.python_version, "
                   "x.cloudpickle_version, x.data, x.path, x.size, x.sha256 "
                   "FROM task_run t JOIN task_result x ON x.task_run_id = t.id "
                   "WHERE t.id BETWEEN ? AND ? ORDER BY t.id")

RESULT_SQL = ("SELECT x.serializer, x.python_version, x.cloudpickle_version, x.data, x.path, "
              "x.size, x.sha256 FROM task_run t JOIN task_result x ON x.task_run_id = t.id "
              "WHERE t.id BETWEEN ? AND ? AND t.task_slug = ? AND t.map_index = ?")


def task_run_info(row: tuple) -> TaskRunInfo:
    """A row of ``TASK_RUNS_SQL`` (or the first nine columns of ``RESUME_SQL``)."""
    slug, name, map_index, state, message, attempts, started, ended, has_result = row
    return records.TaskRunInfo(
        task_slug=slug, task_name=name, map_index=_map_index(map_index), state=state,
        message=message, attempts=attempts, started_at=from_ts(started),
        ended_at=from_ts(ended), has_result=bool(has_result),
    )


def history(cur: sqlite3.Cursor | None, run_id: str,
            task_slug: str | None) -> list[Transition]:
    """The run's transitions (or one task's), oldest first, without results."""
    params: list[Any] = list(require_run(cur, run_id))
    sql = ("SELECT s.attempt, t.task_slug, t.task_name, t.map_index, s.state, s.message, "
           "s.timestamp FROM state_transition s LEFT JOIN task_run t ON t.id = s.task_run_id "
           "WHERE s.id BETWEEN ? AND ?")
    if task_slug is not None:
        sql += " AND t.task_slug = ?"
        params.append(task_slug)
    return [
        Transition(run_id, attempt, slug, name, _map_index(map_index), state, message,
                   from_ts(stamp))
        for attempt, slug, name, map_index, state, message, stamp
        in cur.execute(sql + " ORDER BY s.id", params)  # type: ignore[union-attr]
    ]


def logs(cur: sqlite3.Cursor | None, run_id: str, task_slug: str | None) -> list[LogEntry]:
    """The run's log records (or one task's), oldest first."""
    params: list[Any] = list(require_run(cur, run_id))
    sql = ("SELECT task_slug, map_index, timestamp, level, logger, message "
           "FROM log_record WHERE id BETWEEN ? AND ?")
    if task_slug is not None:
        sql += " AND task_slug = ?"
        params.append(task_slug)
    return [
        LogEntry(flow_run_id=run_id, task_slug=slug, map_index=_map_index(map_index),
                 timestamp=from_ts(stamp), level=level, logger=logger, message=message)
        for slug, map_index, stamp, level, logger, message
        in cur.execute(sql + " ORDER BY id", params)  # type: ignore[union-attr]
    ]
