"""Prefect 1's ``prefect.tasks.control_flow.conditional``;
the real home is ``cairnflow.core.control_flow``."""

from cairnflow.core.control_flow import (  # noqa: F401 - re-exported
    ifelse, switch, merge, CompareValue, Merge,
)

__all__ = ["ifelse", "switch", "merge", "CompareValue", "Merge"]
