"""Serializers turn a result's value into bytes and back (Prefect 1's
``engine.serializers``). They serve ``Result`` locations only: the checkpoint
store always uses its own serializer (``statestore/serialize.py``)."""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import zlib
from typing import Any

import cloudpickle

from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

__all__ = ["Serializer", "PickleSerializer", "JSONSerializer", "DateTimeSerializer",
           "CompressedSerializer"]


class Serializer:
    """Base class: ``serialize(value) -> bytes`` and ``deserialize(bytes) -> value``."""

    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError

    def deserialize(self, value: bytes) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))


class PickleSerializer(Serializer):
    """cloudpickle (the default of every ``Result`` but ``PrefectResult``)."""

    def serialize(self, value: Any) -> bytes:
        return cloudpickle.dumps(value)

    def deserialize(self, value: bytes) -> Any:
        try:
            return cloudpickle.loads(value)
        except Exception:  # Prefect 1 wrote base64-encoded pickles once
            return cloudpickle.loads(base64.b64decode(value))


class JSONSerializer(Serializer):
    """JSON, UTF-8 encoded; ``dumps_kwargs`` / ``loads_kwargs`` go to ``json``."""

    def __init__(self, dumps_kwargs: dict | None = None, loads_kwargs: dict | None = None):
        self.dumps_kwargs = dumps_kwargs or {}
        self.loads_kwargs = loads_kwargs or {}

    def serialize(self, value: Any) -> bytes:
        return json.dumps(value, **self.dumps_kwargs).encode()

    def deserialize(self, value: bytes) -> Any:
        return json.loads(value, **self.loads_kwargs)


class DateTimeSerializer(Serializer):
    """A datetime as its ISO 8601 text."""

    def serialize(self, value: Any) -> bytes:
        return pendulum.instance(value).isoformat().encode()

    def deserialize(self, value: bytes) -> Any:
        return pendulum.parse(value.decode())


_FORMATS = {"gzip": gzip, "bz2": bz2, "lzma": lzma, "zlib": zlib}


class CompressedSerializer(Serializer):
    """Another serializer's bytes, compressed with ``format`` (gzip, bz2, lzma, zlib)."""

    def __init__(self, serializer: Serializer, format: str = "gzip"):
        if format not in _FORMATS:
            raise ValueError(f"unknown compression format {format!r}: use one of "
                             f"{', '.join(_FORMATS)}")
        self.serializer = serializer
        self.format = format

    def serialize(self, value: Any) -> bytes:
        return _FORMATS[self.format].compress(self.serializer.serialize(value))

    def deserialize(self, value: bytes) -> Any:
        return self.serializer.deserialize(_FORMATS[self.format].decompress(value))
