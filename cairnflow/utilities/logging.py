"""Prefect 1's ``prefect.utilities.logging``; the real home is ``cairnflow.context``."""

from cairnflow.context import (  # noqa: F401 - re-exported
    get_logger,
)

__all__ = ["get_logger"]
