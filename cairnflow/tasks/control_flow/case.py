"""Prefect 1's ``prefect.tasks.control_flow.case``;
the real home is ``cairnflow.core.control_flow``."""

from cairnflow.core.control_flow import (  # noqa: F401 - re-exported
    case,
)

__all__ = ["case"]
