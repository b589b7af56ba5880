"""Executors, under Prefect 1's import path: ``from cairnflow import executors``."""

from typing import Any

from cairnflow.runner.executors import Executor, LocalDaskExecutor, LocalExecutor

__all__ = ["Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor"]


def __getattr__(name: str) -> Any:
    if name == "DaskExecutor":  # imported on first use: Dask is an optional extra
        from cairnflow.runner.dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
