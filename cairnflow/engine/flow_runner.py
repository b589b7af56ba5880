"""Prefect 1's ``prefect.engine.flow_runner``: ``FlowRunner(flow=...).run(...)``;
it lives in ``cairnflow.runner.facade``."""

from cairnflow.runner.facade import (  # noqa: F401 - re-exported
    FlowRunner,
)

__all__ = ["FlowRunner"]
