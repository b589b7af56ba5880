"""The records of registration and orchestration: flow versions, runs created for
agents, agents. Part of the store's interface (``cairnflow.statestore.base``
names them too); a module of their own so that a flow run does not pay for
making them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cairnflow.statestore.serialize import SerializedResult

__all__ = ["FlowVersionRecord", "FlowVersionInfo", "NewFlowRun", "AgentRecord", "AgentInfo"]


@dataclass(frozen=True)
class FlowVersionRecord:
    """A flow as ``register()`` stores it: plain data, so readers need no user code.

    Attributes:
        flow_name: the flow's name; versions are numbered per name.
        project_name: Prefect 1's project, kept for people to read.
        idempotency_key: registering again with the latest version's key adds nothing.
        flow_hash: the flow's structure hash (as the runner computes it).
        source_file, source_variable: where an agent loads the flow from.
        flow_blob: the pickled flow, the fallback when the source file is gone.
        parameters: ``{"name", "default", "required"}`` per parameter (defaults
            that JSON cannot hold are given as their repr, with ``"default_repr": True``).
        labels: an agent runs the flow's runs only if it has all of them.
        graph: ``{"tasks": [{"slug", "name", "mapped"...}], "edges": [...]}``.
        schedule_blob: the pickled schedule, for agents to compute upcoming runs.
        schedule_description: the schedule in words, for people.
        schedule_active: whether the schedule creates runs.
    """

    flow_name: str
    flow_hash: str
    parameters: list[dict[str, Any]]
    labels: list[str]
    graph: dict[str, Any]
    created_at: datetime
    project_name: str | None = None
    idempotency_key: str | None = None
    source_file: str | None = None
    source_variable: str | None = None
    flow_blob: SerializedResult | None = None
    schedule_blob: SerializedResult | None = None
    schedule_description: str | None = None
    schedule_active: bool = False


@dataclass(frozen=True)
class FlowVersionInfo:
    """A registered flow version as the store reports it (no blobs)."""

    id: str
    flow_name: str
    version: int
    flow_hash: str
    parameters: list[dict[str, Any]]
    labels: list[str]
    graph: dict[str, Any]
    created_at: datetime
    project_name: str | None
    idempotency_key: str | None
    source_file: str | None
    source_variable: str | None
    has_schedule: bool
    schedule_description: str | None
    schedule_active: bool
    archived: bool


@dataclass(frozen=True)
class NewFlowRun:
    """A run created for an agent to start: it begins ``Scheduled``.

    ``schedule_key`` (the flow's name and the time, for a run made by a
    schedule) is unique in the store: creating it twice creates it once.
    """

    id: str
    flow_version_id: str
    parameters: dict[str, Any]
    parameters_blob: SerializedResult | None
    labels: list[str]
    scheduled_start: datetime
    schedule_key: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class AgentRecord:
    """An agent, as it announces itself with each heartbeat."""

    id: str
    name: str
    labels: list[str]
    host: str
    pid: int
    started_at: datetime


@dataclass(frozen=True)
class AgentInfo:
    """An agent as the store knows it; ``last_seen`` is its latest heartbeat."""

    id: str
    name: str
    labels: list[str]
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
