"""The runner's one way to the store: transitions, logs and the heartbeat.

Durability rule (the engine's promise, documented in the README):

* a task's ``Running`` is committed before its code is called;
* every other transition is committed at the latest together with the next
  ``Running``, the next log record, the next heartbeat, or the end of the run,
  whichever comes first, and always before anything that depends on it runs;
* a log record is committed with those transitions, or, when none waits, with
  the next commit (at the latest the heartbeat's, or the end of the run's).

So a task's ``Success`` and its result share a transaction, and a process
killed at any instant loses at most transitions (and log lines) whose effects
nothing has yet acted on: resume redoes exactly that work, and nothing
recorded is untrue. Grouping the commit of one task's ``Success`` with the
next task's ``Running``, and log records with the transitions they travel
with, saves commits without weakening that promise.

A task run's history begins with ``Pending``, committed in a transaction that
happens anyway: every task run the flow run knows of when an attempt starts
(those without a history yet) with the attempt's start, a map's children with
its ``Mapped``. So no task pays a commit for it, and a kill at any instant
leaves every task run's history beginning with its Pending.

Group commit: threads append to the buffer under a short lock of its own, and
write under another, so while one thread's commit is in flight the others'
transitions gather in the buffer; the next commit carries them all, and a
thread whose durable transition a peer's commit carried returns at once. A
map on a thread pool so commits less often than once per task. A thread with
a durable transition does not queue for the write lock: it takes the lock if
it is free, else waits to be told of the next commit and returns if that
carried its transition. (Queueing for the lock just to learn that a peer had
written it starved such threads: Python's locks are not fair, so the two or
three threads cycling fastest kept retaking the lock and committed a task or
two each time, while the others waited.) A thread that has committed commits
again, before it tells the waiting threads, while some of them wait with
transitions that arrived during its commit: woken after the first commit, they
would only have found their transition unwritten and waited again (twice the
hand-offs between threads per task).

Fencing: every write names this attempt, and the store refuses it
(``FencedOutError``) once another process has taken the run over. From then
on the recorder writes nothing more: every later write raises the same error
at once, log records are dropped, and, when the flow runs in the main thread,
the heartbeat thread interrupts it so that task code stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable, Iterator, Sequence

from cairnflow.context import current
from cairnflow.exceptions import FencedOutError
from cairnflow.states import INTERRUPTIBLE, Pending, State, entered_at
from cairnflow.statestore.base import (
    HEARTBEAT_SECONDS, FlowRunRecord, LogEntry, StateStore, Transition,
)
from cairnflow.statestore.serialize import SerializedResult

log = logging.getLogger("cairnflow.engine")

PENDING_MESSAGE = ("Not started yet: the flow run has not reached it, "
                   "or it waits for its upstream tasks.")
"""The first ``Pending`` of a task run the flow run knew of when it started."""

PENDING_CHILD_MESSAGE = ("Not started yet: created when its map expanded; "
                         "it waits for the executor to take it.")
"""The first ``Pending`` of a mapped child.

(Both say something true in 85 characters, what a task run's ``Success`` row
holds where its ``Pending`` row has only this message: "Task run succeeded." and
two timestamps. On SQLite a row written at its final size is later updated in
place, without splitting its page, so the commits of each Running and Success
write fewer pages: 3.64 a task on a 10,000-task chain instead of 4.05, measured
in ``benchmarks/store.py``.)"""

LOG_BATCH_MAX = 1000
"""Buffered log records past this many are committed without waiting for the heartbeat."""


def message_with_traceback(record: logging.LogRecord) -> str:
    """The record's message, followed by its traceback when it carries one."""
    message = record.getMessage()
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    return f"{message}\n{record.exc_text}" if record.exc_text else message


_FORMATTER = logging.Formatter()
_new_tuple = tuple.__new__


class Recorder:
    """Buffers transitions and log records of one flow-run attempt and commits them
    per the rule above."""

    def __init__(self, store: StateStore, flow_run_id: str, attempt: int,
                 on_transition: Callable[[Transition], None] | None = None):
        self.store = store
        self.flow_run_id = flow_run_id
        self.attempt = attempt
        self.on_transition = on_transition
        self.fenced: FencedOutError | None = None
        """Set once the store refused a write of this attempt: nothing more is written."""
        self._pending: list[Transition] = []
        self._logs: list[LogEntry] = []
        self._lock = threading.RLock()  # writes; a log record emitted while writing must not deadlock
        self._buffer_lock = threading.Lock()  # the buffers; never held while waiting for _lock
        self._committed_changed = threading.Condition(self._buffer_lock)  # after each write
        self._waiting = 0  # threads waiting on _committed_changed (under _buffer_lock)
        self._appended = 0  # transitions appended by ``transition``
        self._committed = 0  # how many of those are committed
        self._wake = threading.Event()
        self._ended = False
        self._aborted = False

    def transition(self, slug: str | None, name: str | None, map_index: int | None,
                   state: State, result: SerializedResult | None = None,
                   durable: bool = False, then: Sequence[Transition] = ()) -> None:
        """Record that a task run (``slug`` None: the flow run) entered ``state``.

        ``then`` (a map's children's first ``Pending``, see ``pending``) is
        buffered right behind it, so that both are committed in one transaction.
        Once the attempt has ended (``end``), this records nothing: task code
        still running in a thread when a run was interrupted finishes unrecorded.
        """
        # tuple.__new__: a NamedTuple's own __new__ is a Python function (two per task)
        record = _new_tuple(Transition, (self.flow_run_id, self.attempt, slug, name, map_index,
                                         state.name, state.message, entered_at(state), result))
        with self._buffer_lock:
            if self.fenced is not None:
                raise self.fenced
            if self._ended:
                return
            self._pending.append(record)
            if then:
                self._pending.extend(then)
            self._appended += 1
            mine = self._appended
        if durable:
            self._commit_through(mine)
        if self.on_transition is not None:
            self.on_transition(record)
            for t in then:
                self.on_transition(t)

    def pending(self, task_runs: Iterable[tuple[str, str | None, int | None]],
                when: datetime, message: str = PENDING_MESSAGE) -> list[Transition]:
        """The first transition of task runs (slug, task name, map index) the run now
        knows of: ``Pending`` at ``when``. They ride with a transition that is
        committed anyway: the attempt's start (``start``), a map's ``Mapped``
        (``transition(..., then=...)``)."""
        run_id, attempt, pending = self.flow_run_id, self.attempt, Pending.__name__
        return [_new_tuple(Transition, (run_id, attempt, slug, name, map_index, pending,
                                        message, when, None))
                for slug, name, map_index in task_runs]

    def _commit_through(self, mine: int) -> None:
        """Return once the ``mine``-th appended transition is committed: by this
        thread if the write lock is free, else by the peer holding it, or the next."""
        while True:
            if self._lock.acquire(blocking=False):
                try:
                    if self._committed < mine:  # else a peer's commit carried it
                        self._flush_locked(notify=False)
                        # Peers that appended while that commit was in flight wait
                        # for the next: write it now, and wake them once, not twice.
                        while self._waiting and self._pending:
                            self._flush_locked(notify=False)
                finally:
                    # (unlocked read: a peer that starts waiting after it has
                    # seen this commit counted, under the lock, before waiting)
                    if self._waiting:
                        self._notify_committed()
                    self._lock.release()
                return
            with self._buffer_lock:
                if self._committed >= mine:
                    return
                # Told after each write, failed ones too (the timeout: a holder of
                # the lock that is not writing, such as abort reading the store).
                self._waiting += 1
                try:
                    self._committed_changed.wait(0.05)
                finally:
                    self._waiting -= 1
                if self._committed >= mine:
                    return

    def record(self, transitions: Sequence[Transition]) -> None:
        """Buffer transitions made elsewhere (already-built records, e.g. Pending)."""
        with self._buffer_lock:
            if self.fenced is not None:
                raise self.fenced
            self._pending.extend(transitions)
        if self.on_transition is not None:
            for t in transitions:
                self.on_transition(t)

    def start(self, record: FlowRunRecord, state: State,
              before: Sequence[Transition] = (), after: Sequence[Transition] = ()) -> None:
        """Start the attempt in one transaction: its run record, ``before`` (the dead
        attempt's Crashed records), the flow run's ``state`` and ``after`` (the first
        ``Pending`` of every task run the run knows of that has no history yet, see
        ``pending``): one commit, however many tasks the flow has."""
        first = Transition(self.flow_run_id, self.attempt, None, record.flow_name, None,
                           state.name, state.message, entered_at(state))
        self.store.record_flow_run(record, [*before, first, *after])
        if self.on_transition is not None:
            for t in (*before, first, *after):
                self.on_transition(t)

    def abort(self, flow_name: str, flow_state: State, task_state: State) -> None:
        """End the attempt after an interruption or an error: commit what can be,
        close every task run the store still holds as unfinished (``INTERRUPTIBLE``)
        with ``task_state``, then the flow run with ``flow_state``; record nothing
        after. Does nothing once fenced out. Raises if the store refuses the end.
        """
        with self._lock:
            with self._buffer_lock:
                if self.fenced is not None or self._ended:
                    return
                self._ended = self._aborted = True
            try:
                self._flush_locked()
            except FencedOutError:
                return
            except Exception:
                self._salvage_locked()
            # What the store holds, not what this process buffered: a batch cut
            # short by Ctrl-C may or may not have committed.
            closing = [Transition(self.flow_run_id, self.attempt, t.task_slug, t.task_name,
                                  t.map_index, task_state.name, task_state.message,
                                  entered_at(task_state))
                       for t in self.store.get_task_runs(self.flow_run_id)
                       if t.state in INTERRUPTIBLE]
            closing.append(Transition(self.flow_run_id, self.attempt, None, flow_name, None,
                                      flow_state.name, flow_state.message,
                                      entered_at(flow_state)))
            with self._buffer_lock:
                self._pending.extend(closing)
            self._flush_locked()
        if self.on_transition is not None:
            for t in closing:
                self.on_transition(t)

    def _salvage_locked(self) -> None:
        """After a batch failed: commit its transitions one at a time, dropping
        those the store refuses (a result that cannot be written), and its logs."""
        with self._buffer_lock:
            batch, logs = self._pending, self._logs
            self._pending, self._logs = [], []
        for t in batch:
            try:
                self.store.record_transitions([t])
            except FencedOutError:
                raise
            except Exception:
                log.debug("could not record %s of %s", t.state, t.task_slug, exc_info=True)
        try:
            self.store.record_logs(logs)
        except Exception:
            log.debug("could not store log records of run %s", self.flow_run_id,
                      exc_info=True)

    @property
    def stopped(self) -> bool:
        """Whether the attempt was stopped (interrupted, or fenced out): task code
        still running then finishes unrecorded and unreported."""
        return self._aborted or self.fenced is not None

    def flush(self) -> None:
        """Commit every buffered transition and log record now."""
        with self._lock:
            self._flush_locked()

    def end(self, final: Transition | None = None) -> None:
        """The attempt has ended: commit what is buffered (and ``final``); later log
        records (from task code still running in the background) are written one by
        one, and later transitions are not recorded."""
        with self._lock:
            with self._buffer_lock:
                if final is not None:
                    self._pending.append(final)
                self._ended = True
            self._flush_locked()
        if final is not None and self.on_transition is not None:
            self.on_transition(final)

    def _notify_committed(self) -> None:
        with self._buffer_lock:
            self._committed_changed.notify_all()

    def _flush_locked(self, notify: bool = True) -> None:
        if self.fenced is not None:
            raise self.fenced
        with self._buffer_lock:
            if not (self._pending or self._logs):
                return
            batch, logs = self._pending, self._logs
            self._pending, self._logs = [], []
            upto = self._appended
        try:
            self.store.record_transitions(batch, logs)
        except FencedOutError as exc:
            self.fenced = exc
            with self._buffer_lock:
                self._committed_changed.notify_all()
            raise
        except Exception:
            # Not written: kept, in order, for the next try (the caller sees the error).
            # (On Ctrl-C the batch is dropped: it may have committed; see ``abort``.)
            with self._buffer_lock:
                self._pending[:0], self._logs[:0] = batch, logs
                self._committed_changed.notify_all()
            raise
        with self._buffer_lock:
            self._committed = max(self._committed, upto)
            if notify and self._waiting:  # (notify_all is three Python calls)
                self._committed_changed.notify_all()

    def log_record(self, record: logging.LogRecord) -> None:
        """Buffer a log record with the task run of the current context (a log sink).

        It is committed with the next transitions that are (see the rule above).
        A log call never raises: a fenced-out attempt's records are dropped.
        """
        ctx = current()
        entry = LogEntry(self.flow_run_id, ctx.get("task_slug"), ctx.get("map_index"),
                         datetime.fromtimestamp(record.created, timezone.utc), record.levelno,
                         record.name, message_with_traceback(record), self.attempt)
        with self._lock:
            with self._buffer_lock:
                if self.fenced is not None or self._aborted:
                    return
                self._logs.append(entry)
                flush_now = self._ended or bool(self._pending)
                many = len(self._logs) >= LOG_BATCH_MAX
            if flush_now:
                # A log record commits the transitions waiting before it (the rule
                # above), in one transaction with it.
                self._flush_quietly()
            elif many:
                self._wake.set()

    def _flush_quietly(self) -> None:
        try:
            self._flush_locked()
        except FencedOutError:
            pass
        except Exception:
            log.debug("could not store a log record of run %s", self.flow_run_id,
                      exc_info=True)

    @contextmanager
    def heartbeat(self, interval: float = HEARTBEAT_SECONDS) -> Iterator[None]:
        """While the block runs, refresh the run's heartbeat and flush every ``interval``
        (sooner when many log records wait).

        When the store says this attempt lost its claim, and the block runs in
        the main thread, the main thread is interrupted (SIGINT) so that task
        code stops at once; the engine then reports ``FencedOutError``.
        """
        stop = threading.Event()
        interrupt_main = threading.current_thread() is threading.main_thread()

        def beat() -> None:
            while not stop.is_set():
                woken = self._wake.wait(interval)
                self._wake.clear()
                if stop.is_set():
                    return
                try:
                    with self._lock:
                        self._flush_locked()
                        if not woken:
                            self.store.heartbeat(self.flow_run_id, self.attempt)
                except FencedOutError as exc:
                    with self._lock:
                        self.fenced = self.fenced or exc
                    if interrupt_main and \
                            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                        os.kill(os.getpid(), signal.SIGINT)
                    return
                except Exception:  # the main thread's next write will raise it too
                    log.exception("could not refresh the heartbeat of run %s", self.flow_run_id)

        thread = threading.Thread(target=beat, daemon=True, name="cairnflow-heartbeat")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            self._wake.set()
            thread.join()
