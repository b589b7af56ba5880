"""Prefect 1's ``prefect.tasks.control_flow.filter``;
the real home is ``cairnflow.core.control_flow``."""

from cairnflow.core.control_flow import (  # noqa: F401 - re-exported
    FilterTask,
)

__all__ = ["FilterTask"]
