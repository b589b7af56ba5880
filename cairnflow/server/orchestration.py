"""What the server asks of the orchestration core (registered flows, agents, actions).

A thin seam: the server works over a store whose cairnflow has no
``statestore.actions`` yet (registered flows and agents then read as none, and
the writes they need answer 501), and uses them as soon as they are there.
"""

from __future__ import annotations

import importlib
from typing import Any

from cairnflow.statestore import queries as q

__all__ = ["AVAILABLE", "actions", "registered_flows", "agents", "agents_for"]

try:
    importlib.import_module("cairnflow.statestore.actions")
    AVAILABLE = hasattr(q, "registered_flows")
except ImportError:
    AVAILABLE = False


def actions() -> Any:
    """The write actions module; ``NotImplementedError`` (a 501) when absent."""
    if not AVAILABLE:
        raise NotImplementedError("this cairnflow has no orchestration (register, agents)")
    return importlib.import_module("cairnflow.statestore.actions")


def registered_flows(store: Any, **kwargs: Any) -> list[Any]:
    """Registered flow versions, or none."""
    return q.registered_flows(store, **kwargs) if AVAILABLE else []


def agents(store: Any) -> list[Any]:
    """Known agents, or none."""
    return q.agents(store) if AVAILABLE else []


def agents_for(store: Any, run: Any) -> list[Any]:
    """Live agents that could run ``run``."""
    return q.agents_for(store, run) if AVAILABLE else []
