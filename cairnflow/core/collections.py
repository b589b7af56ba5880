"""Built-in tasks the graph creates for you: constants, collections, indexing, operators.

``as_task`` turns a value into something a flow can hold: a task stays a task,
a list/tuple/set/dict that contains tasks becomes a collection task, anything
else becomes a ``Constant``.
"""

from __future__ import annotations

import operator
from typing import Any

from cairnflow.core.task import Task

__all__ = ["as_task", "Constant", "List", "Tuple", "Set", "Dict", "GetItem"]


class Constant(Task):
    """A task that returns a fixed value (used for mapped literal arguments)."""

    def __init__(self, value: Any, name: str | None = None, **kwargs: Any):
        self.value = value
        super().__init__(name=name or f"Constant[{type(value).__name__}]", **kwargs)

    def run(self) -> Any:
        return self.value


class _Collection(Task):
    """Collects its keyword arguments ``arg_0``, ``arg_1``... in order; positional
    arguments (``List()(a, b)``, as Prefect 1's ``VarArgsTask``) become those."""

    build: Any = list

    def bind(self, *args: Any, **kwargs: Any) -> Task:  # type: ignore[override]
        start = len([k for k in kwargs if k.startswith("arg_")])
        kwargs.update({f"arg_{start + i}": value for i, value in enumerate(args)})
        return super().bind(**kwargs)

    def run(self, **task_results: Any) -> Any:
        ordered = sorted(task_results.items(), key=lambda kv: int(kv[0].split("_")[1]))
        return self.build(value for _, value in ordered)


class List(_Collection):
    """Builds a list from its upstream results."""

    build = list


class Tuple(_Collection):
    """Builds a tuple from its upstream results."""

    build = tuple


class Set(_Collection):
    """Builds a set from its upstream results."""

    build = set


class Dict(Task):
    """Builds a dict from two parallel lists of keys and values."""

    def run(self, keys: list, values: list) -> dict:
        return dict(zip(keys, values))


class GetItem(Task):
    """``task[key]``: returns ``task_result[key]``."""

    def run(self, task_result: Any, key: Any) -> Any:
        return task_result[key]


def _contains_task(value: Any) -> bool:
    if isinstance(value, Task):
        return True
    if isinstance(value, (list, tuple, set)):
        return any(_contains_task(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_task(k) or _contains_task(v) for k, v in value.items())
    return False


def as_task(value: Any, flow: Any = None) -> Task:
    """``value`` as a task in ``flow`` (see the module docstring)."""
    if isinstance(value, Task):
        return value
    if not _contains_task(value):
        return Constant(value)
    if isinstance(value, dict):
        return Dict().bind(keys=list(value), values=list(value.values()), flow=flow)
    cls = {tuple: Tuple, set: Set}.get(type(value), List)
    return cls().bind(**{f"arg_{i}": v for i, v in enumerate(value)}, flow=flow)


class _BinaryOperator(Task):
    op: Any = None

    def run(self, x: Any, y: Any) -> Any:
        return type(self).op(x, y)


class Not(Task):
    """``not x``."""

    def run(self, x: Any) -> bool:
        return not x


# Operator tasks, generated from a table: (class name, function).
_BINARY = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv,
    "FloorDiv": operator.floordiv, "Mod": operator.mod, "Pow": operator.pow,
    "And": operator.and_, "Or": operator.or_, "Xor": operator.xor,
    "LShift": operator.lshift, "RShift": operator.rshift, "Equal": operator.eq,
    "NotEqual": operator.ne, "LessThan": operator.lt, "LessThanOrEqual": operator.le,
    "GreaterThan": operator.gt, "GreaterThanOrEqual": operator.ge,
}
for _name, _fn in _BINARY.items():
    globals()[_name] = type(_name, (_BinaryOperator,), {
        "op": staticmethod(_fn), "__module__": __name__,
        "__doc__": f"A task that returns ``{_fn.__name__}(x, y)``."})
    __all__.append(_name)
