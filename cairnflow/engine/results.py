"""Prefect 1's ``prefect.engine.results``; results live in ``cairnflow.results``."""

from cairnflow.results import (  # noqa: F401 - re-exported
    Result, LocalResult, PrefectResult,
)

__all__ = ["Result", "LocalResult", "PrefectResult"]
