"""Prefect 1's ``prefect.engine.state``; the states live in ``cairnflow.states``."""

from cairnflow.states import (  # noqa: F401 - re-exported
    State, Pending, Paused, Scheduled, Retrying, Running, Finished, Success, Cached, Mapped,
    Skipped, Looped, Failed, TriggerFailed, TimedOut, ValidationFailed, Crashed, Cancelled,
)

__all__ = [
    "State", "Pending", "Paused", "Scheduled", "Retrying", "Running", "Finished", "Success",
    "Cached", "Mapped", "Skipped", "Looped", "Failed", "TriggerFailed", "TimedOut",
    "ValidationFailed", "Crashed", "Cancelled",
]
