"""Prefect 1's ``prefect.engine.executors``; executors live in ``cairnflow.runner.executors``."""

from cairnflow.runner.executors import (  # noqa: F401 - re-exported
    Executor, LocalExecutor, LocalDaskExecutor, DaskExecutor,
)

__all__ = ["Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor"]
