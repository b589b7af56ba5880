"""The SQLite store's hot path: one batch of transitions, in one write transaction.

The runner commits a task's ``Running`` before calling it, and its ``Success``
with the result after, usually in one batch with the next task's ``Running``:
one short transaction per task. To keep it near SQLite's own cost:

* A batch is at most one statement per table (multi-row INSERTs, the task runs
  as one multi-row upsert), and no SELECT precedes a write: the store knows, for
  each run it writes, the run's integer key, the next ``seq`` of its history,
  each task run's id and which task runs have a result (``RunCache``). A result
  is deleted only when one existed. The first ``Pending`` of new task runs that
  share a time and message (a start's, a map's children) go in a second
  statement on each of two tables, which binds only what differs from row to
  row (``BatchPlan.fresh``).
* Row ids are ``flow_run.pk << 32`` plus the run's sequence number (see
  ``cairnflow.statestore.models``): every insert lands on the right-most leaf of
  its table, so a commit writes about one page per table.

The cache is checked by the batch's first statement, at no extra cost. Every
write to a run appends to its history, and the history insert adds rows only
for runs that exist, at the ids the cache expects to be free. So if another
connection (or store) has written to the run since, an id is taken and the
insert fails; if the run was deleted, it adds fewer rows than it was given.
Either way the batch raises ``StaleCache``: its transaction is rolled back, its
runs forgotten, and the store tries once more with them read afresh, under the
write lock, so the second try cannot find them stale. (A run being written is
normally written by one store: of two attempts to resume a run, one wins.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone

from cairnflow.exceptions import FencedOutError, StoreError, UnknownRunError
from cairnflow import states
from cairnflow.statestore.base import Transition, fenced_out_message, require_aware
from cairnflow.statestore.result_files import StoredFile
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

__all__ = ["RunCache", "RunCaches", "StaleCache", "BatchPlan", "plan_transitions",
           "execute_plan", "write_transitions", "NOT_MAPPED",
           "RUN_SHIFT", "run_range", "MULTI_ROW_MAX", "ts"]

NOT_MAPPED = -1
"""``task_run.map_index`` of a task run that is not a mapped child."""

RUN_SHIFT = 32
"""A run's rows have ids ``pk << RUN_SHIFT`` + 1, 2, ... (``models.RUN_SHIFT``)."""

_SEQ_MAX = (1 << RUN_SHIFT) - 1

MULTI_ROW_MAX = 16
"""Batches up to this many rows per table are one multi-row statement (one
compiled statement per row count is cached); larger ones are cut into
statements of ``CHUNK_ROWS`` rows, and a last, shorter one."""

CHUNK_ROWS = 100
"""Rows per statement of a large batch: 100 task runs are 900 parameters, under
SQLite's smallest limit (999)."""

FRESH_CHUNK_ROWS = 240
"""New task runs per statement of their first Pending: 4 parameters a row and 1
for all, 961."""

FRESH_HISTORY_CHUNK_ROWS = 900
"""History rows per statement of new task runs' first Pending: 1 parameter a row
and 4 for all, 904."""


def run_range(pk: int) -> tuple[int, int]:
    """The first and last possible row id of run ``pk``'s rows."""
    base = pk << RUN_SHIFT
    return base, base + _SEQ_MAX


def ts(when: datetime, what: str = "timestamp") -> str:
    """An aware datetime as fixed-width ISO-8601 UTC text; naive -> ``ValueError``."""
    zone = when.tzinfo
    if zone is timezone.utc:
        # The engine's own datetimes (two a task run): the text of their second is
        # made once a second, and "%d" formatting cost half of this function.
        t = when.timestamp()
        second, prefix = _second_text
        if t // 1 != second or not 0 <= t < _EXACT_SECONDS:
            prefix = _second_of(when, t)
        us = when.microsecond
        return f"{prefix}{_MICROS[us // 1000]}{_MICROS[us % 1000]}+00:00"
    # Known UTC zones skip utcoffset(), which pendulum computes in Python.
    if zone is not pendulum.UTC:
        offset = when.utcoffset() if zone is not None else None
        if offset is None:
            require_aware(when, what)
        if offset:
            when = when.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second,
        when.microsecond)


_MICROS = [f"{i:03d}" for i in range(1000)]
"""Three digits of a microsecond count, by value."""

_EXACT_SECONDS = float(1 << 32)
"""Below this, a UTC datetime's ``timestamp() // 1`` is exactly its second (a
float's spacing there is under a microsecond; it grows past it after 2242)."""

_second_text: tuple[float, str] = (-1.0, "")
"""The last second ``ts`` formatted, and its text up to the microseconds: one
tuple, replaced whole, so threads always read a matching pair."""


def _second_of(when: datetime, t: float) -> str:
    """``when``'s text up to its microseconds; remembered when ``t`` keys it exactly."""
    global _second_text
    prefix = "%04d-%02d-%02dT%02d:%02d:%02d." % (
        when.year, when.month, when.day, when.hour, when.minute, when.second)
    if 0 <= t < _EXACT_SECONDS:
        _second_text = (t // 1, prefix)
    return prefix


_LOAD_RUN = "SELECT pk FROM flow_run WHERE id = ?"
_LAST_TRANSITION = "SELECT MAX(id) FROM state_transition WHERE id BETWEEN ? AND ?"
_LOAD_TASK_RUNS = """
SELECT t.id, t.task_slug, t.map_index, x.task_run_id IS NOT NULL
FROM task_run t LEFT JOIN task_result x ON x.task_run_id = t.id
WHERE t.id BETWEEN ? AND ?"""

# OR FAIL: a write that breaks a constraint stops its statement without undoing
# the statement's earlier rows, so SQLite keeps no statement journal for a
# multi-row statement (measured: a few µs a commit); the store rolls the whole
# transaction back on any error, so nothing of a failed batch is ever kept.
_TASK_RUN_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_TASK_RUN_UPSERT = """
INSERT OR FAIL INTO task_run (id, task_slug, map_index, task_name, state, message,
                              attempts, started_at, ended_at)
VALUES {rows}
ON CONFLICT (id) DO UPDATE SET
    task_name = excluded.task_name, state = excluded.state, message = excluded.message,
    attempts = task_run.attempts + excluded.attempts,
    started_at = COALESCE(task_run.started_at, excluded.started_at),
    ended_at = excluded.ended_at"""

# Only the rows of runs that exist (a row's run is id >> RUN_SHIFT) and, fenced,
# whose current attempt is the row's (column3): the fencing check rides in the
# statement every batch runs anyway. See the module docstring.
_TRANSITION_ROW = "(?, ?, ?, ?, ?, ?)"
_INSERT_TRANSITIONS = f"""
INSERT OR FAIL INTO state_transition (id, task_run_id, attempt, state, message, timestamp)
SELECT * FROM (VALUES {{rows}}) AS v
WHERE EXISTS (SELECT 1 FROM flow_run WHERE pk = v.column1 >> {RUN_SHIFT}{{fence}})"""
_FENCE = " AND attempt = v.column3"

_INSERT_RESULT = """
INSERT OR FAIL INTO task_result (task_run_id, serializer, python_version,
                                 cloudpickle_version, data, path, size, sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

# The first Pending of a batch's new task runs (all the task runs of a start, the
# children of a map) share their attempt, message and time, and a new task run's id
# is its first transition's: their rows bind only what differs, the id, slug, map
# index and name, and the constants once per statement (numbered: ?1 to ?4). That
# halves what a start batch binds, and so SQLite's and Python's work per row.
_FRESH_TASK_RUN_ROW = "(?{}, ?{}, ?{}, ?{}, 'Pending', ?1, 0, NULL, NULL)"
_INSERT_FRESH_TASK_RUN = """
INSERT OR FAIL INTO task_run (id, task_slug, map_index, task_name, state, message,
                              attempts, started_at, ended_at)
VALUES {rows}"""

_FRESH_TRANSITION_ROW = "(?{})"
_INSERT_FRESH_TRANSITIONS = """
INSERT OR FAIL INTO state_transition (id, task_run_id, attempt, state, message, timestamp)
SELECT column1, column1, ?1, 'Pending', ?2, ?3 FROM (VALUES {rows})
WHERE EXISTS (SELECT 1 FROM flow_run WHERE pk = ?4{fence})"""

_DELETE_RESULT = "DELETE FROM task_result WHERE task_run_id = ? RETURNING path"

_UPDATE_FLOW_RUN_STATE = "UPDATE flow_run SET state = ?, message = ?, ended_at = ? WHERE pk = ?"


class _Statements(dict):
    """``sql[n]``: a statement inserting ``n`` rows, made once per ``n``.

    With ``first``, ``row`` holds a ``{}`` per value, and the rows' parameters are
    numbered from ``first`` on (those below it are the statement's constants).
    """

    def __init__(self, template: str, row: str, first: int = 0, **fill: str) -> None:
        super().__init__()
        self.template, self.row, self.first, self.fill = template, row, first, fill

    def __missing__(self, n: int) -> str:
        if self.first:
            width = self.row.count("{}")
            rows = ", ".join(self.row.format(*range(k, k + width))
                             for k in range(self.first, self.first + n * width, width))
        else:
            rows = ", ".join([self.row] * n)
        sql = self[n] = self.template.format(rows=rows, **self.fill)
        return sql


_UPSERT_TASK_RUNS = _Statements(_TASK_RUN_UPSERT, _TASK_RUN_ROW)
_INSERT_HISTORY = _Statements(_INSERT_TRANSITIONS, _TRANSITION_ROW, fence=_FENCE)
# A new attempt's claim has checked the run already, and closes the previous
# attempt's history in the same transaction: its rows are not fenced.
_INSERT_CLAIM_HISTORY = _Statements(_INSERT_TRANSITIONS, _TRANSITION_ROW, fence="")
_INSERT_FRESH_TASK_RUNS = _Statements(_INSERT_FRESH_TASK_RUN, _FRESH_TASK_RUN_ROW, first=2)
_INSERT_FRESH_HISTORY = _Statements(_INSERT_FRESH_TRANSITIONS, _FRESH_TRANSITION_ROW, first=5,
                                    fence=" AND attempt = ?1")
_INSERT_FRESH_CLAIM_HISTORY = _Statements(_INSERT_FRESH_TRANSITIONS, _FRESH_TRANSITION_ROW,
                                          first=5, fence="")


class _FinishedStates(dict):
    """``finished[state name]``: whether it is a Finished state (``KeyError`` if unknown)."""

    def __missing__(self, name: str) -> bool:
        if name not in states.NAMES:
            raise KeyError(name)
        done = self[name] = name in states.FINISHED
        return done


FINISHED = _FinishedStates()


class StaleCache(StoreError):
    """The store's cache of a run no longer matches the database (see the module docstring)."""


def check_attempts(cur: sqlite3.Cursor, writes: Sequence[Transition]) -> None:
    """After a fenced write stored fewer rows than given: ``FencedOutError`` if a
    run it names is now at another attempt (a deleted run is left to the caller)."""
    seen: set[tuple[str, int]] = set()
    for w in writes:
        key = (w.flow_run_id, w.attempt)
        if key in seen or w.attempt is None:
            continue
        seen.add(key)
        found = cur.execute("SELECT attempt FROM flow_run WHERE id = ?",
                            (w.flow_run_id,)).fetchone()
        if found is not None and found[0] != w.attempt:
            raise FencedOutError(fenced_out_message(w.flow_run_id, w.attempt, found[0]))


class RunCache:
    """What the store knows of one run it writes to.

    Attributes:
        pk: ``flow_run.pk``.
        base: ``pk << RUN_SHIFT``; row ids of the run are ``base + seq``.
        next_seq: the ``seq`` of the run's next transition.
        tasks: task run id by (slug, stored map index).
        with_result: ids of the task runs that have a result.
    """

    __slots__ = ("pk", "base", "next_seq", "tasks", "with_result")

    def __init__(self, pk: int, next_seq: int, tasks: dict[tuple[str, int], int],
                 with_result: set[int]) -> None:
        self.pk = pk
        self.base = pk << RUN_SHIFT
        self.next_seq = next_seq
        self.tasks = tasks
        self.with_result = with_result


class RunCaches:
    """The runs one store writes to, by run id.

    Not thread-safe: the store calls it under its lock, inside write transactions.
    """

    def __init__(self) -> None:
        self.runs: dict[str, RunCache] = {}

    def created(self, run_id: str, pk: int) -> None:
        """A run this store just created: nothing recorded yet."""
        self.runs[run_id] = RunCache(pk, 1, {}, set())

    def get(self, cur: sqlite3.Cursor, run_id: str) -> RunCache:
        """The run's cache, read from the database if this store does not know the run.

        Raises ``UnknownRunError`` if there is no such run.
        """
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = self._load(cur, run_id)
        return run

    @staticmethod
    def _load(cur: sqlite3.Cursor, run_id: str) -> RunCache:
        found = cur.execute(_LOAD_RUN, (run_id,)).fetchone()
        if found is None:
            raise UnknownRunError(f"no run with id {run_id!r}")
        pk = found[0]
        low, high = run_range(pk)
        last = cur.execute(_LAST_TRANSITION, (low, high)).fetchone()[0]
        tasks: dict[tuple[str, int], int] = {}
        with_result: set[int] = set()
        for task_run_id, slug, map_index, has_result in cur.execute(
                _LOAD_TASK_RUNS, (low, high)):
            tasks[slug, map_index] = task_run_id
            if has_result:
                with_result.add(task_run_id)
        return RunCache(pk, 1 if last is None else last - low + 1, tasks, with_result)

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def clear(self) -> None:
        self.runs.clear()


class BatchPlan:
    """The rows one batch of transitions writes, planned once for every SQL store.

    Attributes:
        count: how many transitions (and so history rows) the batch has.
        history: the history rows, flat: ``(id, task_run_id, attempt, state,
            message, timestamp)`` repeated.
        task_rows: the task-run upserts, flat and in order: ``(id, slug,
            map_index, name, state, message, attempts to add, started_at,
            ended_at)`` repeated; one task run may appear more than once.
        results: the result rows to insert, by task run id: ``(task_run_id,
            serializer, python_version, cloudpickle_version, data, path, size,
            sha256)``.
        deletes: task run ids whose earlier result this batch replaces, or None.
        flows: ``(state, message, ended_at, pk)`` updates of flow runs, in
            order, or None.
        fresh: new task runs entering their first ``Pending`` together, flat:
            ``(id, slug, map_index, name)`` repeated. Each is a task run row and
            a history row of id ``id``, neither in ``history`` nor ``task_rows``
            (see ``expanded``), with the values of ``fresh_as``.
        fresh_as: ``(attempt, message, timestamp, pk)`` of the ``fresh`` rows, or
            None when there are none.
    """

    __slots__ = ("count", "history", "task_rows", "results", "deletes", "flows", "fresh",
                 "fresh_as")

    def __init__(self) -> None:
        self.count = 0
        self.history: list = []
        self.task_rows: list = []
        self.results: dict[int, tuple] | None = None
        self.deletes: list[int] | None = None
        self.flows: list[tuple] | None = None
        self.fresh: list = []
        self.fresh_as: tuple | None = None

    def expanded(self) -> tuple[list, list]:
        """``history`` and ``task_rows`` with the ``fresh`` rows folded in, as rows like
        theirs (the fresh task runs first, so that later rows of one update them)."""
        if self.fresh_as is None:
            return self.history, self.task_rows
        attempt, message, stamp, _ = self.fresh_as
        history, task_rows = list(self.history), []
        fresh = self.fresh
        for k in range(0, len(fresh), 4):
            row_id, slug, map_index, name = fresh[k:k + 4]
            history += (row_id, row_id, attempt, "Pending", message, stamp)
            task_rows += (row_id, slug, map_index, name, "Pending", message, 0, None, None)
        return history, task_rows + self.task_rows


def write_transitions(cur: sqlite3.Cursor, caches: RunCaches,
                      transitions: Sequence[Transition],
                      files: list[StoredFile | None] | None, fenced: bool = True) -> list[str]:
    """Write a batch inside a write transaction.

    ``files`` are the result files of the transitions whose result went to a
    file (None: none did). Returns the result files the batch replaced, to
    remove once it has committed. Updates the caches as it goes: if the
    transaction does not commit, the caller must forget the runs of the batch.
    A run that finishes is forgotten (it writes no more; a resume reads it again).
    Raises ``StaleCache`` if the cache of a run in the batch was out of date,
    and, when ``fenced``, ``FencedOutError`` if a run is at another attempt than
    its transitions'.
    """
    return execute_plan(cur, plan_transitions(cur, caches, transitions, files), transitions,
                        fenced)


def plan_transitions(cur: object, caches: RunCaches, transitions: Sequence[Transition],
                     files: list[StoredFile | None] | None) -> BatchPlan:
    """The rows of a batch, from the caches (runs not cached are read with ``cur``).

    Advances the caches as if the batch were written (see ``write_transitions``).
    """
    finished = FINISHED
    plan = BatchPlan()
    runs: dict[str, RunCache] = {}
    run_id_now: str | None = None
    run: RunCache = None  # type: ignore[assignment]
    task_rows = plan.task_rows
    history = plan.history
    results: dict[int, tuple] | None = None
    deletes: list[int] | None = None
    flows: list[tuple] | None = None
    fresh = plan.fresh
    i = 0
    last_when, stamp = None, ""
    for run_id, attempt, slug, name, map_index, state, message, when, result in transitions:
        if run_id != run_id_now:
            run = runs.get(run_id)  # type: ignore[assignment]
            if run is None:
                run = runs[run_id] = caches.get(cur, run_id)  # type: ignore[arg-type]
            run_id_now = run_id
        if when is not last_when:  # the Pending rows of a start or a map share one time
            stamp, last_when = ts(when), when
        seq = run.next_seq
        if seq > _SEQ_MAX:
            raise StoreError(f"run {run_id} has more than {_SEQ_MAX} transitions")
        run.next_seq = seq + 1
        row_id = run.base + seq
        if slug is None:
            history += (row_id, None, attempt, state, message, stamp)
            if flows is None:
                flows = []
            if finished[state]:
                flows.append((state, message, stamp, run.pk))
                caches.forget(run_id)
            else:
                flows.append((state, message, None, run.pk))
        else:
            if map_index is None:
                map_index = NOT_MAPPED
            task_run_id = run.tasks.get((slug, map_index))
            if task_run_id is None:
                task_run_id = run.tasks[slug, map_index] = row_id
                if state == "Pending" and result is None:
                    key = (attempt, message, stamp, run.pk)
                    if plan.fresh_as is None:
                        plan.fresh_as = key  # the first one decides which ones are fresh
                    if key == plan.fresh_as:
                        fresh += (row_id, slug, map_index, name)
                        i += 1
                        continue
            if state == "Running":
                task_rows += (task_run_id, slug, map_index, name, state, message, 1, stamp,
                              None)
            else:
                task_rows += (task_run_id, slug, map_index, name, state, message, 0, None,
                              stamp if finished[state] else None)
            history += (row_id, task_run_id, attempt, state, message, stamp)
            if result is not None:
                if results is None:
                    results = {}
                if task_run_id not in run.with_result:
                    run.with_result.add(task_run_id)
                elif task_run_id not in results:  # it had one before this batch
                    if deletes is None:
                        deletes = []
                    deletes.append(task_run_id)
                stored = None if files is None else files[i]
                if stored is None:
                    data = result.data
                    results[task_run_id] = (
                        task_run_id, result.serializer, result.python_version,
                        result.cloudpickle_version, data, None, len(data), None)
                else:
                    results[task_run_id] = (
                        task_run_id, result.serializer, result.python_version,
                        result.cloudpickle_version, None, stored.path, stored.size,
                        stored.sha256)
        i += 1
    plan.count, plan.results, plan.deletes, plan.flows = i, results, deletes, flows
    return plan


def _execute_chunks(cur: sqlite3.Cursor, statements: _Statements, flat: list, width: int,
                    rows: int = CHUNK_ROWS, constants: Sequence = ()) -> int:
    """Insert ``flat`` (rows of ``width`` values) in statements of ``rows`` rows, each
    given ``constants`` before its rows' values; how many rows they stored."""
    step = rows * width
    stored = 0
    for start in range(0, len(flat), step):
        part = flat[start:start + step]
        cur.execute(statements[len(part) // width], [*constants, *part] if constants else part)
        stored += cur.rowcount
    return stored


def execute_plan(cur: sqlite3.Cursor, plan: BatchPlan, transitions: Sequence[Transition],
                 fenced: bool = True) -> list[str]:
    """Write a planned batch with SQLite; the result files it replaced."""
    history, task_rows, fresh, fresh_as = plan.history, plan.task_rows, plan.fresh, plan.fresh_as
    rows = len(history) // 6
    statements = _INSERT_HISTORY if fenced else _INSERT_CLAIM_HISTORY
    try:
        if rows > MULTI_ROW_MAX:
            stored = _execute_chunks(cur, statements, history, 6)
        elif rows:
            cur.execute(statements[rows], history)
            stored = cur.rowcount
        else:
            stored = 0
        if fresh_as is not None:
            stored += _execute_chunks(
                cur, _INSERT_FRESH_HISTORY if fenced else _INSERT_FRESH_CLAIM_HISTORY,
                fresh[::4], 1, FRESH_HISTORY_CHUNK_ROWS, fresh_as)
    except sqlite3.IntegrityError as exc:
        if "state_transition.id" not in str(exc):
            raise
        raise StaleCache("a run of the batch was written by another store") from exc
    if stored != plan.count:
        check_attempts(cur, transitions)
        raise StaleCache("a run of the batch was deleted by another store")
    if fresh_as is not None:
        _execute_chunks(cur, _INSERT_FRESH_TASK_RUNS, fresh, 4, FRESH_CHUNK_ROWS, fresh_as[1:2])
    if task_rows:
        n = len(task_rows) // 9
        if n <= MULTI_ROW_MAX:
            cur.execute(_UPSERT_TASK_RUNS[n], task_rows)
        else:
            _execute_chunks(cur, _UPSERT_TASK_RUNS, task_rows, 9)
    replaced = []
    if plan.deletes is not None:
        for task_run_id in plan.deletes:
            old = cur.execute(_DELETE_RESULT, (task_run_id,)).fetchone()
            if old is not None and old[0] is not None:
                replaced.append(old[0])
    results = plan.results
    if results is not None:
        if len(results) == 1:
            for row in results.values():
                cur.execute(_INSERT_RESULT, row)
        else:
            cur.executemany(_INSERT_RESULT, results.values())
    if plan.flows is not None:
        cur.executemany(_UPDATE_FLOW_RUN_STATE, plan.flows)
    return replaced
