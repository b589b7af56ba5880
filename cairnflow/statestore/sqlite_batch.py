"""The SQLite store's hot path: one batch of transitions, in one write transaction.

The runner commits a task's ``Running`` before calling it, and its ``Success``
with the result after, usually in one batch with the next task's ``Running``:
one or two short transactions per task. To keep each near SQLite's own cost, a
batch issues only INSERTs and UPDATEs: the task runs this store has written
are remembered by (run id, slug, map index), with whether each already has a
result, so no SELECT precedes a write. Cache changes made inside a
transaction are applied only once it has committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from cairnflow.exceptions import UnknownRunError
from cairnflow.statestore.base import Transition
from cairnflow.statestore.result_files import StoredFile
from cairnflow.statestore.serialize import SerializedResult

__all__ = ["TaskRunCache", "TransitionBatch", "NOT_MAPPED"]

NOT_MAPPED = -1
"""``task_run.map_index`` of a task run that is not a mapped child."""

_TASK_RUN_COLUMNS = """flow_run_id, task_slug, map_index, first_seq, task_name, state,
    message, attempts, started_at, ended_at"""

_INSERT_TASK_RUN = (f"INSERT INTO task_run ({_TASK_RUN_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

# For a task run recorded by another store object (a resume, another process).
_UPSERT_TASK_RUN = _INSERT_TASK_RUN + """
ON CONFLICT (flow_run_id, task_slug, map_index) DO UPDATE SET
    task_name = excluded.task_name, state = excluded.state, message = excluded.message,
    attempts = task_run.attempts + excluded.attempts,
    started_at = COALESCE(task_run.started_at, excluded.started_at),
    ended_at = excluded.ended_at"""

_UPDATE_TASK_RUN = """
UPDATE task_run SET task_name = ?, state = ?, message = ?, attempts = attempts + ?,
    started_at = COALESCE(started_at, ?), ended_at = ?
WHERE flow_run_id = ? AND task_slug = ? AND map_index = ?"""

_UPDATE_FLOW_RUN_STATE = (
    "UPDATE flow_run SET state = ?, message = ?, ended_at = ? WHERE id = ?")

# seq: the next position in the run's history, read under the write lock.
_INSERT_TRANSITION = """
INSERT INTO state_transition (flow_run_id, seq, task_slug, map_index, attempt, state,
                              message, timestamp)
VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM state_transition WHERE flow_run_id = ?1),
        ?2, ?3, ?4, ?5, ?6, ?7)"""

_INSERT_FIRST_TRANSITION = _INSERT_TRANSITION + " RETURNING seq"

_DELETE_RESULT = """
DELETE FROM task_result WHERE flow_run_id = ? AND task_slug = ? AND map_index = ?
RETURNING path"""

_INSERT_RESULT = """
INSERT INTO task_result (flow_run_id, task_slug, map_index, serializer, python_version,
                         cloudpickle_version, data, path, size, sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_Key = tuple[str, int]
_UNSEEN = object()


class TaskRunCache:
    """The task runs this store has written: ``runs[run id][(slug, stored map index)]``
    is whether it has a result (None: not known, the row was made elsewhere).

    Not thread-safe: the store calls it under its lock.
    """

    def __init__(self) -> None:
        self.runs: dict[str, dict[_Key, bool | None]] = {}

    def add(self, run_id: str, entries: dict[_Key, bool | None]) -> None:
        self.runs.setdefault(run_id, {}).update(entries)

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def clear(self) -> None:
        self.runs.clear()


class TransitionBatch:
    """Writes a batch of transitions; call it with a cursor inside a write transaction.

    Args:
        cache: the store's task run cache (read during, updated after commit).
        transitions: the batch, in order.
        stamps: each transition's timestamp as stored text.
        finished: whether each transition's state is a Finished one.
        files: each transition's result file, when its result went to a file.
    """

    def __init__(self, cache: TaskRunCache, transitions: Sequence[Transition],
                 stamps: list[str], finished: list[bool],
                 files: list[StoredFile | None]) -> None:
        self.cache = cache
        self.rows = list(zip(transitions, stamps, finished, files))
        self.pending: dict[str, dict[_Key, bool | None]] = {}
        self.replaced_files: list[str] = []

    def __call__(self, cur: sqlite3.Cursor) -> None:
        self.pending = {}
        self.replaced_files = []
        for t, stamp, done, stored in self.rows:
            if t.task_slug is None:
                self._flow_transition(cur, t, stamp, done)
            else:
                self._task_transition(cur, t, stamp, done, stored)

    def committed(self) -> list[str]:
        """Apply cache changes; return the result files the batch replaced."""
        for run_id, entries in self.pending.items():
            self.cache.add(run_id, entries)
        for t, _, done, _ in self.rows:
            if done and t.task_slug is None:
                # A finished run writes no more; a resume refills the cache.
                self.cache.forget(t.flow_run_id)
        return self.replaced_files

    def _flow_transition(self, cur: sqlite3.Cursor, t: Transition, stamp: str,
                         done: bool) -> None:
        cur.execute(_UPDATE_FLOW_RUN_STATE,
                    (t.state, t.message, stamp if done else None, t.flow_run_id))
        if not cur.rowcount:
            raise UnknownRunError(f"no run with id {t.flow_run_id!r}")
        cur.execute(_INSERT_TRANSITION,
                    (t.flow_run_id, None, NOT_MAPPED, t.attempt, t.state, t.message, stamp))

    def _has_result(self, run_id: str, key: _Key) -> object:
        """What this batch, else the cache, knows of a task run; ``_UNSEEN`` if nothing."""
        for known in (self.pending.get(run_id), self.cache.runs.get(run_id)):
            if known is not None and key in known:
                return known[key]
        return _UNSEEN

    def _task_transition(self, cur: sqlite3.Cursor, t: Transition, stamp: str, done: bool,
                         stored: StoredFile | None) -> None:
        run_id, slug, state = t.flow_run_id, t.task_slug, t.state
        index = NOT_MAPPED if t.map_index is None else t.map_index
        started = stamp if state == "Running" else None
        ended = stamp if done else None
        has_result = self._has_result(run_id, (slug, index))
        if has_result is not _UNSEEN:
            cur.execute(_UPDATE_TASK_RUN, (t.task_name, state, t.message, started is not None,
                                           started, ended, run_id, slug, index))
        history = (run_id, slug, index, t.attempt, state, t.message, stamp)
        if has_result is _UNSEEN or not cur.rowcount:  # new here, or its run was deleted
            seq = cur.execute(_INSERT_FIRST_TRANSITION, history).fetchone()[0]
            has_result = self._insert_task_run(cur, (
                run_id, slug, index, seq, t.task_name, state, t.message,
                started is not None, started, ended))
        else:
            cur.execute(_INSERT_TRANSITION, history)
        if t.result is not None:
            self._result(cur, (run_id, slug, index), has_result, t.result, stored)
            has_result = True
        self.pending.setdefault(run_id, {})[slug, index] = has_result  # type: ignore[assignment]

    @staticmethod
    def _insert_task_run(cur: sqlite3.Cursor, row: tuple) -> bool | None:
        """Insert a task run; False: it is new (so has no result), None: not known."""
        try:
            cur.execute(_INSERT_TASK_RUN, row)
            return False
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc).upper():
                raise
        cur.execute(_UPSERT_TASK_RUN, row)
        return None

    def _result(self, cur: sqlite3.Cursor, key: tuple[str, str, int], has_result: object,
                result: SerializedResult, stored: StoredFile | None) -> None:
        if has_result is not False:
            old = cur.execute(_DELETE_RESULT, key).fetchone()
            if old is not None and old[0] is not None:
                self.replaced_files.append(old[0])
        if stored is None:
            where = (result.data, None, len(result.data), None)
        else:
            where = (None, stored.path, stored.size, stored.sha256)
        cur.execute(_INSERT_RESULT, (*key, result.serializer, result.python_version,
                                     result.cloudpickle_version, *where))
