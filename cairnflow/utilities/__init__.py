"""Prefect 1's ``prefect.utilities``: edges, tasks, logging, context."""

from cairnflow.utilities import context, edges, logging, tasks  # noqa: F401 - as Prefect 1

__all__: list[str] = []
