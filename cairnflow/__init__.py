"""cairnflow: a durable, local-first workflow engine with Prefect 1 Core's API.

Every state transition of every flow run and task run is committed to a
SQLite checkpoint store, so a failed or killed run resumes where it stopped.

Example:
    >>> from cairnflow import Flow, task
    >>> @task
    ... def add(x, y=1):
    ...     return x + y
    >>> with Flow("My first flow!") as flow:
    ...     first_result = add(1, y=2)
    ...     second_result = add(x=first_result, y=100)
    >>> state = flow.run()
    >>> state.result[second_result].result
    103
"""

import importlib
from typing import TYPE_CHECKING, Any

from cairnflow import signals, states, triggers
from cairnflow.context import context, get_run_logger

if TYPE_CHECKING:  # at run time these come from __getattr__, on first use
    from cairnflow.core import Flow, Parameter, Task, case, flatten, merge, task, unmapped
    from cairnflow.core.edge import mapped
    from cairnflow.core.functional import apply_map, tags
    from cairnflow.core.parameter import DateTimeParameter
    from cairnflow.core.resource_manager import resource_manager

__all__ = [
    "DateTimeParameter", "Flow", "Parameter", "Task", "apply_map", "case", "context",
    "executors", "flatten", "get_run_logger", "mapped", "merge", "resource_manager",
    "schedules", "signals", "states", "tags", "task", "triggers", "unmapped", "__version__",
]

# Prefect 1's subpackages, imported on first use: ``cairnflow.engine.signals.SKIP``
# works after a bare ``import cairnflow``, as ``prefect.engine.signals.SKIP`` did.
# ``executors`` and ``schedules`` too: their dependencies (multiprocessing, croniter,
# pendulum's parser) are for the flows that use them, not for every ``import cairnflow``.
_SUBMODULES = frozenset({
    "cache_validators", "core", "engine", "executors", "results", "run_configs", "schedules",
    "serializers", "storage", "tasks", "utilities",
})


# The graph's names, by the module defining each, imported on first use: a command
# that only reads the store (``cairnflow runs ls``) builds no flow, and the core (with
# inspect and copy) was a tenth of that command's process.
_CORE_NAMES = {
    "cairnflow.core.control_flow": ("case", "merge"),
    "cairnflow.core.edge": ("flatten", "mapped", "unmapped"),
    "cairnflow.core.flow": ("Flow",),
    "cairnflow.core.functional": ("apply_map", "tags"),
    "cairnflow.core.parameter": ("DateTimeParameter", "Parameter"),
    "cairnflow.core.resource_manager": ("resource_manager",),
    "cairnflow.core.task": ("Task", "task"),
}
_CORE = {name: module for module, names in _CORE_NAMES.items() for name in names}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~0.1 s: only on demand

    try:
        return version("cairnflow")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name in _CORE:
        value = globals()[name] = getattr(importlib.import_module(_CORE[name]), name)
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"cairnflow.{name}")
    raise AttributeError(f"module 'cairnflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
