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

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from cairnflow._lazy import lazy_module

logging = lazy_module("logging")  # for the loggers, not for every `import cairnflow`

__all__ = ["context", "get_run_logger", "get_logger", "Context", "RunDates"]

_current: ContextVar[Mapping[str, Any]] = ContextVar("cairnflow_context", default={})


DATE_KEYS = frozenset({
    "date", "today", "yesterday", "tomorrow", "today_nodash", "yesterday_nodash",
    "tomorrow_nodash", "scheduled_start_time",
})
"""The values a flow run's ``RunDates`` makes when one of them is first read."""

RUN_DATES = "_dates"
"""The context key of the run's ``RunDates`` (engine use; shipped to worker processes)."""


class RunDates:
    """A flow run's ``date``, the day names derived from it and, unless the run was
    scheduled, its ``scheduled_start_time``: made on the first read (by then
    in whatever thread or worker process reads one), from the instant the run
    started.

    They are pendulum values, and pendulum's import was a third of a one-task
    flow's process; most runs never read a date. The context holds this object
    under ``RUN_DATES``; ``Context`` and ``with_dates`` look up the keys in it.
    """

    __slots__ = ("started", "scheduled", "_made")

    def __init__(self, started: float, scheduled: bool = False):
        self.started = started
        self.scheduled = scheduled  # scheduled_start_time is given, not the start
        self._made: dict[str, Any] | None = None

    def values(self) -> dict[str, Any]:
        """The date values (computed once; the same from every thread)."""
        values = self._made
        if values is None:
            import pendulum

            values = dates_of(pendulum.from_timestamp(self.started, tz="UTC"))
            if not self.scheduled:
                values["scheduled_start_time"] = values["date"]
            self._made = values
        return values

    def __reduce__(self) -> tuple:
        return RunDates, (self.started, self.scheduled)


def dates_of(date: Any) -> dict[str, Any]:
    """``date`` (a pendulum DateTime) and Prefect 1's day names derived from it."""
    days = {"today": date, "yesterday": date.add(days=-1), "tomorrow": date.add(days=1)}
    values: dict[str, Any] = {"date": date}
    for name, day in days.items():
        values[name] = day.strftime("%Y-%m-%d")
        values[f"{name}_nodash"] = day.strftime("%Y%m%d")
    return values


def _lookup(values: Mapping[str, Any], key: str) -> Any:
    """``values[key]``, else the run's date ``key``; KeyError when neither is there."""
    try:
        return values[key]
    except KeyError:
        dates = values.get(RUN_DATES)
        if dates is None or key not in DATE_KEYS:
            raise
        return dates.values()[key]


def with_dates(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the run's dates made and added (values set in it win)."""
    dates = values.get(RUN_DATES)
    return {**values} if dates is None else {**dates.values(), **values}


class Context:
    """Read access to the current run context, and ``with context(**values)``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return _lookup(_current.get(), key)
        except KeyError:
            raise AttributeError(f"context has no value {key!r}") from None

    def __getitem__(self, key: str) -> Any:
        return _lookup(_current.get(), key)

    def __contains__(self, key: object) -> bool:
        values = _current.get()
        return key in values or (key in DATE_KEYS and RUN_DATES in values)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        try:
            return _lookup(_current.get(), key)
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """A copy of every value currently set."""
        return {k: v for k, v in with_dates(_current.get()).items() if not k.startswith("_")}

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


# The engine enters a context twice per task run: the ContextVar's own methods, not
# Python functions around them.
enter = _current.set
"""Make ``values`` the whole current context; returns a token for ``leave``."""

leave = _current.reset
"""Restore the context ``enter`` replaced (its token)."""


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
