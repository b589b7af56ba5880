"""The PostgreSQL store's hot path: a planned batch (``sqlite_batch.BatchPlan``) written
with as few statements as the plan allows, all sent in one pipeline.

The rows are the SQLite store's plan (same keys, same cache, same staleness
check: the history insert adds rows only for runs that exist, at ids the cache
expects to be free). What differs is how they go out:

* one multi-row statement per table (chunks of ``CHUNK_ROWS`` rows), every
  value cast in the first row, since PostgreSQL types a ``VALUES`` list from its
  first row and a NULL there would be text;
* a task run's successive rows in the batch (``Pending``, ``Running``,
  ``Success``) folded into one, since ``ON CONFLICT DO UPDATE`` may not touch a
  row twice in one statement;
* only the last update of each flow run;
* the batch's log records in one statement after its transitions;
* every statement in one pipeline, read back once: the caller then commits.

Fencing is SQLite's too: the history insert adds only rows whose attempt is
still their run's, so a fenced-out batch inserts fewer rows than it has, and
is then refused with ``FencedOutError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairnflow.exceptions import UnknownRunError
from cairnflow.statestore.base import LogEntry, Transition
from cairnflow.statestore.postgres_policy import Cursor
from cairnflow.statestore.sqlite_batch import (
    NOT_MAPPED, RUN_SHIFT, BatchPlan, StaleCache, check_attempts, ts,
)

__all__ = ["execute_plan", "insert_logs", "refuse_logs", "log_rows", "CHUNK_ROWS"]

CHUNK_ROWS = 1000
"""Rows per multi-row statement (PostgreSQL takes at most 65,535 parameters)."""

_HISTORY_ROW = "(%s::bigint, %s::bigint, %s::integer, %s::varchar, %s::varchar, %s::varchar)"
_HISTORY = f"""
INSERT INTO state_transition (id, task_run_id, attempt, state, message, timestamp)
SELECT v.* FROM (VALUES {{rows}}) AS v (id, task_run_id, attempt, state, message, timestamp)
WHERE EXISTS (SELECT 1 FROM flow_run WHERE pk = v.id >> {RUN_SHIFT}{{fence}})"""

_TASK_ROW = ("(%s::bigint, %s::varchar, %s::integer, %s::varchar, %s::varchar, %s::varchar, "
             "%s::integer, %s::varchar, %s::varchar)")
_TASKS = """
INSERT INTO task_run AS t (id, task_slug, map_index, task_name, state, message, attempts,
                           started_at, ended_at)
VALUES {rows}
ON CONFLICT (id) DO UPDATE SET
    task_name = excluded.task_name, state = excluded.state, message = excluded.message,
    attempts = t.attempts + excluded.attempts,
    started_at = COALESCE(t.started_at, excluded.started_at),
    ended_at = excluded.ended_at"""

_RESULT_ROW = ("(%s::bigint, %s::varchar, %s::varchar, %s::varchar, %s::bytea, %s::varchar, "
               "%s::integer, %s::varchar)")
_RESULTS = """
INSERT INTO task_result (task_run_id, serializer, python_version, cloudpickle_version, data,
                         path, size, sha256)
VALUES {rows}"""

_DELETE_RESULTS = "DELETE FROM task_result WHERE task_run_id = ANY(%s::bigint[]) RETURNING path"

_UPDATE_FLOW_RUN = "UPDATE flow_run SET state = %s, message = %s, ended_at = %s WHERE pk = %s"


class _Statements(dict):
    def __init__(self, template: str, row: str, **fill: str) -> None:
        super().__init__()
        self.template, self.row, self.fill = template, row, fill

    def __missing__(self, n: int) -> str:
        sql = self[n] = self.template.format(rows=", ".join([self.row] * n), **self.fill)
        return sql


# Fenced: only rows whose attempt is still the run's (as on SQLite); a new attempt's
# claim has checked the run already and may close the previous attempt's history.
_INSERT_HISTORY = _Statements(_HISTORY, _HISTORY_ROW, fence=" AND attempt = v.attempt")
_INSERT_CLAIM_HISTORY = _Statements(_HISTORY, _HISTORY_ROW, fence="")
_UPSERT_TASKS = _Statements(_TASKS, _TASK_ROW)
_INSERT_RESULTS = _Statements(_RESULTS, _RESULT_ROW)

# Log records, fenced by their attempt (None: not checked), each run's next ids
# numbered in one statement.
_LOG_ROW = ("(%s::varchar, %s::integer, %s::varchar, %s::integer, %s::varchar, %s::integer, "
            "%s::varchar, %s::varchar, %s::integer)")
_LOGS = f"""
INSERT INTO log_record (id, task_slug, map_index, timestamp, level, logger, message)
SELECT COALESCE((SELECT MAX(l.id) FROM log_record l
                 WHERE l.id BETWEEN r.pk << {RUN_SHIFT}
                                AND (r.pk << {RUN_SHIFT}) + {(1 << RUN_SHIFT) - 1}),
                r.pk << {RUN_SHIFT}) + ROW_NUMBER() OVER (PARTITION BY r.pk ORDER BY v.n),
       v.task_slug, v.map_index, v.timestamp, v.level, v.logger, v.message
FROM (VALUES {{rows}}) AS v (run_id, n, task_slug, map_index, timestamp, level, logger,
                             message, attempt)
JOIN flow_run r ON r.id = v.run_id AND (v.attempt IS NULL OR r.attempt = v.attempt)"""
_INSERT_LOGS = _Statements(_LOGS, _LOG_ROW)


def _chunks(flat: list, width: int):
    """(row count, flat values) per chunk of at most ``CHUNK_ROWS`` rows."""
    step = CHUNK_ROWS * width
    for start in range(0, len(flat), step):
        part = flat[start:start + step]
        yield len(part) // width, part


def _folded_task_rows(flat: list) -> list:
    """One row per task run: later rows win, attempts add up, the first start stays."""
    rows: dict[int, list] = {}
    for i in range(0, len(flat), 9):
        row = flat[i:i + 9]
        seen = rows.get(row[0])
        if seen is None:
            rows[row[0]] = row
        else:
            seen[3:6] = row[3:6]
            seen[6] += row[6]
            if seen[7] is None:
                seen[7] = row[7]
            seen[8] = row[8]
    return [value for row in rows.values() for value in row]


def log_rows(entries: Sequence[LogEntry]) -> list:
    """``entries`` as the flat values of ``_INSERT_LOGS`` rows."""
    flat: list = []
    for n, e in enumerate(entries):
        flat += (e.flow_run_id, n, e.task_slug, NOT_MAPPED if e.map_index is None else e.map_index,
                 ts(e.timestamp), e.level, e.logger, e.message, e.attempt)
    return flat


def insert_logs(conn: Any, entries: Sequence[LogEntry]) -> list:
    """Send the log inserts (inside a pipeline or not); the cursors, whose
    rowcounts say how many were stored."""
    cursors = []
    for n, part in _chunks(log_rows(entries), 9):
        cur = conn.cursor()
        cur.execute(_INSERT_LOGS[n], part)
        cursors.append(cur)
    return cursors


def execute_plan(conn: Any, plan: BatchPlan, transitions: Sequence[Transition],
                 fenced: bool = True, logs: Sequence[LogEntry] = ()) -> None:
    """Send the plan's statements, then ``logs``, in one pipeline, inside the
    connection's open transaction; the caller commits.

    Raises ``StaleCache`` when the cache of a run in the batch was out of date,
    and, when ``fenced``, ``FencedOutError`` when a run is at another attempt
    than its transitions' (the transaction must then be rolled back).
    """
    from psycopg import errors

    cur = conn.cursor()
    history_rows, task_rows = plan.expanded()
    histories = []
    statements = _INSERT_HISTORY if fenced else _INSERT_CLAIM_HISTORY
    try:
        with conn.pipeline():
            for n, part in _chunks(history_rows, 6):
                history = conn.cursor()  # one per statement: each keeps its rowcount
                history.execute(statements[n], part)
                histories.append(history)
            if task_rows:
                for n, part in _chunks(_folded_task_rows(task_rows), 9):
                    cur.execute(_UPSERT_TASKS[n], part)
            if plan.deletes:
                cur.execute(_DELETE_RESULTS, (plan.deletes,))
            if plan.results:
                flat = [v for row in plan.results.values() for v in row]
                for n, part in _chunks(flat, 8):
                    cur.execute(_INSERT_RESULTS[n], part)
            if plan.flows:
                last: dict[int, tuple] = {}
                for row in plan.flows:
                    last[row[3]] = row
                for row in last.values():
                    cur.execute(_UPDATE_FLOW_RUN, row)
            logged = insert_logs(conn, logs) if logs else []
    except errors.UniqueViolation as exc:
        if exc.diag.table_name != "state_transition":
            raise
        raise StaleCache("a run of the batch was written by another store") from exc
    if sum(h.rowcount for h in histories) != plan.count:
        check_attempts(Cursor(cur), transitions)
        raise StaleCache("a run of the batch was deleted by another store")
    if sum(c.rowcount for c in logged) != len(logs):
        refuse_logs(cur, logs)


def refuse_logs(cur: Any, entries: Sequence[LogEntry]) -> None:
    """After fewer log records were stored than given: ``FencedOutError`` or
    ``UnknownRunError``, as the runs they name say."""
    check_attempts(Cursor(cur), entries)
    ids = sorted({e.flow_run_id for e in entries})
    raise UnknownRunError(f"no run with id {', '.join(map(repr, ids))}")
