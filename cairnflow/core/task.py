"""Tasks: the steps of a flow.

A task is a ``Task`` subclass with a ``run()`` method, or a function decorated
with ``@task``. Calling a task inside ``with Flow(...)`` adds a copy of it to
the flow and returns the copy; nothing runs until the flow does.
"""

from __future__ import annotations

import copy as _copy
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cairnflow import triggers as _triggers

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow
    from cairnflow.states import State

__all__ = ["Task", "task", "FunctionTask"]

StateHandler = Callable[["Task", "State", "State"], "State | None"]

_RESERVED_ARGS = frozenset({"upstream_tasks", "mapped", "task_args", "flow"})

# the tags of the enclosing ``with tags(...)`` blocks (``cairnflow.utilities.tasks.tags``)
_active_tags: ContextVar[frozenset[str]] = ContextVar("cairnflow_active_tags",
                                                      default=frozenset())


class Task:
    """A step of a flow.

    Subclass it and implement ``run()``; forward extra keyword arguments to
    ``super().__init__``.

    Args:
        name: shown in logs and the CLI; the class name by default.
        slug: a stable id unique in the flow; ``<name>-<n>`` by default.
        tags: labels; they also take part in the default slug.
        max_retries: how many times to retry after a failure.
        retry_delay: how long to wait before each retry (required with retries).
        timeout: seconds (or a timedelta) after which the run is ``TimedOut``.
        trigger: a function of the upstream states (``triggers.all_successful``).
        skip_on_upstream_skip: skip this task when an upstream task was skipped.
        cache_for: how long a successful result stays valid in the cache.
        cache_validator: decides whether a cached result still fits
            (``cairnflow.cache_validators``); ``duration_only`` by default.
        cache_key: share a cache between tasks; the slug by default.
        checkpoint: store the result so a resumed run can reuse it (default True).
        state_handlers: functions ``(task, old_state, new_state)`` called on every
            transition; a returned state replaces the new one.
        on_failure: a function ``(task, state)`` called when the task fails.
        log_stdout: store what the task prints with the run's logs.
        nout: how many values the task returns, so the result can be unpacked;
            read from a ``-> Tuple[int, int]`` return annotation when not given.
        result: a ``cairnflow.results.Result`` that also writes the task's result
            to its location (the checkpoint store keeps it in any case).
        target: a location template; when it already exists the task is
            ``Cached`` from it and does not run.
        task_run_name: a template (or a function of the inputs) naming each run,
            formatted with the task's inputs and the context.

    Example:
        >>> from cairnflow import Task
        >>> class AddTask(Task):
        ...     def __init__(self, default: int, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.default = default
        ...     def run(self, x: int, y: int | None = None) -> int:
        ...         return x + (self.default if y is None else y)
        >>> AddTask(default=1).run(1)
        2
    """

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: timedelta | None = None,
        timeout: float | timedelta | None = None,
        trigger: Callable[[set[State]], bool] | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: timedelta | None = None,
        cache_validator: Callable[..., bool] | None = None,
        cache_key: str | None = None,
        checkpoint: bool | None = None,
        state_handlers: list[StateHandler] | None = None,
        on_failure: Callable[[Task, State], None] | None = None,
        log_stdout: bool = False,
        nout: int | None = None,
        result: Any = None,
        target: str | Callable[..., str] | None = None,
        task_run_name: str | Callable[..., str] | None = None,
    ):
        if max_retries and retry_delay is None:
            raise ValueError("A datetime.timedelta `retry_delay` must be provided if max_retries > 0")
        retry_delay = _retry_delay(retry_delay)
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        if timeout is not None and timeout <= 0:
            raise ValueError("`timeout` must be a positive number of seconds")
        if cache_key is not None and cache_for is None:
            raise ValueError("`cache_key` needs `cache_for` to be set")
        self.name = name or type(self).__name__
        self.slug = slug
        self.tags = set(tags or ()) | _active_tags.get()
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.trigger = trigger or _triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.cache_for = cache_for
        self.cache_validator = cache_validator
        self.cache_key = cache_key
        self.checkpoint = True if checkpoint is None else checkpoint
        self.state_handlers = list(state_handlers or ())
        self.on_failure = on_failure
        self.log_stdout = log_stdout
        self.result = result
        self.target = target
        self.task_run_name = task_run_name
        fn = self._run_function()
        self.nout = nout if nout is not None else _nout_from_annotation(fn)
        _check_signature(fn)

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    def run(self) -> Any:
        """The work of the task; override it. The base task does nothing."""

    def _run_function(self) -> Callable[..., Any]:
        return self.run

    @property
    def logger(self) -> logging.Logger:
        """The logger of this task; inside a run its records are stored with the run."""
        return logging.getLogger(f"cairnflow.{self.name}")

    def __setstate__(self, state: dict[str, Any]) -> None:
        # tasks pickled by the first release have no result/target/task_run_name
        self.__dict__.update(state)
        for key in ("result", "target", "task_run_name"):
            self.__dict__.setdefault(key, None)

    # -- building flows ---------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A copy of this task with ``task_args`` overriding its settings."""
        new = _copy.copy(self)
        new.tags = set(self.tags) | _active_tags.get()
        new.state_handlers = list(self.state_handlers)
        if new.slug and "slug" not in task_args:
            task_args["slug"] = f"{new.slug}-copy"
        for key, value in task_args.items():
            if key == "timeout" and isinstance(value, timedelta):
                value = value.total_seconds()
            if key == "retry_delay":
                value = _retry_delay(value)
            if key == "tags":  # added to the original's tags, as in Prefect 1
                value = self.tags | set(value)
            if not hasattr(new, key):
                raise AttributeError(f"{type(self).__name__} has no setting {key!r}")
            setattr(new, key, value)
        return new

    def __call__(self, *args: Any, mapped: bool = False, task_args: dict | None = None,
                 upstream_tasks: Iterable[Any] | None = None, flow: Flow | None = None,
                 **kwargs: Any) -> Task:
        """Add a copy of this task to the active flow, bound to these arguments."""
        self._signature()  # computed once here, shared by every copy
        new = self.copy(**(task_args or {}))
        return new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(self, *args: Any, mapped: bool = False, upstream_tasks: Iterable[Any] | None = None,
             flow: Flow | None = None, **kwargs: Any) -> Task:
        """Bind arguments (values or tasks) to this task in ``flow`` (the active one)."""
        from cairnflow.core.flow import require_flow

        flow = require_flow(flow, self)
        signature = self._signature()
        try:
            callargs = dict(signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None
        # bind() gathers extra keywords under the ``**`` name; each is its own argument
        var_kw = next((p.name for p in signature.parameters.values()
                       if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        if var_kw is not None:
            callargs.update(callargs.pop(var_kw, {}))
        flow.set_dependencies(task=self, upstream_tasks=upstream_tasks,
                              keyword_tasks=callargs, mapped=mapped)
        return self

    def map(self, *args: Any, upstream_tasks: Iterable[Any] | None = None,
            flow: Flow | None = None, task_args: dict | None = None, **kwargs: Any) -> Task:
        """Run a copy of this task once per element of its (mapped) arguments."""
        return self(*args, mapped=True, upstream_tasks=upstream_tasks, flow=flow,
                    task_args=task_args, **kwargs)

    def set_upstream(self, task: Any, flow: Flow | None = None, key: str | None = None,
                     mapped: bool = False) -> Task:
        """Make this task wait for ``task`` (and receive its result as ``key``)."""
        from cairnflow.core.flow import require_flow

        require_flow(flow, self).set_dependencies(
            task=self, upstream_tasks=[task] if key is None else None,
            keyword_tasks={key: task} if key is not None else None, mapped=mapped)
        return self

    def set_downstream(self, task: Task, flow: Flow | None = None, key: str | None = None,
                       mapped: bool = False) -> Task:
        """Make ``task`` wait for this one (and receive its result as ``key``)."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)
        return self

    def _signature(self) -> inspect.Signature:
        signature = self.__dict__.get("_cached_signature")
        if signature is None:
            signature = self._cached_signature = inspect.signature(self._run_function())
        return signature

    # -- results: indexing, unpacking and operators ------------------------------

    def __getitem__(self, key: Any) -> Task:
        from cairnflow.core.collections import GetItem

        label = key.name if isinstance(key, Task) else repr(key)
        return GetItem(checkpoint=self.checkpoint, name=f"{self.name}[{label}]").bind(self, key)

    def __iter__(self) -> Iterator[Task]:
        if self.nout is None:
            raise TypeError(
                f"Task {self.name!r} is not iterable. If your task returns several values, "
                "pass `nout` to `@task` or `Task.__init__` to unpack them.")
        return (self[i] for i in range(self.nout))


def _nout_from_annotation(fn: Callable[..., Any]) -> int | None:
    """``2`` for a ``-> Tuple[int, int]`` (or ``tuple[int, int]``) return annotation."""
    annotation = getattr(fn, "__annotations__", {}).get("return")
    if annotation is None:
        return None
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn).get("return")
        except Exception:
            return None
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if args and Ellipsis not in args and args != ((),):
            return len(args)
    return None


def _check_signature(fn: Callable[..., Any]) -> None:
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ValueError("Tasks with variable positional arguments (*args) are not supported, "
                         "because all positional arguments must be named.")
    reserved = _RESERVED_ARGS.intersection(p.name for p in params)
    if reserved:
        raise ValueError(f"Tasks cannot have arguments named {sorted(reserved)}: "
                         "these names are reserved.")


class FunctionTask(Task):
    """A task whose ``run`` is a plain function (what ``@task`` makes)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any):
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.run = fn  # type: ignore[method-assign]
        super().__init__(name=name or getattr(fn, "__name__", type(self).__name__), **kwargs)
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__


def task(fn: Callable[..., Any] | None = None, **task_init_kwargs: Any) -> Any:
    """Turn a function into a task: ``@task`` or ``@task(name=..., max_retries=...)``.

    Example:
        >>> from cairnflow import task
        >>> @task
        ... def add(x, y=1):
        ...     return x + y
        >>> add.run(1, y=2)
        3
    """
    if fn is None:
        return lambda fn: FunctionTask(fn=fn, **task_init_kwargs)
    return FunctionTask(fn=fn, **task_init_kwargs)


def _operator_method(name: str, op_task: str, reverse: bool) -> Callable[..., Task]:
    def method(self: Task, other: Any) -> Task:
        from cairnflow.core import collections

        cls = getattr(collections, op_task)
        return cls()(other, self) if reverse else cls()(self, other)

    method.__name__ = name
    method.__doc__ = f"A ``{op_task}`` task applied to this task's result."
    return method


# (dunder name, operator task class, reflected?) — generated rather than written out.
_OPERATORS = [(f"__{n}__", cls, False) for n, cls in [
    ("add", "Add"), ("sub", "Sub"), ("mul", "Mul"), ("truediv", "Div"),
    ("floordiv", "FloorDiv"), ("mod", "Mod"), ("pow", "Pow"), ("and", "And"),
    ("or", "Or"), ("xor", "Xor"), ("lshift", "LShift"), ("rshift", "RShift"),
    ("lt", "LessThan"), ("le", "LessThanOrEqual"), ("gt", "GreaterThan"),
    ("ge", "GreaterThanOrEqual"),
]] + [(f"__r{n}__", cls, True) for n, cls in [
    ("add", "Add"), ("sub", "Sub"), ("mul", "Mul"), ("truediv", "Div"),
    ("floordiv", "FloorDiv"), ("mod", "Mod"), ("pow", "Pow"), ("and", "And"),
    ("or", "Or"), ("xor", "Xor"), ("lshift", "LShift"), ("rshift", "RShift"),
]] + [("is_equal", "Equal", False), ("is_not_equal", "NotEqual", False),
      ("and_", "And", False), ("or_", "Or", False)]

for _name, _cls, _reverse in _OPERATORS:
    setattr(Task, _name, _operator_method(_name, _cls, _reverse))


def _not(self: Task) -> Task:
    """A ``Not`` task applied to this task's result."""
    from cairnflow.core.collections import Not

    return Not()(self)


Task.not_ = _not  # type: ignore[attr-defined]


def _retry_delay(value: Any) -> timedelta | None:
    """A ``retry_delay`` as a timedelta: a number means seconds (SPEC); any other type
    is refused here, when the task is defined, never at its first retry."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or value != value:
            raise ValueError(f"`retry_delay` must be zero or more seconds, not {value!r}")
        return timedelta(seconds=value)
    raise TypeError(f"`retry_delay` must be a datetime.timedelta or a number of seconds, "
                    f"not {type(value).__name__} {value!r}")
