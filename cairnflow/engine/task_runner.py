"""Prefect 1's ``prefect.engine.task_runner``: ``TaskRunner(task=...).run(...)``;
it lives in ``cairnflow.runner.facade``."""

from cairnflow.runner.facade import (  # noqa: F401 - re-exported
    TaskRunner,
)
from cairnflow.signals import (  # noqa: F401 - re-exported
    ENDRUN,
)

__all__ = ["TaskRunner", "ENDRUN"]
