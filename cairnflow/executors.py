"""Executors, under Prefect 1's import path: ``from cairnflow import executors``."""

from cairnflow.runner.executors import (
    DaskExecutor, Executor, LocalDaskExecutor, LocalExecutor,
)

__all__ = ["Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor"]
