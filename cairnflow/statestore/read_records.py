"""The records a store reads back: task runs, flow runs, flows, and what resume needs.

``cairnflow.statestore.base`` names them too (and is where they are imported from);
they live here so that a flow run, which never reads one, does not pay for making
them (a dataclass costs about a millisecond to make, ``FlowRunInfo`` more).
Every time in them is an aware UTC ``datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairnflow.statestore.base import FlowRunRecord, TaskKey
    from cairnflow.statestore.serialize import SerializedResult

__all__ = ["TaskRunInfo", "FlowRunInfo", "FlowInfo", "ResumeData"]


@dataclass(frozen=True)
class TaskRunInfo:
    """A task run's current state, as the store knows it.

    ``started_at`` and ``ended_at`` are aware UTC datetimes.
    """

    task_slug: str
    task_name: str | None
    map_index: int | None
    state: str
    message: str | None
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    has_result: bool


@dataclass(frozen=True)
class FlowRunInfo:
    """A flow run's current state and metadata.

    ``state`` is the stored state, except that a run stored as Running whose
    owning process is gone is reported as ``Crashed`` (``stored_state`` keeps
    what was written).
    """

    id: str
    flow_name: str
    flow_hash: str
    state: str
    stored_state: str
    message: str | None
    parameters: dict[str, Any]
    attempt: int
    source_file: str | None
    source_variable: str | None
    pid: int
    host: str
    created_at: datetime
    started_at: datetime
    ended_at: datetime | None
    updated_at: datetime
    process_start: int | None = None
    flow_version_id: str | None = None
    labels: tuple[str, ...] = ()
    scheduled_start: datetime | None = None
    agent_id: str | None = None
    cancel_requested: bool = False


@dataclass(frozen=True)
class FlowInfo:
    """A flow known to the store, with its latest run."""

    name: str
    runs: int
    last_run_id: str | None
    last_state: str | None
    last_run_at: datetime | None


@dataclass
class ResumeData:
    """Everything resume needs from a stored run.

    ``results`` maps a task run's key to its checkpointed result; a store may
    fill it lazily (``LazyResults``), so that a caller that only needs the run
    record (the CLI, before it resumes) loads no result at all.
    """

    run: FlowRunRecord
    task_runs: dict[TaskKey, TaskRunInfo] = field(default_factory=dict)
    results: Mapping[TaskKey, SerializedResult] = field(default_factory=dict)
