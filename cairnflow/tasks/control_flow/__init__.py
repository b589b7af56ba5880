"""Prefect 1's ``prefect.tasks.control_flow``; the real home is ``cairnflow.core.control_flow``."""

from cairnflow.core.control_flow import (  # noqa: F401 - re-exported
    case, merge, ifelse, switch, FilterTask,
)

__all__ = ["case", "merge", "ifelse", "switch", "FilterTask"]
