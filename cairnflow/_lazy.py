"""A module imported when it is first used, not when its importer is.

pendulum's import (with dateutil's parser and time zones) was about a third of
a one-task flow's whole process, although a run on LocalExecutor never needs a
pendulum object unless something reads one: state timestamps and the context's
dates are made on first read. The modules on that path refer to pendulum
through ``lazy_module("pendulum")``.

Example:
    >>> from cairnflow._lazy import lazy_module
    >>> json = lazy_module("json")   # nothing imported yet
    >>> json.dumps([1])              # imported here
    '[1]'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module; its first attribute read imports it. Attributes read are
    kept on the stand-in, so later reads are plain attribute reads."""

    def __init__(self, name: str):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attribute: str) -> Any:
        # importlib's own locks make a first read from several threads safe
        value = getattr(importlib.import_module(self._lazy_name), attribute)
        self.__dict__[attribute] = value
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {self._lazy_name!r}>"


def lazy_module(name: str) -> Any:
    """``name`` as a module object whose import waits for the first attribute read."""
    return _LazyModule(name)
