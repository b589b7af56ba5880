"""Prefect 1's ``prefect.engine``: the runners, and the engine modules below it."""

from cairnflow.runner.facade import (  # noqa: F401 - re-exported
    FlowRunner, TaskRunner, get_default_flow_runner_class, get_default_task_runner_class,
)
from cairnflow.engine import (  # noqa: F401 - Prefect 1 imported its submodules here
    cache_validators, executors, flow_runner, result, results, serializers, signals, state,
    task_runner,
)

__all__ = [
    "FlowRunner", "TaskRunner", "get_default_flow_runner_class",
    "get_default_task_runner_class",
]
