"""Prefect 1's ``prefect.tasks.core.function``; the real home is ``cairnflow.core.task``."""

from cairnflow.core.task import (  # noqa: F401 - re-exported
    FunctionTask,
)

__all__ = ["FunctionTask"]
