"""Helpers for building flows, as Prefect 1's ``utilities.tasks`` has them:
``tags``, ``defaults_from_attrs`` and ``apply_map``."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cairnflow.core import flow as _flow
from cairnflow.core.collections import Constant, as_task
from cairnflow.core.edge import _EdgeAnnotation, flatten, unmapped
from cairnflow.core.task import Task, _active_tags

__all__ = ["tags", "defaults_from_attrs", "apply_map"]


@contextmanager
def tags(*names: str) -> Iterator[None]:
    """Add ``names`` to the tags of every task created (or called) in the block.

    Example:
        >>> from cairnflow import Flow, task, tags
        >>> @task
        ... def add(x, y):
        ...     return x + y
        >>> with Flow("f"):
        ...     with tags("math", "function"):
        ...         result = add(1, 5)
        >>> sorted(result.tags)
        ['function', 'math']
    """
    token = _active_tags.set(_active_tags.get() | frozenset(names))
    try:
        yield
    finally:
        _active_tags.reset(token)


def defaults_from_attrs(*attr_args: str) -> Callable[[Callable], Callable]:
    """Decorate a ``run`` method: an argument not passed takes ``self.<name>``.

    Example:
        >>> from cairnflow import Task
        >>> from cairnflow.utilities.tasks import defaults_from_attrs
        >>> class MyTask(Task):
        ...     def __init__(self, a=None, **kwargs):
        ...         self.a = a
        ...         super().__init__(**kwargs)
        ...     @defaults_from_attrs("a")
        ...     def run(self, a=None):
        ...         return a
        >>> MyTask(a=1).run(), MyTask(a=1).run(a=99)
        (1, 99)
    """
    def wrapper(run_method: Callable) -> Callable:
        @functools.wraps(run_method)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            for attr in attr_args:
                kwargs.setdefault(attr, getattr(self, attr))
            return run_method(self, *args, **kwargs)

        return method

    return wrapper


def apply_map(func: Callable[..., Any], *args: Any, flow: _flow.Flow | None = None,
              **kwargs: Any) -> Any:
    """Map a function that adds tasks to a flow across its arguments, element-wise.

    Every task ``func`` creates becomes a mapped task; wrap an argument in
    ``unmapped`` to pass it whole, in ``flatten`` to flatten it first. ``case``
    blocks inside ``func`` work per element.

    Example:
        >>> from cairnflow import Flow, task, case, apply_map
        >>> from cairnflow.tasks.control_flow import merge
        >>> @task
        ... def inc(x):
        ...     return x + 1
        >>> @task
        ... def is_even(x):
        ...     return x % 2 == 0
        >>> def inc_if_even(x):
        ...     with case(is_even(x), True):
        ...         x2 = inc(x)
        ...     return merge(x, x2)
        >>> with Flow("example") as flow:
        ...     out = apply_map(inc_if_even, range(4))
        >>> flow.run().result[out].result
        [1, 1, 3, 3]
    """
    no_flow_given = flow is None
    flow = flow or _flow.active_flow()
    if flow is None:
        raise ValueError("Couldn't infer a flow in the current context")
    for value in itertools.chain(args, kwargs.values()):
        if not isinstance(value, (Task, _EdgeAnnotation, Sequence)):
            raise TypeError(f"Cannot map over non-sequence object of type "
                            f"`{type(value).__name__}`")
    original = flow.tasks
    sub = _flow.Flow("temporary flow")
    info: dict[Task, tuple[bool, bool, bool]] = {}  # arg -> (mapped, constant, flattened)
    constants: dict[int, Task] = {}

    def preprocess(value: Any) -> Task:
        case_token = _flow._active_case.set(None)
        try:
            as_arg = as_task(value.task if isinstance(value, _EdgeAnnotation) else value,
                             flow=sub)
        finally:
            _flow._active_case.reset(case_token)
        is_mapped = not isinstance(value, unmapped)
        is_constant = isinstance(as_arg, Constant)
        info[as_arg] = (is_mapped, is_constant, isinstance(value, flatten))
        if not is_constant:
            sub.add_task(as_arg)
            flow.add_task(as_arg)
        elif is_mapped:
            constants[id(as_arg.value)] = as_arg
        return as_arg

    args2 = [preprocess(a) for a in args]
    kwargs2 = {k: preprocess(v) for k, v in kwargs.items()}
    case_token = _flow._active_case.set(None)
    try:
        with sub:
            result = func(*args2, **kwargs2) if no_flow_given \
                else func(*args2, flow=sub, **kwargs2)
    finally:
        _flow._active_case.reset(case_token)
    _copy_subgraph(flow, sub, info, constants)
    _depend_on_every_argument(flow, sub.tasks - original - set(info), info)
    return result


def _copy_subgraph(flow: _flow.Flow, sub: _flow.Flow, info: dict[Task, tuple],
                   constants: dict[int, Task]) -> None:
    """Add ``sub``'s tasks and edges to ``flow``; every edge is mapped unless it
    comes from an unmapped argument, as in Prefect 1."""
    for task in sub.sorted_tasks():
        flow.add_task(task)
    for task in sub.sorted_tasks():
        for edge in sub.upstream_edges(task):
            is_mapped, _, flattened = info.get(edge.upstream_task, (True, False, False))
            flow.add_edge(edge.upstream_task, task, key=edge.key, mapped=is_mapped,
                          flattened=flattened)
    for task, values in sub.constants.items():
        for key, value in values.items():
            const = constants.get(id(value))
            if const is None:
                flow.constants.setdefault(task, {})[key] = value
                continue
            flow.add_edge(const, task, key=key, mapped=True, flattened=info[const][2])


def _depend_on_every_argument(flow: _flow.Flow, new_tasks: set[Task],
                              info: dict[Task, tuple]) -> None:
    """Tasks ``func`` created that have no upstream among its other tasks depend on
    every argument (but unmapped constants), so all elements map together."""
    for task in new_tasks:
        upstream = flow.upstream_tasks(task)
        if upstream & new_tasks:
            continue
        for arg, (is_mapped, is_constant, flattened) in info.items():
            if arg not in upstream and (is_mapped or not is_constant):
                flow.add_task(arg)
                flow.add_edge(arg, task, mapped=is_mapped, flattened=flattened)


def pause_task(message: str | None = None, duration: Any = None) -> None:
    """Pause the running task until the run is resumed (which approves it).

    ``duration`` (a timedelta) is accepted for Prefect 1's signature; cairnflow
    resumes a paused task only when the run is resumed.
    """
    from cairnflow import signals
    from cairnflow.context import context

    if not context.get("resume", False):
        raise signals.PAUSE(message or "Pause signal raised during task execution.")
