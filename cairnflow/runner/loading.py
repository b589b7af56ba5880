"""Loading a flow from a file, for ``cairnflow run`` and for resume.

The file is executed as a fresh module (never as ``__main__``), with
``flow.run()`` calls inside it turned into no-ops, as Prefect 1 did. Its
functions are then pickled by value, so the saved copy of the flow does not
depend on the file staying importable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import cloudpickle

from cairnflow.core.flow import Flow
from cairnflow.exceptions import FlowLoadError

__all__ = ["load_flow_from_file", "split_flow_ref", "is_loading", "source_directories"]

_loading: ContextVar[bool] = ContextVar("cairnflow_loading_flow", default=False)
_directories: set[str] = set()


def source_directories() -> frozenset[str]:
    """The directories of the flow files loaded in this process (their neighbours
    are the flow's own modules, which remote workers may lack)."""
    return frozenset(_directories)


def is_loading() -> bool:
    """True while a flow file is being loaded (``flow.run()`` must then do nothing)."""
    return _loading.get()


@contextmanager
def _loading_flow() -> Iterator[None]:
    token = _loading.set(True)
    try:
        yield
    finally:
        _loading.reset(token)


def split_flow_ref(ref: str) -> tuple[str, str | None]:
    """``"path/flow.py:my_flow"`` -> ``("path/flow.py", "my_flow")``."""
    path, sep, variable = ref.rpartition(":")
    if sep and variable.isidentifier() and path:
        return path, variable
    return ref, None


def load_flow_from_file(path: str, variable: str | None = None) -> Flow:
    """The flow defined in ``path``: the one named ``variable``, or the only one.

    Raises ``FlowLoadError`` with a one-line reason: a missing file, an error
    while executing it, no flow in it, or several and no ``variable``.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FlowLoadError(f"no such file: {path}")
    module = _execute(path)
    flows = {name: value for name, value in vars(module).items() if isinstance(value, Flow)}
    if variable is not None:
        flow = flows.get(variable)
        if flow is None:
            found = f" (it has: {', '.join(sorted(flows))})" if flows else ""
            raise FlowLoadError(f"{path} has no flow named {variable!r}{found}")
    elif len(flows) == 1:
        variable, flow = next(iter(flows.items()))
    elif not flows:
        raise FlowLoadError(f"{path} defines no Flow")
    else:
        raise FlowLoadError(f"{path} defines several flows ({', '.join(sorted(flows))}); "
                            f"name one as {os.path.basename(path)}:VARIABLE")
    flow.source = path
    flow.source_variable = variable
    return flow


def _execute(path: str):
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    name = f"cairnflow_flow_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowLoadError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(path)
    _directories.add(directory)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the flow file can import its neighbours
    sys.modules[name] = module
    try:
        with _loading_flow():
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise FlowLoadError(f"error while loading {path}: {_describe(exc, path)}") from exc
    cloudpickle.register_pickle_by_value(module)
    return module


def _describe(exc: BaseException, path: str) -> str:
    """``NameError: name 'x' is not defined (line 12)``: the error and where in the file."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.lineno:
        line = exc.lineno
    where = f" (line {line})" if line else ""
    return f"{type(exc).__name__}: {exc}{where}"
