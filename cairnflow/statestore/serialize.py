"""The one boundary where Python values become bytes and back.

Every stored blob carries the serializer and the Python and cloudpickle
versions that wrote it, since cloudpickle promises nothing across versions.
"""

from __future__ import annotations

import copyreg
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from cairnflow._lazy import lazy_module
from cairnflow.exceptions import ResultLoadError

pickle = lazy_module("pickle")  # a command that only reads the store pickles nothing

SERIALIZER = "cloudpickle"
PYTHON_VERSION = sys.version.split()[0]  # platform.python_version(), without platform


def __getattr__(name: str) -> Any:
    if name == "CLOUDPICKLE_VERSION":
        return _cloudpickle().__version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_loaded: Any = None


def _cloudpickle() -> Any:
    """cloudpickle, imported when a value is first stored or loaded (a command that only
    reads the store's rows never needs it)."""
    global _loaded
    if _loaded is None:
        import cloudpickle

        _loaded = cloudpickle
    return _loaded


@dataclass(frozen=True)
class SerializedResult:
    """Bytes plus what is needed to judge whether they can be loaded here."""

    data: bytes
    serializer: str = SERIALIZER
    python_version: str = PYTHON_VERSION
    cloudpickle_version: str = ""  # "": the version of cloudpickle here (see __post_init__)

    def __post_init__(self) -> None:
        if not self.cloudpickle_version:
            object.__setattr__(self, "cloudpickle_version", _cloudpickle().__version__)


Reducers = tuple[tuple[type, Callable[[Any], Any]], ...]
_picklers: dict[Reducers, Any] = {}


def dumps(value: Any, reducers: Reducers = ()) -> bytes:
    """What ``cloudpickle.dumps(value)`` writes, byte for byte, faster for an object
    graph (a 10,000-task flow: 16 to 23 ms, against 36); ``reducers`` (``(type,
    reduce)`` pairs) take precedence over cloudpickle's.

    cloudpickle's dispatch table is a ChainMap of its own and ``copyreg``'s, which
    the C pickler looks up in Python for every object it pickles (every task of a
    flow's saved copy, say); this pickler has the same entries as one plain dict,
    made again when either table has changed size. And it reduces each instance of
    a plain class itself (see ``_pickler_class``).
    """
    cloudpickle = _cloudpickle()
    tables = cloudpickle.Pickler.dispatch_table
    source = (len(copyreg.dispatch_table), len(tables.maps[0]) if hasattr(tables, "maps")
              else len(tables))
    pickler = _picklers.get(reducers)
    if pickler is None or pickler.table_source != source:
        pickler = _picklers[reducers] = _pickler_class(cloudpickle, {**tables, **dict(reducers)},
                                                       source)
    buffer = io.BytesIO()
    pickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(value)
    return buffer.getvalue()


def _pickler_class(cloudpickle: Any, table: dict, source: tuple[int, int]) -> type:
    """A cloudpickle ``Pickler`` with ``table`` as its dispatch table, which reduces
    instances of plain classes itself.

    An object the C pickler has no opcode for goes to cloudpickle's
    ``reducer_override`` (which declines an instance), then to the dispatch table,
    then to ``object.__reduce_ex__``, which finds no ``__getnewargs__``,
    ``__getstate__`` or slots and gives ``(copyreg.__newobj__, (cls,), __dict__)``:
    that path was a third of the cost of a flow's saved copy, for its tasks. Here,
    for classes whose first instance showed that this is what the default makes of
    them, ``reducer_override`` gives that value itself; the pickler then writes the
    same bytes.
    """
    protocol = cloudpickle.DEFAULT_PROTOCOL
    cloudpickle_override = cloudpickle.Pickler.reducer_override
    plain: dict[type, bool] = {}

    def learn(cls: type, obj: Any) -> bool:
        if len(plain) > 256:  # classes made at run time must not pile up here
            plain.clear()
        state = getattr(obj, "__dict__", None)
        known = plain[cls] = (
            state is not None and cls not in table
            and not isinstance(obj, (type, FunctionType))
            and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__getstate__", None) is getattr(object, "__getstate__", None)
            and _is_default_reduction(_default_reduction(obj, protocol), cls, state))
        return known

    def reducer_override(self: Any, obj: Any) -> Any:
        cls = type(obj)
        known = plain.get(cls)
        if known is None:
            known = learn(cls, obj)
        if known:
            state = obj.__dict__
            # (the default would find these on the instance; none does, in practice)
            if state and "__getstate__" not in state and "__reduce_ex__" not in state:
                return _new_object_of, (cls,), state
        return cloudpickle_override(self, obj)

    return type("PlainTablePickler", (cloudpickle.Pickler,),
                {"dispatch_table": table, "table_source": source,
                 "reducer_override": reducer_override})


def _default_reduction(obj: Any, protocol: int) -> tuple | None:
    try:
        return object.__reduce_ex__(obj, protocol)
    except Exception:
        return None  # pickle will say why, on the regular path


def _is_default_reduction(reduced: tuple | None, cls: type, state: dict) -> bool:
    """Whether ``reduced`` is ``(copyreg.__newobj__, (cls,), state, None, None)``, the
    state being the instance's own ``__dict__`` (None for an empty one), by identity:
    the values in it are never compared."""
    return (reduced is not None and len(reduced) == 5 and reduced[0] is _new_object_of
            and reduced[1] == (cls,) and reduced[2] is (state or None)
            and reduced[3] is None and reduced[4] is None)


_new_object_of = copyreg.__newobj__


def dump(value: Any) -> SerializedResult:
    """Serialize ``value``; raises whatever cloudpickle raises for unpicklable values."""
    cloudpickle = _loaded or _cloudpickle()
    if type(value) in _SCALARS:
        # cloudpickle writes the same bytes for these, 10x slower; loads() is the same.
        data = pickle.dumps(value, protocol=cloudpickle.DEFAULT_PROTOCOL)
    else:
        data = dumps(value)
    # SerializedResult(data, SERIALIZER, PYTHON_VERSION, cloudpickle.__version__) at a
    # third of the cost (one per task run): the frozen dataclass's __init__ sets each
    # field through object.__setattr__, then calls __post_init__
    result = _new_object(SerializedResult)
    fields = result.__dict__
    fields["data"], fields["serializer"] = data, SERIALIZER
    fields["python_version"], fields["cloudpickle_version"] = (PYTHON_VERSION,
                                                               cloudpickle.__version__)
    return result


_new_object = object.__new__


_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})


def load(blob: SerializedResult, what: str = "result") -> Any:
    """Deserialize ``blob``; a failure is a ``ResultLoadError`` naming ``what``."""
    if blob.serializer != SERIALIZER:
        raise ResultLoadError(f"cannot load {what}: unknown serializer {blob.serializer!r}")
    cloudpickle = _cloudpickle()
    try:
        return cloudpickle.loads(blob.data)
    except Exception as exc:
        raise ResultLoadError(
            f"cannot load {what}: {type(exc).__name__}: {exc} (written by Python "
            f"{blob.python_version}, cloudpickle {blob.cloudpickle_version}; this is Python "
            f"{PYTHON_VERSION}, cloudpickle {cloudpickle.__version__})"
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
