"""Conditional branches: ``case``, ``merge``, ``ifelse``, ``switch`` and ``FilterTask``,
as in Prefect 1."""

from __future__ import annotations

from typing import Any

from cairnflow import signals, triggers
from cairnflow.core.flow import Flow, _active_case, require_flow
from cairnflow.core.task import Task

__all__ = ["case", "merge", "ifelse", "switch", "CompareValue", "Merge", "FilterTask"]


class CompareValue(Task):
    """Skips (and so skips its downstream tasks) unless ``value`` equals the case's."""

    def __init__(self, value: Any, **kwargs: Any):
        self.value = value
        kwargs.setdefault("name", f'CompareValue: "{value}"')  # Prefect 1's task name
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


def switch(condition: Task, cases: dict[Any, Any], flow: Flow | None = None) -> None:
    """Run the task of ``cases`` whose key equals ``condition``'s result; skip the others.

    Tasks downstream of a skipped branch are skipped too, unless they set
    ``skip_on_upstream_skip=False`` (``merge`` does).

    Example:
        >>> from cairnflow import Flow, task
        >>> from cairnflow.tasks.control_flow import switch, merge
        >>> @task
        ... def pick():
        ...     return "b"
        >>> @task
        ... def say(text):
        ...     return text
        >>> with Flow("switch-flow") as flow:
        ...     a, b = say("A"), say("B")
        ...     switch(pick(), dict(a=a, b=b))
        ...     out = merge(a, b)
        >>> flow.run().result[out].result
        'B'
    """
    from cairnflow.core.collections import as_task
    from cairnflow.core.functional import tags

    flow = require_flow(flow, condition)
    with tags("switch"):
        for value, branch in cases.items():
            branch = as_task(branch, flow=flow)
            match = CompareValue(value=value).bind(value=condition, flow=flow)
            branch.set_upstream(match, flow=flow)


class _AsBool(Task):
    def run(self, x: Any) -> bool:
        return bool(x)


def ifelse(condition: Task, true_task: Any, false_task: Any, flow: Flow | None = None) -> None:
    """Run ``true_task`` when ``condition``'s result is truthy, else ``false_task``;
    the other is Skipped (and its downstream tasks with it)."""
    flow = require_flow(flow, condition)
    as_bool = _AsBool(name="as_bool").bind(condition, flow=flow)
    switch(as_bool, {True: true_task, False: false_task}, flow=flow)


class FilterTask(Task):
    """Keeps the elements of a list (usually a mapped task's results) that pass
    ``filter_func``; by default drops ``None``, exceptions and signals, as in Prefect 1.

    Its default trigger is ``all_finished``, so failed children do not stop it.

    Example:
        >>> from cairnflow.tasks.control_flow import FilterTask
        >>> FilterTask().run([1, None, ValueError("x"), 2])
        [1, 2]
    """

    def __init__(self, filter_func: Any = None, log_func: Any = None, **kwargs: Any):
        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", triggers.all_finished)
        self.filter_func = filter_func or _keep_result
        self.log_func = log_func
        super().__init__(**kwargs)

    def run(self, task_results: list) -> list:
        kept = [item for item in task_results if self.filter_func(item)]
        if self.log_func is not None:
            from cairnflow.context import get_run_logger

            get_run_logger().info(self.log_func(kept))
        return kept


def _keep_result(item: Any) -> bool:
    return not isinstance(item, (BaseException, type(None)))
