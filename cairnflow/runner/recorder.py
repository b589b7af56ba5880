"""The runner's one way to the store: transitions, logs and the heartbeat.

Durability rule (the engine's promise, documented in the README):

* a task's ``Running`` is committed before its code is called;
* every other transition is committed at the latest together with the next
  ``Running``, the next log record, the next heartbeat, or the end of the run,
  whichever comes first, and always before anything that depends on it runs.

So a task's ``Success`` and its result share a transaction, and a process
killed at any instant loses at most transitions whose effects nothing has yet
acted on: resume redoes exactly that work, and nothing recorded is untrue.
Grouping the commit of one task's ``Success`` with the next task's ``Running``
halves the commits of a chain without weakening that promise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Iterator, Sequence

import pendulum

from cairnflow.states import State
from cairnflow.statestore.base import (
    HEARTBEAT_SECONDS, FlowRunRecord, LogEntry, StateStore, Transition,
)
from cairnflow.statestore.serialize import SerializedResult
from cairnflow.context import current

log = logging.getLogger("cairnflow.engine")


def message_with_traceback(record: logging.LogRecord) -> str:
    """The record's message, followed by its traceback when it carries one."""
    message = record.getMessage()
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    return f"{message}\n{record.exc_text}" if record.exc_text else message


_FORMATTER = logging.Formatter()


class Recorder:
    """Buffers transitions of one flow-run attempt and commits them per the rule above."""

    def __init__(self, store: StateStore, flow_run_id: str, attempt: int,
                 on_transition: Callable[[Transition], None] | None = None):
        self.store = store
        self.flow_run_id = flow_run_id
        self.attempt = attempt
        self.on_transition = on_transition
        self._pending: list[Transition] = []
        self._lock = threading.Lock()

    def transition(self, slug: str | None, name: str | None, map_index: int | None,
                   state: State, result: SerializedResult | None = None,
                   durable: bool = False) -> None:
        """Record that a task run (``slug`` None: the flow run) entered ``state``."""
        record = Transition(self.flow_run_id, self.attempt, slug, name, map_index,
                            state.name, state.message, state.timestamp, result)
        with self._lock:
            self._pending.append(record)
            if durable:
                self._flush_locked()
        if self.on_transition is not None:
            self.on_transition(record)

    def start(self, record: FlowRunRecord, state: State,
              before: Sequence[Transition] = ()) -> None:
        """Start the attempt: its run record, ``before`` (the dead attempt's Crashed
        records) and the flow run's ``state``, in one transaction."""
        first = Transition(self.flow_run_id, self.attempt, None, record.flow_name, None,
                           state.name, state.message, state.timestamp)
        self.store.record_flow_run(record, [*before, first])
        if self.on_transition is not None:
            for t in (*before, first):
                self.on_transition(t)

    def flush(self) -> None:
        """Commit every buffered transition now."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.store.record_transitions(batch)

    def log_record(self, record: logging.LogRecord) -> None:
        """Store a log record with the task run of the current context (a log sink)."""
        ctx = current()
        entry = LogEntry(self.flow_run_id, ctx.get("task_slug"), ctx.get("map_index"),
                         pendulum.from_timestamp(record.created), record.levelno,
                         record.name, message_with_traceback(record))
        with self._lock:
            self._flush_locked()  # a record never lands before the transitions it follows
            self.store.record_logs([entry])

    @contextmanager
    def heartbeat(self, interval: float = HEARTBEAT_SECONDS) -> Iterator[None]:
        """While the block runs, refresh the run's heartbeat and flush every ``interval``."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    with self._lock:
                        self._flush_locked()
                        self.store.heartbeat(self.flow_run_id)
                except Exception:  # the main thread's next write will raise it too
                    log.exception("could not refresh the heartbeat of run %s", self.flow_run_id)

        thread = threading.Thread(target=beat, daemon=True, name="cairnflow-heartbeat")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
