"""The states a flow run or task run moves through.

States form a class hierarchy, as in Prefect 1: every predicate is an
``isinstance`` check, so ``TriggerFailed(...).is_failed()`` is true and
``Skipped(...).is_successful()`` is true.

Example:
    >>> from cairnflow import states
    >>> s = states.Retrying(message="Retrying Task (after attempt 1 of 3)")
    >>> s.is_pending(), s.is_retrying(), s.is_finished()
    (True, True, False)
"""

from __future__ import annotations

import time as _time
from datetime import datetime, timezone
from typing import Any

from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy


_clock = _time.time  # one cheap clock read per state; pendulum only when read
_fromtimestamp = datetime.fromtimestamp

__all__ = [
    "State", "Pending", "Paused", "Scheduled", "Retrying", "Running", "Finished",
    "Success", "Cached", "Mapped", "Skipped", "Looped", "Failed", "TriggerFailed",
    "TimedOut", "ValidationFailed", "Crashed", "Cancelled", "Submitted", "state_from_name",
    "NAMES", "FINISHED", "SUCCESSFUL", "FAILED", "PENDING", "QUEUED", "REUSABLE_BY_RESUME",
    "is_finished", "is_successful", "is_failed", "is_reusable_by_resume", "parse_state_name",
    "INTERRUPTIBLE",
]


class State:
    """Base class of all states.

    Args:
        message: a human-readable explanation of the state.
        result: the task's return value, the exception that caused a failure,
            or, for a flow run, a dict mapping each Task to its final State.
        timestamp: when the state was entered (UTC); now by default.

    Attributes:
        context: extra facts; a flow run's final state holds ``flow_run_id``.
    """

    name = "State"
    """The class name, as the store and the CLI show it (a class attribute, set for
    each subclass: the engine reads it twice a task run, and a property is a call)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls):  # a subclass's own ``name`` is its to keep
            cls.name = cls.__name__

    def __init__(self, message: str | None = None, result: Any = None,
                 timestamp: pendulum.DateTime | None = None):
        self.message = message
        self.result = result
        # The engine makes two states per task run, and pendulum's now() cost more
        # than the rest of a state: the clock is read here, converted when read.
        self._at = _clock()
        self._timestamp = timestamp or None
        self.context: dict[str, Any] = {}

    @property
    def timestamp(self) -> pendulum.DateTime:
        """When the state was entered (UTC)."""
        stamp = self._timestamp
        if stamp is None:
            d = _fromtimestamp(self._at, timezone.utc)
            stamp = self._timestamp = pendulum.DateTime(
                d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond,
                tzinfo=pendulum.UTC)
        return stamp

    @timestamp.setter
    def timestamp(self, value: pendulum.DateTime) -> None:
        self._timestamp = value

    def __setstate__(self, state: dict[str, Any]) -> None:
        # states pickled before the lazy timestamp hold it as ``timestamp``
        if "timestamp" in state:
            state = dict(state)
            state["_timestamp"] = state.pop("timestamp")
            state.setdefault("_at", state["_timestamp"].timestamp())
        self.__dict__.update(state)

    def __repr__(self) -> str:
        if self.message:
            return f'<{type(self).__name__}: "{self.message}">'
        return f"<{type(self).__name__}>"

    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_looped(self) -> bool:
        return isinstance(self, Looped)


class Pending(State):
    """Not yet run."""


class Scheduled(Pending):
    """Waiting for ``start_time`` before running."""

    def __init__(self, message: str | None = None, result: Any = None,
                 start_time: pendulum.DateTime | None = None, **kwargs: Any):
        super().__init__(message, result, **kwargs)
        self.start_time = start_time


class Paused(Scheduled):
    """Waiting for a person to approve it (the ``manual_only`` trigger)."""


class Retrying(Scheduled):
    """Failed, and will run again at ``start_time``."""

    def __init__(self, message: str | None = None, result: Any = None,
                 start_time: pendulum.DateTime | None = None, run_count: int = 0,
                 **kwargs: Any):
        super().__init__(message, result, start_time, **kwargs)
        self.run_count = run_count


class Submitted(State):
    """Claimed by an agent, which is starting the process that will run it."""


class Running(State):
    """The task's code (or the flow) is executing."""


class Finished(State):
    """Done: no further work will happen in this run."""


class Success(Finished):
    """Finished without error."""


class Cached(Success):
    """Finished, with the result taken from a still-valid cache."""

    def __init__(self, message: str | None = None, result: Any = None,
                 cached_inputs: dict | None = None,
                 cached_result_expiration: pendulum.DateTime | None = None,
                 **kwargs: Any):
        super().__init__(message, result, **kwargs)
        self.cached_inputs = cached_inputs
        self.cached_result_expiration = cached_result_expiration


class Mapped(Success):
    """A mapped task whose children were spawned; ``map_states`` are theirs."""

    def __init__(self, message: str | None = None, result: Any = None,
                 map_states: list[State] | None = None, **kwargs: Any):
        super().__init__(message, result, **kwargs)
        self.map_states: list[State] = map_states if map_states is not None else []

    @property
    def n_map_states(self) -> int:
        return len(self.map_states)


class Skipped(Success):
    """Finished without running, deliberately (a SKIP signal or a skipped upstream)."""


class Looped(Finished):
    """Finished one iteration of a LOOP; the task runs again with this result."""

    def __init__(self, message: str | None = None, result: Any = None,
                 loop_count: int | None = None, **kwargs: Any):
        super().__init__(message, result, **kwargs)
        self.loop_count = loop_count


class Failed(Finished):
    """Finished with an error."""


class TriggerFailed(Failed):
    """Not run because its trigger did not pass."""


class TimedOut(Failed):
    """Ran past its ``timeout``."""


class ValidationFailed(Failed):
    """A result did not pass validation."""


class Crashed(Failed):
    """The process running it died before it finished."""


class Cancelled(Finished):
    """Stopped on request."""


_BY_NAME: dict[str, type[State]] = {
    cls.__name__: cls for cls in (
        State, Pending, Scheduled, Paused, Retrying, Submitted, Running, Finished, Success,
        Cached, Mapped, Skipped, Looped, Failed, TriggerFailed, TimedOut,
        ValidationFailed, Crashed, Cancelled,
    )
}


def entered_at(state: State) -> datetime:
    """When ``state`` was entered, as an aware datetime, without making the pendulum
    one (engine use: what the store records, the same instant ``timestamp`` shows)."""
    stamp = state._timestamp
    if stamp is not None:
        return stamp
    return _fromtimestamp(state._at, timezone.utc)


def state_from_name(name: str) -> type[State]:
    """The state class called ``name`` (as stored); raises ``KeyError`` if unknown."""
    return _BY_NAME[name]


# -- the vocabulary of stored state names ---------------------------------------------
# The store, the CLI, the client and the server hold states by name. Every question
# about a name ("is it finished?", "may resume reuse it?") is answered here, once.


def _kinds(base: type[State]) -> frozenset[str]:
    return frozenset(n for n, cls in _BY_NAME.items() if issubclass(cls, base))


NAMES: frozenset[str] = frozenset(n for n in _BY_NAME if n != "State")
"""Every state name a run or task run can be stored in."""

FINISHED: frozenset[str] = _kinds(Finished)
"""Names of Finished states: no more work happens in this attempt."""

SUCCESSFUL: frozenset[str] = _kinds(Success)
"""Names of Success states (Cached, Mapped and Skipped included, as in Prefect 1)."""

FAILED: frozenset[str] = _kinds(Failed)
"""Names of Failed states (TriggerFailed, TimedOut, Crashed included)."""

PENDING: frozenset[str] = _kinds(Pending)
"""Names of Pending states (Scheduled, Paused, Retrying included)."""

QUEUED: frozenset[str] = frozenset({"Scheduled", "Submitted"})
"""A flow run waiting for an agent (Scheduled) or being started by one (Submitted)."""

UNDER_WAY: frozenset[str] = QUEUED | {"Pending", "Running"}
"""A flow run that has not ended: waiting for an agent, starting, or running. (A
Running run whose process died is reported Crashed, so it is not under way.)"""

REUSABLE_BY_RESUME: frozenset[str] = frozenset({"Success", "Cached", "Skipped"})
"""Task run states a resume takes as they are (Success and Cached need their result)."""

NEEDS_RESULT_TO_REUSE: frozenset[str] = frozenset({"Success", "Cached"})
"""Of ``REUSABLE_BY_RESUME``, those reused only with a checkpointed result."""


def is_finished(name: str) -> bool:
    """Whether a stored state name is a Finished state (unknown names are not)."""
    return name in FINISHED


def is_under_way(name: str) -> bool:
    """Whether a flow run in (reported) state ``name`` has not ended yet."""
    return name in UNDER_WAY


def is_successful(name: str) -> bool:
    """Whether a stored state name is a Success state (unknown names are not)."""
    return name in SUCCESSFUL


def is_failed(name: str) -> bool:
    """Whether a stored state name is a Failed state, Crashed included."""
    return name in FAILED


def is_reusable_by_resume(name: str, has_result: bool) -> bool:
    """Whether a resume takes a task run in state ``name`` as it is, instead of running it.

    A successful task run without a checkpointed result runs again, to produce it.
    """
    if name in NEEDS_RESULT_TO_REUSE:
        return has_result
    return name in REUSABLE_BY_RESUME


def parse_state_name(text: str) -> str:
    """A state's name from any capitalisation: ``failed`` -> ``Failed``.

    Raises ``ValueError`` naming the states for anything else.
    """
    for name in _BY_NAME:
        if name != "State" and name.lower() == text.strip().lower():
            return name
    raise ValueError(f"{text!r} is not a state; use one of "
                     f"{', '.join(n for n in _BY_NAME if n != 'State')}")


INTERRUPTIBLE: frozenset[str] = frozenset({"Running", "Retrying", "Looped"})
"""Task run states of an attempt still at work on it: when the attempt ends
otherwise (Ctrl-C, an error, its process died), such a task run is closed with
its own final transition (Cancelled, Failed or Crashed) in that attempt."""
