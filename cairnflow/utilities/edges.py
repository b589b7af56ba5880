"""Prefect 1's ``prefect.utilities.edges``; the real home is ``cairnflow.core.edge``."""

from cairnflow.core.edge import (  # noqa: F401 - re-exported
    EdgeAnnotation, unmapped, mapped, flatten,
)

__all__ = ["EdgeAnnotation", "unmapped", "mapped", "flatten"]
