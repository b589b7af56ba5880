"""Prefect 1's ``prefect.utilities.context``; the real home is ``cairnflow.context``."""

from cairnflow.context import (  # noqa: F401 - re-exported
    Context, context,
)

__all__ = ["Context", "context"]
