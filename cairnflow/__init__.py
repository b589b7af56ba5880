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

from importlib.metadata import PackageNotFoundError, version

from cairnflow import executors, schedules, signals, states, triggers
from cairnflow.context import context, get_run_logger
from cairnflow.core import Flow, Parameter, Task, case, flatten, merge, task, unmapped

try:
    __version__ = version("cairnflow")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Flow", "Parameter", "Task", "case", "context", "executors", "flatten", "get_run_logger",
    "merge", "schedules", "signals", "states", "task", "triggers", "unmapped", "__version__",
]
