"""Signals: raise one inside a task to put it in the matching state.

As in Prefect 1 they derive from ``BaseException``, so a task's own
``except Exception:`` does not swallow them.

Example:
    >>> from cairnflow import signals
    >>> try:
    ...     raise signals.SKIP("nothing to do today")
    ... except signals.PrefectStateSignal as sig:
    ...     print(sig.state)
    <Skipped: "nothing to do today">
"""

from __future__ import annotations

from typing import Any

from cairnflow import states

__all__ = [
    "PrefectSignal", "PrefectStateSignal", "FAIL", "TRIGGERFAIL", "VALIDATIONFAIL",
    "SUCCESS", "PAUSE", "SKIP", "RETRY", "LOOP", "ENDRUN",
]


class PrefectSignal(BaseException):
    """Base class of every signal."""


class PrefectStateSignal(PrefectSignal):
    """A signal that names a state class; ``self.state`` is that state.

    Args:
        message: becomes the state's message.
        **kwargs: passed to the state (``result=``, ``start_time=`` ...).
    """

    _state_cls: type[states.State] = states.State

    def __init__(self, message: str | None = None, *args: Any, **kwargs: Any):
        super().__init__(message, *args)
        kwargs.setdefault("result", self)
        self.state = self._state_cls(message=message, **kwargs)

    def __reduce__(self):  # keep kwargs (result=, start_time=) across processes
        return _rebuild_signal, (type(self), self.state)


def _rebuild_signal(cls: type[PrefectStateSignal], state: states.State) -> PrefectStateSignal:
    signal = cls.__new__(cls)
    BaseException.__init__(signal, state.message)
    signal.state = state
    if state.result is None or isinstance(state.result, PrefectSignal):
        state.result = signal
    return signal


def _signal(name: str, state_cls: type[states.State], base: type = PrefectStateSignal,
            doc: str = "") -> type[PrefectStateSignal]:
    return type(name, (base,), {"_state_cls": state_cls, "__doc__": doc, "__module__": __name__})


# name -> (state it sets, base, what it is for)
FAIL = _signal("FAIL", states.Failed, doc="Fail the task.")
TRIGGERFAIL = _signal("TRIGGERFAIL", states.TriggerFailed, FAIL, "A trigger did not pass.")
VALIDATIONFAIL = _signal("VALIDATIONFAIL", states.ValidationFailed, FAIL, "A result is invalid.")
SUCCESS = _signal("SUCCESS", states.Success, doc="Succeed now; pass ``result=`` to set the result.")
PAUSE = _signal("PAUSE", states.Paused, doc="Wait for manual approval.")
SKIP = _signal("SKIP", states.Skipped, doc="Skip the task; downstream tasks skip too by default.")
RETRY = _signal("RETRY", states.Retrying, doc="Retry now, even past ``max_retries``.")
LOOP = _signal("LOOP", states.Looped,
               doc="Run the task again; ``result=`` is available as ``context.task_loop_result``.")


class ENDRUN(PrefectSignal):
    """End the task run in ``state`` exactly, bypassing retries."""

    def __init__(self, state: states.State | None = None):
        super().__init__(state)
        self.state = state if state is not None else states.Failed("ENDRUN raised")
