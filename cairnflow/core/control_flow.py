"""Conditional branches: ``case`` and ``merge``, as in Prefect 1."""

from __future__ import annotations

from typing import Any

from cairnflow import signals, triggers
from cairnflow.core.flow import Flow, _active_case, require_flow
from cairnflow.core.task import Task

__all__ = ["case", "merge", "CompareValue", "Merge"]


class CompareValue(Task):
    """Skips (and so skips its downstream tasks) unless ``value`` equals the case's."""

    def __init__(self, value: Any, **kwargs: Any):
        self.value = value
        super().__init__(**kwargs)

    def run(self, value: Any) -> None:
        if value != self.value:
            raise signals.SKIP(f'Provided value "{value}" did not match "{self.value}"')


class case:  # noqa: N801 - Prefect 1's name
    """Run the tasks created in this block only when ``task``'s result equals ``value``.

    Tasks of the block that have no upstream task inside it get a
    ``CompareValue`` task upstream, which skips them when the value differs.

    Example:
        >>> from cairnflow import Flow, task, case, merge
        >>> @task
        ... def is_big(x):
        ...     return x > 10
        >>> @task
        ... def label(text):
        ...     return text
        >>> with Flow("branch") as flow:
        ...     cond = is_big(42)
        ...     with case(cond, True):
        ...         big = label("big")
        ...     with case(cond, False):
        ...         small = label("small")
        ...     result = merge(big, small)
        >>> flow.run().result[result].result
        'big'
    """

    def __init__(self, task: Task, value: Any):
        self.task = task
        self.value = value
        self._tasks: list[Task] = []

    def add_task(self, task: Task, flow: Flow) -> None:
        self._tasks.append(task)

    def __enter__(self) -> case:
        self._token = _active_case.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active_case.reset(self._token)
        if not self._tasks:
            return
        flow = require_flow(None, self.task)
        in_block = set(self._tasks)
        cond = CompareValue(self.value, name=f"case({self.value})").bind(value=self.task, flow=flow)
        for child in self._tasks:
            if not in_block.intersection(flow.upstream_tasks(child)):
                child.set_upstream(cond, flow=flow)


class Merge(Task):
    """Returns the first upstream result that is not None (the branch that ran)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**kwargs)

    def run(self, **task_results: Any) -> Any:
        ordered = sorted(task_results.items(), key=lambda kv: int(kv[0][len("task"):]))
        return next((v for _, v in ordered if v is not None), None)


def merge(*tasks: Task, flow: Flow | None = None) -> Task:
    """Join branches of ``case`` blocks: the result of whichever branch ran."""
    return Merge().bind(**{f"task{i + 1}": t for i, t in enumerate(tasks)}, flow=flow)
