"""Sending the modules a flow file imports from beside it to Dask workers.

A flow file's own functions travel pickled by value, but ``import helpers``
in it is pickled as a reference, which a worker on another machine (or with
another working directory) cannot resolve. The modules loaded from the flow's
directories (the directory of each flow file loaded, and of the main script)
are sent to the workers as source, once per run, through a worker plugin that
also reaches workers which join (or are restarted) later; there they are
imported from that source under their own file names, so tracebacks name them.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import os
import sys
import sysconfig
from typing import Any

from distributed import WorkerPlugin

__all__ = ["local_sources", "send_to", "ShippedModules"]

Sources = dict[str, tuple[str, str, bool]]  # module name -> (file, source, is package)


def _excluded_roots() -> tuple[str, ...]:
    import cairnflow

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             os.path.dirname(os.path.abspath(cairnflow.__file__))}
    roots.update(p for p in sysconfig.get_paths().values() if p)
    return tuple(os.path.join(os.path.abspath(r), "") for r in roots)


def _source_directories() -> set[str]:
    from cairnflow.runner.loading import source_directories

    dirs = set(source_directories())
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main:
        dirs.add(os.path.dirname(os.path.abspath(main)))
    return {os.path.join(d, "") for d in dirs}


def local_sources() -> Sources:
    """The source of every imported module whose file lies in a flow's directory."""
    dirs = _source_directories()
    if not dirs:
        return {}
    excluded = _excluded_roots()
    sources: Sources = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (not path or not path.endswith(".py") or name in ("__main__", "__mp_main__")
                or name.startswith("cairnflow_flow_")):
            continue
        path = os.path.abspath(path)
        if path.startswith(excluded) or not path.startswith(tuple(dirs)):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError:
            continue
        sources[name] = (path, source, hasattr(module, "__path__"))
    return sources


def send_to(client: Any) -> str | None:
    """Register the flow's local modules with the client's workers; the plugin's name."""
    sources = local_sources()
    if not sources:
        return None
    digest = hashlib.sha1(repr(sorted(sources.items())).encode()).hexdigest()[:16]
    name = f"cairnflow-modules-{digest}"
    client.register_plugin(ShippedModules(sources), name=name)
    return name


class ShippedModules(WorkerPlugin):
    """On each worker: make the shipped modules importable from their source."""

    def __init__(self, sources: Sources):
        self.sources = sources

    def setup(self, worker: Any) -> None:
        _FINDER.add(self.sources)

    def teardown(self, worker: Any) -> None:
        _FINDER.remove(self.sources)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds shipped modules before the worker's own path does: the flow's code wins."""

    def __init__(self) -> None:
        self.sources: Sources = {}

    def add(self, sources: Sources) -> None:
        for name, entry in sources.items():
            known = self.sources.get(name)
            module = sys.modules.get(name)
            if known is not None and known != entry and module is not None \
                    and getattr(module, "__loader__", None) is self:
                del sys.modules[name]  # changed since it was imported: import it afresh
            self.sources[name] = entry
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self, sources: Sources) -> None:
        for name, entry in sources.items():
            if self.sources.get(name) == entry:
                del self.sources[name]

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        entry = self.sources.get(name)
        if entry is None:
            return None
        filename, _, is_package = entry
        spec = importlib.util.spec_from_loader(name, self, origin=filename,
                                               is_package=is_package)
        spec.has_location = True
        return spec

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        filename, source, is_package = self.sources[module.__name__]
        module.__file__ = filename
        if is_package:
            module.__path__ = []
        exec(compile(source, filename, "exec"), module.__dict__)


_FINDER = _Finder()
