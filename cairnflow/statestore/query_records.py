"""The records the query API answers with (``cairnflow.statestore.queries`` names them
too): a module of their own so that a command that needs none of them (``cairnflow
runs ls``) does not pay for making them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cairnflow.statestore.base import FlowRunInfo, TaskRunInfo

__all__ = ["RunDetail", "ResumeVerdict", "ChildrenSummary"]


@dataclass(frozen=True)
class RunDetail:
    """A run with its task runs as people should see them (see ``presented_tasks``)."""

    run: FlowRunInfo
    tasks: list[TaskRunInfo]


@dataclass(frozen=True)
class ResumeVerdict:
    """Whether a run can be resumed: ``ok``, else ``reason`` says why, for people.

    ``already_succeeded`` is the one refusal that is not an error: there is
    nothing left to do.
    """

    ok: bool
    reason: str | None = None
    already_succeeded: bool = False


@dataclass(frozen=True)
class ChildrenSummary:
    """Many mapped children in one line: counts by state, span, and the unsuccessful."""

    count: int
    attempts: int
    by_state: list[tuple[str, int]]  # most frequent first
    started_at: datetime | None
    ended_at: datetime | None
    unsuccessful: list[TaskRunInfo]
