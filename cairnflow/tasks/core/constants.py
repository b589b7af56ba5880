"""Prefect 1's ``prefect.tasks.core.constants``;
the real home is ``cairnflow.core.collections``."""

from cairnflow.core.collections import (  # noqa: F401 - re-exported
    Constant,
)

__all__ = ["Constant"]
