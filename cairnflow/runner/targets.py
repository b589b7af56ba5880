"""Results with a location, task targets and task run names, as Prefect 1 has them.

The checkpoint store stays the source of truth: resume reuses what the store
holds before any target is looked at. A ``Result`` is a copy written where
the user asked (``@task(result=...)``, ``Flow(result=...)``); a ``target`` is a
location that, when it exists, makes the task ``Cached`` from it without
running. Locations are templates formatted with the parameters, the run
context and the task's inputs. Only flows that use results pay for any of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairnflow.context import with_dates
from cairnflow.states import Cached, Failed, State

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow
    from cairnflow.core.task import Task
    from cairnflow.results import Result

__all__ = ["uses_results", "check_target", "write_result", "run_name"]


def uses_results(flow: Flow) -> tuple[bool, bool]:
    """(any task has a target, any task writes a result): checked once per run."""
    writes = flow.result is not None
    # (the run's order, made already: no set of the tasks; any() over a generator
    # was 4x this loop, 5 ms for 10,000 tasks)
    for t in flow.sorted_tasks():
        if t.target is not None:
            return True, True
        if t.result is not None:
            writes = True
    return False, writes


def _result_of(task: Task, flow: Flow) -> Result | None:
    result = task.result if task.result is not None else flow.result
    if result is None and task.target is not None:
        from cairnflow.results import LocalResult

        result = LocalResult()
    return result


def _values(ctx: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """What a location template is formatted with (Prefect 1's order)."""
    return {**(ctx.get("parameters") or {}), **with_dates(ctx), **inputs}


def check_target(task: Task, flow: Flow, ctx: dict[str, Any],
                 inputs: dict[str, Any]) -> State | None:
    """``Cached`` from the task's target when it exists, else None (run the task)."""
    if task.target is None or not task.checkpoint:
        return None
    from cairnflow.results import format_location

    result = _result_of(task, flow)
    location = format_location(task.target, **_values(ctx, inputs))
    if not result.exists(location):
        return None
    value = result.read(location).value
    return Cached(f"Result found at task target {location}", result=value)


def write_result(task: Task, flow: Flow, ctx: dict[str, Any], inputs: dict[str, Any],
                 state: State) -> State:
    """Write a successful value to the task's result location (its target when it
    has one); a write that fails fails the task run, as in Prefect 1."""
    result = _result_of(task, flow)
    if result is None or not task.checkpoint:
        return state
    if task.target is not None:
        result = result.copy()
        result.location = task.target
    try:
        result.write(state.result, **_values(ctx, inputs))
    except Exception as exc:
        return Failed(f"Error writing the task's result to {result.location!r}: {exc!r}",
                      result=exc)
    return state


def run_name(task: Task, ctx: dict[str, Any], inputs: dict[str, Any]) -> str:
    """The task run's name from ``task_run_name`` (a template or a function),
    formatted like a location; the task's name when formatting fails."""
    from cairnflow.results import format_location

    try:
        return format_location(task.task_run_name, **_values(ctx, inputs))
    except Exception:
        return ctx["task_full_name"]
