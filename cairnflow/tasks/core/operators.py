"""Prefect 1's ``prefect.tasks.core.operators``;
the real home is ``cairnflow.core.collections``."""

from cairnflow.core.collections import (  # noqa: F401 - re-exported
    GetItem, Not, Add, Sub, Mul, Div, FloorDiv, Mod, Pow, And, Or, Xor, LShift, RShift, Equal,
    NotEqual, LessThan, LessThanOrEqual, GreaterThan, GreaterThanOrEqual,
)

__all__ = [
    "GetItem", "Not", "Add", "Sub", "Mul", "Div", "FloorDiv", "Mod", "Pow", "And", "Or", "Xor",
    "LShift", "RShift", "Equal", "NotEqual", "LessThan", "LessThanOrEqual", "GreaterThan",
    "GreaterThanOrEqual",
]
