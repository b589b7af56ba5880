"""The one boundary where Python values become bytes and back.

Every stored blob carries the serializer and the Python and cloudpickle
versions that wrote it, since cloudpickle promises nothing across versions.
"""

from __future__ import annotations

import pickle
import platform
from dataclasses import dataclass
from typing import Any

import cloudpickle

from cairnflow.exceptions import ResultLoadError

SERIALIZER = "cloudpickle"
PYTHON_VERSION = platform.python_version()
CLOUDPICKLE_VERSION = cloudpickle.__version__


@dataclass(frozen=True)
class SerializedResult:
    """Bytes plus what is needed to judge whether they can be loaded here."""

    data: bytes
    serializer: str = SERIALIZER
    python_version: str = PYTHON_VERSION
    cloudpickle_version: str = CLOUDPICKLE_VERSION


def dump(value: Any) -> SerializedResult:
    """Serialize ``value``; raises whatever cloudpickle raises for unpicklable values."""
    if type(value) in _SCALARS:
        # cloudpickle writes the same bytes for these, 10x slower; loads() is the same.
        return SerializedResult(pickle.dumps(value, protocol=cloudpickle.DEFAULT_PROTOCOL))
    return SerializedResult(cloudpickle.dumps(value))


_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})


def load(blob: SerializedResult, what: str = "result") -> Any:
    """Deserialize ``blob``; a failure is a ``ResultLoadError`` naming ``what``."""
    if blob.serializer != SERIALIZER:
        raise ResultLoadError(f"cannot load {what}: unknown serializer {blob.serializer!r}")
    try:
        return cloudpickle.loads(blob.data)
    except Exception as exc:
        raise ResultLoadError(
            f"cannot load {what}: {type(exc).__name__}: {exc} (written by Python "
            f"{blob.python_version}, cloudpickle {blob.cloudpickle_version}; this is Python "
            f"{PYTHON_VERSION}, cloudpickle {CLOUDPICKLE_VERSION})"
        ) from exc


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: what JSON cannot hold is shown as a string.

    NaN and the infinities become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    bytes, sets and other objects their ``repr``; dict keys strings. So every
    JSON output (the CLI's ``--json``, the server's API) stays valid JSON for
    every stored value.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(json_safe(k)): json_safe(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return repr(value)
