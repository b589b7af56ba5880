"""Prefect 1's ``prefect.tasks.core.collections``;
the real home is ``cairnflow.core.collections``."""

from cairnflow.core.collections import (  # noqa: F401 - re-exported
    List, Tuple, Set, Dict,
)

__all__ = ["List", "Tuple", "Set", "Dict"]
