"""Prefect 1's ``prefect.engine.result``; results live in ``cairnflow.results``."""

from cairnflow.results import (  # noqa: F401 - re-exported
    Result, NoResult, NoResultType,
)

__all__ = ["Result", "NoResult", "NoResultType"]
