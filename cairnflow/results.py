"""Results: where a task's value is also written, as Prefect 1's ``engine.results``.

The checkpoint store is the source of truth for resume and keeps every
successful result anyway; a ``Result`` with a location writes there as well,
and a task's ``target`` (a location template) that already exists makes the
task ``Cached`` from it without running. Locations are templates formatted
with the run context and the task's inputs (``"{task_name}-{today}.pkl"``).

Example:
    >>> import tempfile
    >>> from cairnflow.results import LocalResult
    >>> result = LocalResult(dir=tempfile.mkdtemp(), location="{name}.pkl")
    >>> written = result.write({"a": 1}, name="x")
    >>> written.location.endswith("x.pkl"), result.read(written.location).value
    (True, {'a': 1})
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Callable
from typing import Any

from cairnflow.serializers import JSONSerializer, PickleSerializer, Serializer
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

__all__ = ["Result", "LocalResult", "PrefectResult", "NoResult", "NoResultType", "format_location"]


def format_location(template: str | Callable[..., str], **values: Any) -> str:
    """``template`` filled in from ``values`` (str.format), or called with them."""
    if callable(template):
        return template(**values)
    return template.format(**values)


class Result:
    """A value and where it is kept.

    Args:
        value: the value (set by ``read`` and ``write``).
        location: where it is kept; a template until ``format`` fills it in.
        serializer: how the value becomes bytes (``PickleSerializer`` by default).
    """

    def __init__(self, value: Any = None, location: str | Callable[..., str] | None = None,
                 serializer: Serializer | None = None):
        self.value = value
        self.location = location
        self.serializer = serializer or PickleSerializer()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.location!r}>"

    def copy(self) -> Result:
        """A shallow copy."""
        return copy.copy(self)

    def format(self, **kwargs: Any) -> Result:
        """A copy whose location is the template filled in from ``kwargs``."""
        new = self.copy()
        if new.location is not None:
            new.location = format_location(new.location, **kwargs)
        return new

    def serialize_to_bytes(self, value: Any) -> bytes:
        return self.serializer.serialize(value)

    def deserialize_from_bytes(self, data: bytes) -> Any:
        return self.serializer.deserialize(data)

    def default_location(self) -> str:
        """Where a value goes when no location was given."""
        return f"{pendulum.now('UTC').format('YYYY/M/D')}/{uuid.uuid4()}.prefect_result"

    # -- to override -------------------------------------------------------------

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether something is kept at ``location`` (formatted with ``kwargs``)."""
        raise NotImplementedError

    def read(self, location: str) -> Result:
        """A copy holding the value kept at ``location``."""
        raise NotImplementedError

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """Keep ``value_`` at the location formatted with ``kwargs``; a copy that
        holds the value and the formatted location."""
        raise NotImplementedError


class LocalResult(Result):
    """A file under ``dir`` (``$CAIRNFLOW_HOME/local_results`` by default).

    Args:
        dir: the directory relative locations are under (created if missing).
        validate_dir: create ``dir`` and check it is a directory now.
        **kwargs: ``Result`` arguments (``location``, ``serializer``).
    """

    def __init__(self, dir: str | None = None, validate_dir: bool = True, **kwargs: Any):
        if dir is None:
            home = os.environ.get("CAIRNFLOW_HOME") or os.path.expanduser("~/.cairnflow")
            dir = os.path.join(home, "local_results")
        self.dir = os.path.abspath(os.path.expanduser(dir))
        if validate_dir:
            os.makedirs(self.dir, exist_ok=True)
            if not os.path.isdir(self.dir):
                raise ValueError(f"LocalResult dir {self.dir!r} is not a directory")
        super().__init__(**kwargs)

    def _path(self, location: str) -> str:
        return os.path.join(self.dir, location)

    def exists(self, location: str, **kwargs: Any) -> bool:
        return os.path.exists(self._path(format_location(location, **kwargs)))

    def read(self, location: str) -> Result:
        new = self.copy()
        new.location = location
        with open(self._path(location), "rb") as f:
            new.value = self.deserialize_from_bytes(f.read())
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        new = self.format(**kwargs)
        new.value = value_
        if new.location is None:
            new.location = self.default_location()
        path = self._path(new.location)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        data = self.serialize_to_bytes(value_)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:  # whole or not at all: a target must never be half a file
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return new


class PrefectResult(Result):
    """A value kept in its own location: the location is the serialized value
    (JSON by default), so it always exists."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("serializer", JSONSerializer())
        super().__init__(**kwargs)

    def exists(self, location: str, **kwargs: Any) -> bool:
        return True

    def read(self, location: str) -> Result:
        new = self.copy()
        new.location = location
        new.value = self.deserialize_from_bytes(location.encode())
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        new = self.copy()
        new.value = value_
        new.location = self.serialize_to_bytes(value_).decode()
        return new


class NoResultType(Result):
    """Prefect 1's marker for "no result"; kept for imports."""

    def __repr__(self) -> str:
        return "<No result>"


NoResult = NoResultType()
