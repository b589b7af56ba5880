"""Running a flow: schedule its task runs, map, and decide the final state.

``FlowRunner`` hands each task to the ``TaskRunner`` once its upstream tasks
are done: in dependency order with a sequential executor, or as soon as they
are ready with a parallel one. A mapped task is planned here (``_plan_map``)
into children, which run like any task run.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cairnflow.context import (
    DATE_KEYS, RUN_DATES, RunDates, current as current_context, dates_of, enter as enter_context,
    leave as leave_context,
)
from cairnflow.core.flow import Flow
from cairnflow.core.task import Task
from cairnflow.runner import logs
from cairnflow.runner.executors import Executor
from cairnflow.runner.recorder import PENDING_CHILD_MESSAGE, Recorder
from cairnflow.runner.task_runner import UPSTREAM_SKIPPED, TaskRunner, flat_states
from cairnflow.states import (
    Cancelled, Failed, Mapped, Paused, Pending, Running, Scheduled, Skipped, State, Success,
    entered_at,
)
from cairnflow.statestore.base import FlowRunRecord, StateStore, TaskKey, Transition
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

if TYPE_CHECKING:
    from concurrent.futures import Future

    from cairnflow.statestore.read_records import ResumeData

log = logging.getLogger("cairnflow.flow_runner")

ChildPlan = list[tuple[list[State], dict[str, Any], list[Any]]]  # states, inputs, edges
UNMAPPABLE = "At least one upstream state has an unmappable result."
_TASK_RUN_KEYS = frozenset({"map_index", "logger", "resume"})


class FlowRun:
    """What every task run of one flow-run attempt shares."""

    def __init__(self, flow: Flow, store: StateStore, executor: Executor, record: FlowRunRecord,
                 parameters: dict[str, Any], prior: ResumeData | None,
                 on_transition: Callable[[Transition], None] | None,
                 extra_context: dict[str, Any] | None, scheduled_start_time: Any,
                 crashed: list[Transition] | None = None):
        self.flow = flow
        self.store = store
        self.executor = executor
        self.record = record
        self.parameters = parameters
        self.recorder = Recorder(store, record.id, record.attempt, on_transition)
        self.prior_states: dict[TaskKey, Any] = prior.task_runs if prior else {}
        self.prior_results = prior.results if prior else {}
        self.crashed = crashed or []  # the dead attempt's Crashed records, to commit first
        self.last_states: dict[TaskKey, State] = {}
        self.given_states: dict[Task, State] = {}  # flow.run(task_states=...)
        self._loggers: dict[str, logging.Logger] = {}
        extra = dict(extra_context or {})
        self.base_context: dict[str, Any] = {
            # as in Prefect 1, `with context(x=1): flow.run()` makes x visible to tasks;
            # engine internals, an enclosing task run's own values and its run's dates
            # are not inherited
            **{k: v for k, v in current_context().items()
               if not k.startswith(("_", "task_")) and k not in _TASK_RUN_KEYS
               and k not in DATE_KEYS},
            **_dates(extra.pop("date", None), scheduled_start_time), **extra,
            "flow_name": flow.name, "flow_run_id": record.id, "parameters": parameters,
            "flow_run_attempt": record.attempt,
            "_log_sink": self.recorder.log_record,
        }
        if scheduled_start_time:
            self.base_context["scheduled_start_time"] = scheduled_start_time

    def task_context(self, task: Task, slug: str, map_index: int | None) -> dict[str, Any]:
        """The context a task run's trigger and code see (a fresh dict per task run)."""
        full_name = task.name if map_index is None else f"{task.name}[{map_index}]"
        ctx = {
            **self.base_context, "task_name": task.name, "task_slug": slug,
            "task_full_name": full_name, "map_index": map_index, "task_tags": task.tags,
            "task_run_id": f"{self.record.id}/{slug}" + ("" if map_index is None else f"/{map_index}"),
            "task_run_count": 1, "task_loop_count": 1,
            "logger": self._loggers.get(task.name) or self._logger(task.name),
        }
        if self.prior_states:
            prior = self.prior_states.get((slug, map_index))
            if prior is not None and prior.state == "Paused":
                ctx["resume"] = True  # resuming the run approves a manual_only task
        if task.log_stdout:
            ctx["_stdout_buffer"] = []
        return ctx

    def _logger(self, task_name: str) -> logging.Logger:
        logger = self._loggers.get(task_name)
        if logger is None:
            logger = self._loggers[task_name] = logging.getLogger(f"cairnflow.{task_name}")
        return logger

    def flush_stdout(self) -> None:
        logs.flush_captured_stdout()


class FlowRunner:
    """Runs one attempt of a flow run to its final state."""

    def __init__(self, run: FlowRun, notes: list[tuple[int, str]] | None = None):
        self.run = run
        self.notes = notes or []
        self.flow = run.flow
        self.task_runner = TaskRunner(run)
        self.states: dict[Task, State] = {}
        self._mapped: set[Task] | None = None

    def execute(self) -> State:
        """Run every task and return the flow's final state, with every transition recorded."""
        run, flow = self.run, self.flow
        order = flow.sorted_tasks()
        # Prefect 1's sequence: a flow run starts Scheduled, then Running, then final
        running = self._handle_flow_state(Running("Running flow."),
                                          old=Scheduled("Flow run scheduled."))
        # Every task run the run knows of starts Pending, in the start's transaction
        # (on resume, only those without a history yet: the others keep theirs).
        known, slugs = run.prior_states, flow.slugs
        pending = run.recorder.pending(
            [(slugs[t], t.name, None) for t in order if (slugs[t], None) not in known],
            entered_at(running))
        run.recorder.start(run.record, running, before=run.crashed, after=pending)
        token = enter_context(run.base_context)
        try:
            log.info("Beginning flow run %r (run %s, attempt %d)", flow.name, run.record.id,
                     run.record.attempt)
            for level, note in self.notes:
                log.log(level, note)
            with run.executor.start(), run.recorder.heartbeat(), \
                    logs.capture_stdout(_logs_stdout(order)):
                try:
                    if run.executor.parallel:
                        self._run_parallel(order)
                    else:
                        self._run_in_order(order)
                except BaseException as exc:
                    # Recorded before the executor is torn down: task code still running
                    # in its threads or processes is not waited for, and records nothing.
                    self._record_abort(exc)
                    raise
            final = self._handle_flow_state(self._terminal_state(), old=running)
            log.info("Flow run %s: %s", final.name.upper(), final.message)
        except BaseException as exc:
            self._record_abort(exc)  # when the run ended before or after its tasks
            fenced = run.recorder.fenced
            if fenced is not None and fenced is not exc:
                raise fenced from None  # the interruption was the heartbeat's, on fencing
            raise
        finally:
            leave_context(token)
        run.recorder.transition(None, flow.name, None, final, durable=True)
        run.recorder.end()
        final.result = dict(self.states)
        final.context["flow_run_id"] = run.record.id
        return final

    # -- scheduling ---------------------------------------------------------------

    def _run_in_order(self, order: tuple[Task, ...]) -> None:
        given = self.run.given_states
        mapped = self._mapped_tasks()
        for task in order:
            if given and self._take_given(task):
                continue
            if task in mapped:
                plan = self._plan_map(task)
                if isinstance(plan, State):
                    self.states[task] = plan
                    continue
                children = [self.task_runner.run(task, self._slug(task), i, ups, inputs, edges)
                            for i, (ups, inputs, edges) in enumerate(plan)]
                self.states[task] = _mapped(children)
            else:
                self.states[task] = self._run_single(task)

    def _run_parallel(self, order: tuple[Task, ...]) -> None:
        """Submit each task run as soon as its upstream tasks are done.

        A map's children are not submitted one by one: up to the executor's
        ``concurrency`` lanes each take the next child not yet taken until none is
        left (``_run_lane``), so a map costs a hand-off between threads per lane,
        not per child, and a slow child holds up only its own lane. (An executor
        that does not say how many run at once gets a lane per child.)

        Constant work per finished lane or task run, however many are in flight:
        finished futures arrive on a queue (not ``wait()`` over every running
        future), each map counts its lanes still running, and the loop commits
        what finished only when no queued task run is about to (its ``Running``
        commit carries them, grouped with its peers'; a commit per turn of this
        loop would compete with theirs).
        """
        from queue import SimpleQueue  # here: a run on LocalExecutor never needs it

        waiting = {t: len(self.flow.upstream_tasks(t)) for t in order}
        ready = deque(t for t in order if waiting[t] == 0)
        running: dict[Future, Task] = {}
        children: dict[Task, list[State | None]] = {}
        lanes: dict[Task, int] = {}  # per map: lanes still running
        finished_queue: SimpleQueue[Future] = SimpleQueue()
        workers = self.run.executor.concurrency

        def done(task: Task, state: State) -> None:
            self.states[task] = state
            for downstream in dict.fromkeys(e.downstream_task
                                            for e in self.flow.downstream_edges(task)):
                waiting[downstream] -= 1
                if waiting[downstream] == 0:
                    ready.append(downstream)

        def submit(fn: Callable[..., State], *args: Any) -> Future:
            future = self.run.executor.submit(fn, *args)
            future.add_done_callback(finished_queue.put)
            return future

        given = self.run.given_states
        while ready or running:
            while ready:
                task = ready.popleft()
                if given and self._take_given(task):
                    done(task, self.states[task])
                    continue
                if not self._is_mapped(task):
                    running[submit(self._run_single, task)] = task
                    continue
                plan = self._plan_map(task)
                if isinstance(plan, State):
                    done(task, plan)
                    continue
                if not plan:
                    done(task, _mapped([]))
                    continue
                states = children[task] = [None] * len(plan)
                untaken = deque(range(len(plan)))
                lanes[task] = min(len(plan), workers or len(plan))
                for _ in range(lanes[task]):
                    running[submit(self._run_lane, task, plan, untaken, states)] = task
            if not running:
                continue
            finished = [finished_queue.get()]
            while not finished_queue.empty():
                finished.append(finished_queue.get())
            for future in finished:
                task = running.pop(future)
                state = future.result()  # an engine or store error stops the run here
                if task not in lanes:
                    done(task, state)
                    continue
                lanes[task] -= 1
                if not lanes[task]:
                    del lanes[task]
                    done(task, _mapped(children.pop(task)))
            if not ready and (workers is None or len(running) <= workers):
                self.run.recorder.flush()  # nothing new starts: commit what just finished

    def _run_lane(self, task: Task, plan: ChildPlan, untaken: deque[int],
                  states: list[State | None]) -> None:
        """Run children of a mapped task, taking the next one not yet taken (from
        ``untaken``, shared with the map's other lanes; a deque's ``popleft`` is
        atomic) until none is left or the run has been stopped."""
        run, slug, recorder = self.task_runner.run, self._slug(task), self.run.recorder
        while not recorder.stopped:
            try:
                index = untaken.popleft()
            except IndexError:
                return
            upstream, inputs, edges = plan[index]
            states[index] = run(task, slug, index, upstream, inputs, edges)

    def _take_given(self, task: Task) -> bool:
        """A finished state given with ``flow.run(task_states=...)`` is the task's
        state, recorded as it is: the task does not run (Prefect 1's rule)."""
        state = self.run.given_states.get(task)
        if state is None or not state.is_finished():
            return False
        runner = self.task_runner
        self.states[task] = runner._finish(task, self._slug(task), None, state)
        return True

    def _run_single(self, task: Task) -> State:
        upstream: list[State] = []
        inputs = dict(self.flow.constants.get(task, ()))
        edges = self.flow.upstream_edges(task)
        for edge in edges:
            state = self.states[edge.upstream_task]
            upstream.append(state)
            if edge.key is not None:
                value = state.result
                inputs[edge.key] = _flatten(value) if edge.flattened else value
        return self.task_runner.run(task, self.flow.slugs[task], None, upstream, inputs, edges)

    # -- mapping --------------------------------------------------------------------

    def _is_mapped(self, task: Task) -> bool:
        return task in self._mapped_tasks()

    def _mapped_tasks(self) -> set[Task]:
        mapped = self._mapped
        if mapped is None:
            mapped = self._mapped = {e.downstream_task for e in self.flow.edges if e.mapped}
        return mapped

    def _plan_map(self, task: Task) -> State | ChildPlan:
        """The children of a mapped task (their upstream states and inputs), or the
        state the whole task ends in when it cannot map."""
        slug = self._slug(task)
        edges = self.flow.upstream_edges(task)
        upstream = [(e, self.states[e.upstream_task]) for e in edges]
        parent_level = [s for _, s in upstream if not isinstance(s, Mapped)]
        state = self._check_map_ready(task, slug, upstream, parent_level)
        if isinstance(state, Pending):
            return state  # behind a Paused task: still Pending, as recorded at the start
        if state is not None:
            return self.task_runner.enter(task, slug, None, state)
        columns: list[tuple[Any, list[Any], list[State] | None]] = []
        for edge, s in upstream:
            if edge.mapped:
                values, child_states = _map_values(s, edge.flattened)
                if values is None:
                    return self.task_runner.enter(task, slug, None, Failed(UNMAPPABLE))
                columns.append((edge, values, child_states))
        lengths = [len(values) for _, values, _ in columns]
        count = min(lengths) if lengths else 0
        shared = dict(self.flow.constants.get(task, ()))
        shared_states = []
        child_edges = [e for e, _ in upstream if not e.mapped] + [e for e, _, _ in columns]
        for edge, s in upstream:
            if not edge.mapped:
                shared_states.append(s)
                if edge.key is not None:
                    value = s.result
                    shared[edge.key] = _flatten(value) if edge.flattened else value
        plan: ChildPlan = []
        for i in range(count):
            inputs = dict(shared)
            states = list(shared_states)
            for edge, values, child_states in columns:
                if edge.key is not None:
                    inputs[edge.key] = values[i]
                states.append(child_states[i] if child_states else self.states[edge.upstream_task])
            plan.append((states, inputs, child_edges))
        # The children start Pending when their map expands, in the Mapped's transaction
        # (on resume, those the map had before keep their history).
        known = self.run.prior_states
        mapped = Mapped(_mapped_message(len(plan)))
        children = self.run.recorder.pending(
            [(slug, task.name, i) for i in range(len(plan)) if (slug, i) not in known],
            entered_at(mapped), PENDING_CHILD_MESSAGE)
        prior = known.get((slug, None))
        if prior is None or prior.state != "Mapped":
            self.task_runner.enter(task, slug, None, mapped, then=children)
        elif children:
            self.run.recorder.record(children)
        return plan

    def _check_map_ready(self, task: Task, slug: str, upstream: list[tuple[Any, State]],
                         parent_level: list[State]) -> State | None:
        if not all(s.is_finished() for s in parent_level):
            return Pending("Upstream tasks are not finished.")
        if task.skip_on_upstream_skip and any(s.is_skipped() for s in parent_level):
            return Skipped(UPSTREAM_SKIPPED)
        unusable = [s for e, s in upstream
                    if e.mapped and not isinstance(s, Mapped) and not s.is_successful()]
        if unusable:
            ctx = self.run.task_context(task, slug, None)
            verdict = self.task_runner.check_trigger(
                task, ctx, flat_states(s for _, s in upstream), [e for e, _ in upstream],
                [s for _, s in upstream])
            return verdict or Failed(UNMAPPABLE)
        return None

    # -- the end --------------------------------------------------------------------

    def _final_state(self) -> State:
        """Prefect 1's rule over the reference tasks (mapped tasks count as their children).

        While a terminal task is unfinished (behind a ``manual_only`` trigger) the
        run is Paused, whatever the reference tasks say, so it can be resumed.
        """
        terminal = flat_states(self.states[t] for t in self.flow.terminal_tasks())
        waiting = sum(1 for s in terminal if not s.is_finished())
        if waiting:
            return Paused(f"{waiting} task runs are waiting for approval; "
                          "resume the run to approve them.")
        reference = flat_states(self.states[t] for t in self.flow.reference_tasks())
        if any(s.is_failed() for s in reference):
            return Failed("Some reference tasks failed.")
        if all(s.is_successful() for s in reference):
            return Success("All reference tasks succeeded.")
        return Success("All reference tasks finished.")

    def _terminal_state(self) -> State:
        """The final state, through the flow's ``terminal_state_handler`` if it has one
        (called with the reference tasks' states, as in Prefect 1)."""
        final = self._final_state()
        handler = getattr(self.flow, "terminal_state_handler", None)
        if handler is not None:
            reference = {self.states[t] for t in self.flow.reference_tasks()}
            final = handler(self.flow, final, reference) or final
        return final

    def _handle_flow_state(self, new: State, old: State | None = None) -> State:
        """Call the flow's state handlers (Prefect 1 calls them on Running too), then
        its ``on_failure`` when the new state is a failure."""
        old = old or Running("Running flow.")
        for handler in self.flow.state_handlers:
            new = handler(self.flow, old, new) or new
        on_failure = getattr(self.flow, "on_failure", None)
        if on_failure is not None and new.is_failed():
            on_failure(self.flow, new)
        return new

    def _record_abort(self, exc: BaseException) -> None:
        """Record how the run ended when it did not end normally, if the store allows:
        the task runs it interrupted, then the flow run (once; never when fenced out)."""
        if isinstance(exc, KeyboardInterrupt):
            state: State = Cancelled("The flow run was interrupted.")
            closed: State = Cancelled("The flow run was interrupted while this task run "
                                      "was running.")
        else:
            state = Failed(f"Unexpected error while running flow: {exc!r}")
            closed = Failed(f"The flow run stopped on an error while this task run was "
                            f"running: {exc!r}")
        try:
            self.run.recorder.abort(self.flow.name, state, closed)
        except Exception:
            log.debug("could not record the end of run %s", self.run.record.id, exc_info=True)

    def _slug(self, task: Task) -> str:
        return self.flow.slugs[task]


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """While a run runs, Python's cyclic garbage collector skips the objects that existed
    when it started (``gc.freeze``): the flow's graph and everything the program built
    before. Measured on the 10,000-task chain: the one full collection a run triggers
    traversed them all, about a sixth of the engine's time. Garbage among those
    objects is collected after the run (``gc.unfreeze``). Left alone when the program
    froze objects itself, or has the collector disabled."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _dates(given: Any, scheduled_start_time: Any) -> dict[str, Any]:
    """The context's ``date`` and the day names derived from it, as Prefect 1's has them:
    made when first read (``RunDates``), unless the run's context gives a ``date`` (a
    datetime or ISO text), which moves them all."""
    if given is None:
        return {RUN_DATES: RunDates(time.time(), scheduled=bool(scheduled_start_time))}
    now = pendulum.now("UTC")
    if isinstance(given, str):
        try:
            given = pendulum.parse(given)
        except Exception:
            given = None
    if not isinstance(given, pendulum.DateTime):
        if given is not None:
            log.warning("`date` was set in the context but is not a datetime; `today` and "
                        "the other dates are based on the current time instead.")
        given = now
    return {**dates_of(given), "scheduled_start_time": now}


def _logs_stdout(tasks: Iterable[Task]) -> bool:
    """Whether any task logs its stdout (a plain loop: any() over a generator is 4x it)."""
    for task in tasks:
        if task.log_stdout:
            return True
    return False


def _mapped_message(count: int) -> str:
    return f"Mapped {count} task runs."


def mapped_count(message: str | None) -> int | None:
    """How many children a ``Mapped`` transition's message announces (None: unknown).

    Progress displays count a map's children from the moment it expands.
    """
    match = _MAPPED.fullmatch(message or "")
    return int(match.group(1)) if match else None


_MAPPED = re.compile(r"Mapped (\d+) task runs\.")


def _mapped(children: list[State]) -> Mapped:
    """A mapped task's final state: its children's, and (as in Prefect 1) their results."""
    return Mapped(_mapped_message(len(children)), result=[c.result for c in children],
                  map_states=children)


def _flatten(value: Any) -> list[Any]:
    return [item for inner in value for item in inner]


def _map_values(state: State, flattened: bool) -> tuple[list[Any] | None, list[State] | None]:
    """The elements a mapped edge iterates over, and each one's upstream state."""
    if isinstance(state, Mapped):
        children = state.map_states
        if not flattened:
            return [c.result for c in children], list(children)
        values, states = [], []
        for child in children:
            for item in child.result:
                values.append(item)
                states.append(child)
        return values, states
    result = state.result
    if flattened:
        result = _flatten(result)
    if isinstance(result, (str, bytes, dict)) or not (isinstance(result, Sized) and isinstance(result, Iterable)):
        return None, None
    return list(result), None
