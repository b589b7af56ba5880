"""Running one task run: a straight line of small steps, each producing a state.

``TaskRunner.run`` walks a task run (or one mapped child) through: reuse a
result from a resumed run, skip on an upstream skip, check the trigger, use a
cache, then run the code (``Running`` is committed first), looping for LOOP
and retrying failures. ``_call`` is the one place where exceptions and signals
become states; ``_enter`` the one place where a state is entered and recorded.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cairnflow.context import enter as enter_context, leave as leave_context
from cairnflow import signals
from cairnflow.runner import remote, targets
from cairnflow.runner.cache import CACHE
from cairnflow.runner.executors import Executor, TaskTimeout
from cairnflow.states import (
    Failed, Finished, Looped, Mapped, Pending, Retrying, Running, Skipped, State, Success, TimedOut,
    TriggerFailed, is_reusable_by_resume, state_from_name,
)
from cairnflow.statestore import serialize
from cairnflow.statestore.base import task_label
from cairnflow.runner.logs import TASK_FAILED
from cairnflow.triggers import all_successful
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

if TYPE_CHECKING:
    from cairnflow.core.edge import Edge
    from cairnflow.core.task import Task
    from cairnflow.statestore.base import TaskRunInfo, Transition
    from cairnflow.runner.flow_runner import FlowRun

log = logging.getLogger("cairnflow.engine")

UPSTREAM_SKIPPED = ("Upstream task was skipped; if this was not the intended behavior, "
                    "consider changing `skip_on_upstream_skip=False` for this task.")


def flat_states(states: Iterable[State]) -> set[State]:
    """Upstream states as triggers see them: a mapped task counts as its children."""
    flat: set[State] = set()
    for state in states:
        if isinstance(state, Mapped) and state.map_states:
            flat.update(state.map_states)
        else:
            flat.add(state)
    return flat


class TaskRunner:
    """Runs task runs of one flow run; shared by all its tasks and threads."""

    def __init__(self, flow_run: FlowRun):
        self.flow_run = flow_run
        self.recorder = flow_run.recorder
        self.has_targets, self.writes_results = targets.uses_results(flow_run.flow)
        # The executor calls task code in this thread, as the base class does.
        self.calls_in_place = (type(flow_run.executor).run_task_code
                               is Executor.run_task_code)

    # -- the steps ----------------------------------------------------------------

    def run(self, task: Task, slug: str, map_index: int | None,
            upstream_states: Sequence[State], inputs: dict[str, Any],
            edges: Sequence[Edge] = ()) -> State:
        """Run one task run to a final state (or Paused) and return it.

        ``edges`` are the edges ``upstream_states`` came through, in the same
        order; a trigger that is not a built-in one sees them as Prefect 1's
        ``Dict[Edge, State]``.
        """
        if self.flow_run.prior_states:
            reused = self._reuse_prior(task, slug, map_index)
            if reused is not None:
                return reused
        upstream = flat_states(upstream_states)
        # one pass over the upstream states answers the common case: all succeeded
        succeeded = skipped = False
        if upstream:
            succeeded = True
            for s in upstream:
                if not isinstance(s, Success):
                    succeeded = False
                    if not isinstance(s, Finished):
                        return Pending("Upstream tasks are not finished.")  # behind a Paused task
                elif isinstance(s, Skipped):
                    skipped = True
        ctx = self.flow_run.task_context(task, slug, map_index)
        if task.task_run_name is not None:
            ctx["task_run_name"] = ctx["task_full_name"] = targets.run_name(task, ctx, inputs)
        if skipped and task.skip_on_upstream_skip:
            state: State | None = Skipped(UPSTREAM_SKIPPED)
        elif task.trigger is all_successful and (succeeded or not upstream):
            state = None  # what the default trigger would say, without calling it
        else:
            state = self.check_trigger(task, ctx, upstream, edges, upstream_states)
        state = (state
                 or (self.has_targets and targets.check_target(task, self.flow_run.flow, ctx,
                                                               inputs))
                 or (task.cache_for is not None and self._check_cache(task, slug, inputs))
                 or None)
        if state is None:
            return self._run_with_retries(task, slug, map_index, inputs, ctx)
        return self._finish(task, slug, map_index, state)  # a Cached result is checkpointed

    def _reuse_prior(self, task: Task, slug: str, map_index: int | None) -> State | None:
        """On resume, a task run that succeeded before is not run again."""
        prior = self.flow_run.prior_states.get((slug, map_index))
        if prior is None or not is_reusable(prior):
            return None
        if prior.state == "Skipped":
            return Skipped(prior.message)
        blob = self.flow_run.prior_results[(slug, map_index)]
        value = serialize.load(blob, what=f"the result of task {task_label(slug, map_index)!r}")
        return state_from_name(prior.state)(prior.message, result=value)

    def check_trigger(self, task: Task, ctx: dict[str, Any], upstream: set[State],
                      edges: Sequence[Edge] = (),
                      upstream_states: Sequence[State] = ()) -> State | None:
        """Call the trigger: built-in triggers take the flat set of upstream states
        (the fast path); any other gets ``{edge: state}`` as in Prefect 1."""
        trigger = task.trigger
        token = enter_context(ctx)
        try:
            if getattr(trigger, "takes_flat_states", False):
                passed = trigger(upstream)
            else:
                passed = trigger(dict(zip(edges, upstream_states)))
        except signals.PrefectStateSignal as sig:
            return sig.state
        except Exception as exc:
            return TriggerFailed(f"Unexpected error while checking the task trigger: {exc!r}",
                                 result=exc)
        finally:
            leave_context(token)
        if not passed:
            name = getattr(task.trigger, "__name__", "trigger")
            return TriggerFailed(f'Trigger was "{name}" but it returned False.')
        return None

    def _check_cache(self, task: Task, slug: str, inputs: dict[str, Any]) -> State | None:
        if task.cache_for is None:
            return None
        return CACHE.lookup(self._cache_key(task, slug), task, inputs, self.flow_run.parameters)

    def _cache_key(self, task: Task, slug: str) -> str:
        return task.cache_key or f"{self.flow_run.flow.name}/{slug}"

    def _run_with_retries(self, task: Task, slug: str, map_index: int | None,
                          inputs: dict[str, Any], ctx: dict[str, Any]) -> State:
        run_count, loop_count, loop_result = 0, 1, None
        while True:
            run_count += 1
            running = self.enter(task, slug, map_index, Running("Starting task run."),
                                  durable=True)
            if not isinstance(running, Running):
                return running
            if run_count > 1 or loop_count > 1:  # task_context set both to 1
                ctx.update(task_run_count=run_count, task_loop_count=loop_count)
            if loop_count > 1:  # absent on the first iteration, as in Prefect 1
                ctx["task_loop_result"] = loop_result
            try:
                state = self._call(task, inputs, ctx)
            except signals.ENDRUN as end:  # exactly this state: no retry, no loop
                return self._finish(task, slug, map_index, end.state)
            if type(state) is Success and not self.writes_results and task.cache_for is None:
                return self._finish(task, slug, map_index, state)  # the common case
            if isinstance(state, Looped):
                state.loop_count = loop_count
                self.enter(task, slug, map_index, state)
                loop_count, loop_result = loop_count + 1, state.result
                run_count -= 1  # a loop iteration is not a retry
                continue
            if self.writes_results and type(state) is Success:
                state = targets.write_result(task, self.flow_run.flow, ctx, inputs, state)
            if isinstance(state, Failed) and run_count <= task.max_retries:
                state = Retrying(f"Retrying Task (after attempt {run_count} of "
                                 f"{task.max_retries + 1})",
                                 start_time=pendulum.now("UTC") + task.retry_delay,
                                 run_count=run_count)
            if isinstance(state, Retrying):  # from a failure, or a RETRY signal
                state = self.enter(task, slug, map_index, state)
                self._sleep_until(state)
                continue
            if isinstance(state, Success) and task.cache_for is not None:
                CACHE.store(self._cache_key(task, slug), task, state.result, inputs,
                            self.flow_run.parameters)
            return self._finish(task, slug, map_index, state)

    def _call(self, task: Task, inputs: dict[str, Any], ctx: dict[str, Any]) -> State:
        """Call the task's code: the one place where outcomes become states (except
        ``ENDRUN``, which ends the task run as it stands and so is raised on)."""
        token = enter_context(ctx)
        try:
            if self.calls_in_place and task.timeout is None:
                value = task.run(**inputs)  # what Executor.run_task_code does
            else:
                value = self.flow_run.executor.run_task_code(
                    task.run, inputs, task.timeout,
                    on_restart=lambda why: self._restarted(task, ctx, why))
        except signals.PrefectStateSignal as sig:
            return sig.state
        except TaskTimeout:
            return TimedOut("Task timed out during execution.")
        except Exception as exc:
            if self.recorder.stopped:  # the run was interrupted: its workers were stopped
                return Failed(f"Error during execution of task: {exc!r}", result=exc)
            # Stored with the task run: at 3 a.m. the traceback is what people need.
            # Named by its slug, as every face names task runs; marked, so live progress
            # shows the failure (or the retry) once, from the transitions.
            label = task_label(ctx["task_slug"], ctx["map_index"])
            remote_tb = remote.remote_traceback(exc)
            if remote_tb is not None:  # raised in a worker process
                ctx["logger"].error("Task %s failed: %r\n%s", label, exc, remote_tb,
                                    extra={TASK_FAILED: repr(exc)})
            else:
                ctx["logger"].error("Task %s failed: %r", label, exc,
                                    exc_info=(type(exc), exc, _user_frames(exc.__traceback__)),
                                    extra={TASK_FAILED: repr(exc)})
            return Failed(f"Error during execution of task: {exc!r}", result=exc)
        finally:
            if task.log_stdout:
                self.flow_run.flush_stdout()
            leave_context(token)
        return Success("Task run succeeded.", result=value)

    def _restarted(self, task: Task, ctx: dict[str, Any], why: str) -> None:
        """The executor lost the task's code (its worker died) and started it again:
        record the lost attempt's end and the new attempt's start, as they happened."""
        slug, map_index = ctx["task_slug"], ctx["map_index"]
        self.enter(task, slug, map_index, Retrying(why, start_time=pendulum.now("UTC")))
        self.enter(task, slug, map_index, Running("Started again after a lost worker."),
                   durable=True)
        ctx["task_run_count"] = ctx.get("task_run_count", 1) + 1

    def _finish(self, task: Task, slug: str, map_index: int | None, state: State) -> State:
        """Enter the final state; a successful result (Cached too) is checkpointed with
        it: every final state that carries a result comes through here."""
        blob = None
        if task.checkpoint and isinstance(state, Success) and not isinstance(state, Skipped):
            blob = self._serialize(task, slug, state.result)
        return self.enter(task, slug, map_index, state, result=blob)

    def _serialize(self, task: Task, slug: str, value: Any) -> serialize.SerializedResult | None:
        try:
            return serialize.dump(value)
        except Exception as exc:
            logging.getLogger(f"cairnflow.{task.name}").warning(
                "The result of task %r could not be pickled (%r); it is not checkpointed, so "
                "a resumed run will run this task again.", slug, exc)
            return None

    @staticmethod
    def _sleep_until(state: State) -> None:
        start = getattr(state, "start_time", None)
        if start is not None:
            delay = (start - pendulum.now("UTC")).total_seconds()
            if delay > 0:
                time.sleep(delay)

    # -- entering a state -----------------------------------------------------------

    def enter(self, task: Task, slug: str, map_index: int | None, state: State,
               result: serialize.SerializedResult | None = None, durable: bool = False,
               then: Sequence[Transition] = ()) -> State:
        """Run the state handlers, then record the state (before anything acts on it),
        with ``then`` right behind it (``Recorder.transition``)."""
        if task.state_handlers or (task.on_failure and state.is_failed()):
            state = self._handle(task, (slug, map_index), state)
        self.recorder.transition(slug, task.name, map_index, state, result=result,
                                 durable=durable, then=then)
        return state

    def _handle(self, task: Task, key: tuple[str, int | None], new: State) -> State:
        """Call the task's state handlers; an error in one fails the task run."""
        old = self.flow_run.last_states.get(key) or Pending()
        try:
            for handler in task.state_handlers:
                new = handler(task, old, new) or new
            if task.on_failure and new.is_failed():
                task.on_failure(task, new)
        except Exception as exc:
            new = Failed(f"Exception raised while calling state handlers: {exc!r}", result=exc)
        self.flow_run.last_states[key] = new
        return new


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame outside the engine: the user's code."""
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith(
            "cairnflow.runner"):
        tb = tb.tb_next
    return tb


def is_reusable(task_run: TaskRunInfo) -> bool:
    """Whether a resumed run takes this stored task run as it is instead of running it.

    A successful task run without a checkpointed result runs again, to produce it.
    """
    return is_reusable_by_resume(task_run.state, task_run.has_result)
