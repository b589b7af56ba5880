"""Where a registered flow's code is found (Prefect 1's ``storage``).

cairnflow always records a flow's source file and variable, and a pickled copy,
so storage only tells ``register`` and the agent where to look: ``Local`` (a
file, or a directory of pickled flows) and ``Module`` (an importable module).

Example:
    >>> from cairnflow import Flow
    >>> from cairnflow.storage import Module
    >>> flow = Flow("etl", storage=Module("mypackage.flows"))
    >>> flow.storage.module
    'mypackage.flows'
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow

__all__ = ["Storage", "Local", "Module"]


class Storage:
    """Base class: ``add_flow``, ``get_flow``, ``build``; ``flows`` maps names to
    where each flow is."""

    def __init__(self, stored_as_script: bool = False, labels: list[str] | None = None,
                 add_default_labels: bool = True, **kwargs: Any):
        self.stored_as_script = stored_as_script
        self.labels = list(labels or ())
        self.add_default_labels = add_default_labels
        self.flows: dict[str, str] = {}
        self._flows: dict[str, Flow] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {sorted(self.flows)}>"

    def add_flow(self, flow: Flow) -> str:
        """Remember ``flow``; returns where it is kept."""
        if flow.name in self.flows:
            raise ValueError(f'Name conflict: Flow with the name "{flow.name}" is already '
                             "present in this storage.")
        self.flows[flow.name] = self._location(flow)
        self._flows[flow.name] = flow
        return self.flows[flow.name]

    def get_flow(self, flow_location: str | None = None) -> Flow:
        """The flow kept at ``flow_location`` (or the only one)."""
        raise NotImplementedError

    def build(self) -> Storage:
        """Nothing to build: cairnflow records the flow's source at register time."""
        return self

    def _location(self, flow: Flow) -> str:
        return flow.source or flow.name

    def __contains__(self, obj: Any) -> bool:
        return isinstance(obj, str) and obj in self.flows


class Local(Storage):
    """A flow file (``path=``, ``stored_as_script=True``) or a flow pickled in
    ``directory`` (``$CAIRNFLOW_HOME/flows`` by default)."""

    def __init__(self, directory: str | None = None, validate: bool = True,
                 path: str | None = None, stored_as_script: bool = False, **kwargs: Any):
        home = os.environ.get("CAIRNFLOW_HOME") or os.path.expanduser("~/.cairnflow")
        self.directory = os.path.abspath(directory or os.path.join(home, "flows"))
        self.path = path
        self.validate = validate
        super().__init__(stored_as_script=stored_as_script, **kwargs)

    def _location(self, flow: Flow) -> str:
        if self.path:
            return self.path
        return flow.source or os.path.join(self.directory, f"{flow.name}.flow")

    def get_flow(self, flow_location: str | None = None) -> Flow:
        location = flow_location or self.path or next(iter(self.flows.values()), None)
        if location is None:
            raise ValueError("No flow location provided")
        for name, where in self.flows.items():
            if where == location and name in self._flows:
                return self._flows[name]
        from cairnflow.runner.loading import load_flow_from_file

        return load_flow_from_file(location)


class Module(Storage):
    """A flow importable from ``module`` (a dotted module name)."""

    def __init__(self, module: str, **kwargs: Any):
        self.module = module
        super().__init__(**kwargs)

    def _location(self, flow: Flow) -> str:
        return self.module

    def get_flow(self, flow_location: str | None = None) -> Flow:
        from cairnflow.core.flow import Flow

        module = importlib.import_module(flow_location or self.module)
        flows = [v for v in vars(module).values() if isinstance(v, Flow)]
        if len(flows) != 1:
            wanted = [f for f in flows if f.name in self.flows]
            if len(wanted) == 1:
                return wanted[0]
            raise ValueError(f"module {self.module!r} holds {len(flows)} flows; expected one")
        return flows[0]
