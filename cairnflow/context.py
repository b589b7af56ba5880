"""The run context: what a running task can know about its run.

Inside a task, ``context.get("key")`` or ``context.key`` reads the current
value of: flow_name, flow_run_id, task_run_id, task_name, task_slug,
task_full_name, map_index, parameters, scheduled_start_time, date, today,
task_run_count, task_loop_count, task_loop_result and logger. The context is
backed by ``contextvars``, so each thread and each task sees its own.

Example:
    >>> from cairnflow import context
    >>> with context(greeting="hi"):
    ...     context.greeting
    'hi'
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["context", "get_run_logger", "get_logger", "Context"]

_current: ContextVar[Mapping[str, Any]] = ContextVar("cairnflow_context", default={})


class Context:
    """Read access to the current run context, and ``with context(**values)``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return _current.get()[key]
        except KeyError:
            raise AttributeError(f"context has no value {key!r}") from None

    def __getitem__(self, key: str) -> Any:
        return _current.get()[key]

    def __contains__(self, key: object) -> bool:
        return key in _current.get()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        return _current.get().get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """A copy of every value currently set."""
        return {k: v for k, v in _current.get().items() if not k.startswith("_")}

    @contextmanager
    def __call__(self, **values: Any) -> Iterator[Context]:
        """Set ``values`` for the duration of a ``with`` block."""
        token = _current.set({**_current.get(), **values})
        try:
            yield self
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"<Context: {sorted(self.to_dict())}>"


context = Context()


def current() -> Mapping[str, Any]:
    """The raw mapping (engine use)."""
    return _current.get()


def enter(values: Mapping[str, Any]):
    """Make ``values`` the whole current context; returns a token for ``leave``."""
    return _current.set(values)


def leave(token) -> None:
    _current.reset(token)


def get_run_logger() -> logging.Logger:
    """A logger whose records are stored with the current flow run and task run.

    Outside a run, records go to the ``cairnflow`` logger as usual.

    Example:
        >>> from cairnflow import task, get_run_logger
        >>> @task
        ... def extract():
        ...     get_run_logger().info("fetched %d rows", 3)
    """
    ctx = _current.get()
    name = ctx.get("task_name") or ctx.get("flow_name") or "run"
    return logging.getLogger(f"cairnflow.{name}")


def get_logger(name: str | None = None) -> logging.Logger:
    """Prefect 1's ``get_logger``: the ``cairnflow`` logger, or its child ``name``.

    Records emitted inside a task run are stored with the run, as
    ``get_run_logger()``'s are.
    """
    return logging.getLogger("cairnflow" if name is None else f"cairnflow.{name}")
