"""Prefect 1's ``prefect.engine.signals``; the signals live in ``cairnflow.signals``."""

from cairnflow.signals import (  # noqa: F401 - re-exported
    PrefectSignal, PrefectStateSignal, FAIL, TRIGGERFAIL, VALIDATIONFAIL, SUCCESS, PAUSE, SKIP,
    RETRY, LOOP, ENDRUN,
)

__all__ = [
    "PrefectSignal", "PrefectStateSignal", "FAIL", "TRIGGERFAIL", "VALIDATIONFAIL", "SUCCESS",
    "PAUSE", "SKIP", "RETRY", "LOOP", "ENDRUN",
]
