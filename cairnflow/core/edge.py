"""Edges between tasks, and the ``unmapped`` / ``flatten`` annotations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from cairnflow.core.task import Task

__all__ = ["Edge", "EdgeAnnotation", "unmapped", "mapped", "flatten"]


class Edge(NamedTuple):
    """A dependency: ``downstream_task`` waits for ``upstream_task``.

    ``key`` names the argument the upstream result is passed as (None for a
    state-only dependency); ``mapped`` makes the downstream task map over the
    upstream result; ``flattened`` flattens it one level first.
    """

    upstream_task: Task
    downstream_task: Task
    key: str | None = None
    mapped: bool = False
    flattened: bool = False

    def __repr__(self) -> str:
        key = f" ({self.key})" if self.key else ""
        return f"<Edge{key}: {self.upstream_task.name} to {self.downstream_task.name}>"


class _EdgeAnnotation:
    def __init__(self, task: Any):
        self.task = task

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task!r})"


EdgeAnnotation = _EdgeAnnotation
"""Prefect 1's name for the base of ``unmapped``, ``mapped`` and ``flatten``."""


class unmapped(_EdgeAnnotation):  # noqa: N801 - Prefect 1's name
    """Pass this argument whole to every child of a ``.map()`` call.

    Example:
        >>> from cairnflow import Flow, task, unmapped
        >>> @task
        ... def add(x, y):
        ...     return x + y
        >>> with Flow("f") as flow:
        ...     total = add.map([1, 2, 3], y=unmapped(10))
    """


class flatten(_EdgeAnnotation):  # noqa: N801 - Prefect 1's name
    """Flatten a list of lists one level before mapping over it.

    Example:
        >>> from cairnflow import Flow, task, flatten
        >>> @task
        ... def nested():
        ...     return [[1, 2], [3]]
        >>> @task
        ... def inc(x):
        ...     return x + 1
        >>> with Flow("f") as flow:
        ...     out = inc.map(flatten(nested()))
    """


class mapped(_EdgeAnnotation):  # noqa: N801 - Prefect 1's name
    """Map over this argument even in a plain call: ``add(x=mapped([1, 2]), y=10)``.

    Example:
        >>> from cairnflow import Flow, task, mapped
        >>> @task
        ... def add(x, y):
        ...     return x + y
        >>> with Flow("f") as flow:
        ...     total = add(x=mapped([1, 2, 3]), y=10)
    """
