"""Loading a flow from a file, for ``cairnflow run`` and for resume.

The file is executed as a fresh module (never as ``__main__``). Its functions
are pickled by value, so the saved copy of the flow (and the task code sent to
worker processes) does not depend on the file staying importable.

For resume, ``flow.run()`` calls inside the file are no-ops, as Prefect 1 did.
For ``cairnflow run`` (a ``ScriptRun``), they run for real, once each, with the
command line's store, executor and progress view: a script that calls
``flow.run()`` at module level and uses the state it returns works unchanged.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from types import ModuleType
from typing import Any

import cloudpickle

from cairnflow._digest import sha1_hex
from cairnflow.core.flow import Flow
from cairnflow.exceptions import FlowLoadError

__all__ = ["load_flow_from_file", "split_flow_ref", "is_loading", "ScriptRun", "script_run",
           "run_flow_file", "source_directories"]

# while a file loads for resume: the flows whose flow.run() calls were skipped
log = logging.getLogger("cairnflow.loading")

_loading: ContextVar[list[Flow] | None] = ContextVar("cairnflow_loading_flow", default=None)
_directories: set[str] = set()


def source_directories() -> frozenset[str]:
    """The directories of the flow files loaded in this process (their neighbours
    are the flow's own modules, which remote workers may lack)."""
    return frozenset(_directories)


class ScriptRun:
    """What ``cairnflow run`` lends the ``flow.run()`` calls of the file it executes.

    ``wrap(flow, start)`` is called for each call: it shows progress and calls
    ``start(on_transition)``, which runs the flow and returns its state.
    ``runs`` collects the states; ``error`` is an exception of ``wrap``'s own
    that must reach the command line as it is.
    """

    def __init__(self, wrap: Callable[[Flow, Callable[[Any], Any]], Any]):
        self.wrap = wrap
        self.runs: list[Any] = []
        self.error: BaseException | None = None


_script_run: ContextVar[ScriptRun | None] = ContextVar("cairnflow_script_run", default=None)


def script_run() -> ScriptRun | None:
    """The ``ScriptRun`` of the flow file being executed by ``cairnflow run``, if any."""
    return _script_run.get()


def is_loading() -> bool:
    """True while a flow file is being loaded (``flow.run()`` must then do nothing)."""
    return _loading.get() is not None


def skip_run(flow: Flow) -> None:
    """Note that the loading file's ``flow.run()`` was skipped (see ``_execute``)."""
    skipped = _loading.get()
    if skipped is not None:
        skipped.append(flow)


@contextmanager
def _loading_flow(skipped: list[Flow]) -> Iterator[None]:
    token = _loading.set(skipped)
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
    _require_file(path)
    return _pick_flow(_execute(path), path, variable)


def run_flow_file(path: str, variable: str | None, script: ScriptRun) -> Flow | None:
    """Execute ``path`` with its ``flow.run()`` calls running through ``script``.

    Returns the file's flow (as ``load_flow_from_file`` picks it) when the file
    ran none, else None: its runs are in ``script.runs``.
    """
    path = os.path.abspath(path)
    _require_file(path)
    module = _execute(path, script)
    if script.runs:
        return None
    return _pick_flow(module, path, variable)


def _require_file(path: str) -> None:
    if os.path.isdir(path):
        raise FlowLoadError(f"{path} is a directory, not a flow file: name the .py file")
    if not os.path.isfile(path):
        raise FlowLoadError(f"no such file: {path}")


def _pick_flow(module: ModuleType, path: str, variable: str | None) -> Flow:
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


def _execute(path: str, script: ScriptRun | None = None) -> ModuleType:
    digest = sha1_hex(path.encode())[:12]
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
    # before the file runs: its own flow.run() calls send its tasks to workers
    cloudpickle.register_pickle_by_value(module)
    token = _script_run.set(script) if script is not None else None
    skipped: list[Flow] = []
    try:
        with _loading_flow(skipped) if script is None else nullcontext():
            spec.loader.exec_module(module)
    except Exception as exc:
        if script is not None and exc is script.error:
            raise
        if skipped:
            # Code after a skipped flow.run() often uses the state it returns
            # (`state.is_successful()`); the flow it ran was defined before it.
            log.warning("%s stopped after its flow.run() call was skipped (%s); using the "
                        "flows it defined before that.", path, _describe(exc, path))
            return module
        sys.modules.pop(name, None)
        raise FlowLoadError(f"error while loading {path}: {_describe(exc, path)}") from exc
    except SystemExit as exc:
        if skipped or (script is not None and script.runs):
            return module  # the script ended itself after its flow.run(), as scripts do
        sys.modules.pop(name, None)
        # Never the file's own exit status: `exit 0` would tell cron the flow ran.
        raise FlowLoadError(
            f"{path} called sys.exit({exc.code!r}) while loading, before any flow ran: "
            "guard it with `if __name__ == '__main__':`") from None
    finally:
        if token is not None:
            _script_run.reset(token)
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
