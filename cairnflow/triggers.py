"""Triggers decide whether a task runs, given its upstream tasks' final states.

A trigger is a plain function of Prefect 1's ``Dict[Edge, State]``: each edge
into the task and the upstream state that came through it (a reducing task sees
a mapped upstream's ``Mapped`` state; a mapped child sees the matching child's
state). It returns True to run the task, or raises ``TRIGGERFAIL`` (the task
becomes TriggerFailed) or ``PAUSE`` (``manual_only``).

The built-in triggers count a mapped upstream as its children, and also accept
a plain collection of states; the engine hands them a flat set directly
(``takes_flat_states``), so the common case builds no dict.

Example:
    >>> from cairnflow import task, triggers
    >>> @task(trigger=triggers.any_failed)
    ... def alert():
    ...     print("something upstream failed")
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from cairnflow import signals
from cairnflow.context import context
from cairnflow.states import Mapped, State

__all__ = [
    "all_finished", "always_run", "manual_only", "all_successful", "all_failed",
    "any_successful", "any_failed", "not_all_skipped", "some_successful", "some_failed",
]

Trigger = Callable[[dict[Any, State]], bool]


def _states(upstream_states: Any) -> Collection[State]:
    """The upstream states, mapped upstreams as their children (Prefect 1's rule)."""
    if not isinstance(upstream_states, dict):
        return upstream_states  # the engine's flat set
    flat: set[State] = set()
    for state in upstream_states.values():
        if isinstance(state, Mapped) and state.map_states:
            flat.update(state.map_states)
        else:
            flat.add(state)
    return flat


def _builtin(fn: Callable[..., bool]) -> Callable[..., bool]:
    fn.takes_flat_states = True  # type: ignore[attr-defined]
    return fn


def _fail(name: str, why: str) -> signals.TRIGGERFAIL:
    return signals.TRIGGERFAIL(f'Trigger was "{name}" but {why}.')


@_builtin
def all_finished(upstream_states: Any) -> bool:
    """Run when every upstream task finished, whatever its outcome."""
    if not all(s.is_finished() for s in _states(upstream_states)):
        raise _fail("all_finished", "some of the upstream tasks were not finished")
    return True


always_run = all_finished
"""Prefect 1's alias of ``all_finished``."""


@_builtin
def manual_only(upstream_states: Any) -> bool:
    """Never run on its own: the task is Paused until a person approves it.

    Resuming the run (``cairnflow resume RUN_ID``) is the approval.
    """
    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only"')


@_builtin
def all_successful(upstream_states: Any) -> bool:
    """Run when every upstream task succeeded (the default)."""
    if not all(s.is_successful() for s in _states(upstream_states)):
        raise _fail("all_successful", "some of the upstream tasks failed")
    return True


@_builtin
def all_failed(upstream_states: Any) -> bool:
    """Run when every upstream task failed."""
    if not all(s.is_failed() for s in _states(upstream_states)):
        raise _fail("all_failed", "some of the upstream tasks succeeded")
    return True


@_builtin
def any_successful(upstream_states: Any) -> bool:
    """Run when at least one upstream task succeeded (or there are none)."""
    states = _states(upstream_states)
    if states and not any(s.is_successful() for s in states):
        raise _fail("any_successful", "none of the upstream tasks succeeded")
    return True


@_builtin
def any_failed(upstream_states: Any) -> bool:
    """Run when at least one upstream task failed (or there are none)."""
    states = _states(upstream_states)
    if states and not any(s.is_failed() for s in states):
        raise _fail("any_failed", "none of the upstream tasks failed")
    return True


@_builtin
def not_all_skipped(upstream_states: Any) -> bool:
    """Run when every upstream task succeeded and not all were skipped.

    If all were skipped, the task is skipped too (``merge`` relies on it).
    """
    states = _states(upstream_states)
    if all(s.is_skipped() for s in states):  # a root task too, as in Prefect 1
        raise signals.SKIP("All upstream tasks were skipped.", result=None)
    if not all(s.is_successful() for s in states):
        raise _fail("not_all_skipped", "some of the upstream tasks failed")
    return True


def _bounded(kind: str, predicate: Callable[[State], bool], at_least: int | float | None,
             at_most: int | float | None) -> Trigger:
    @_builtin
    def trigger(upstream_states: Any) -> bool:
        states = _states(upstream_states)
        if not states:
            return True  # as in Prefect 1: no upstream tasks, nothing to count
        total = len(states)
        count = sum(1 for s in states if predicate(s))
        low = _as_count(at_least, total, 0)
        high = _as_count(at_most, total, total)
        if not low <= count <= high:
            raise _fail(f"some_{kind}",
                        f"the number of {kind} upstream tasks ({count}) was not between "
                        f"{low} and {high}")
        return True

    trigger.__name__ = f"some_{kind}"
    return trigger


def _as_count(bound: int | float | None, total: int, default: int) -> float:
    if bound is None:
        return default
    if isinstance(bound, float) and 0 < bound < 1:
        return bound * total  # a fraction of the upstream tasks, as in Prefect 1
    return bound


def some_successful(at_least: int | float | None = None,
                    at_most: int | float | None = None) -> Trigger:
    """A trigger that runs when the number of successful upstreams is within bounds.

    Bounds are counts, or fractions between 0 and 1 of the upstream tasks.
    """
    return _bounded("successful", State.is_successful, at_least, at_most)


def some_failed(at_least: int | float | None = None,
                at_most: int | float | None = None) -> Trigger:
    """A trigger that runs when the number of failed upstreams is within bounds."""
    return _bounded("failed", State.is_failed, at_least, at_most)
