"""Upcoming runs of registered flows' schedules.

A schedule's run is keyed by its flow's name and its time (``schedule_key``),
which the store keeps unique: however many agents (or ``register`` calls) top
up a schedule at once, each scheduled time gets one run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pendulum

from cairnflow.statestore import serialize
from cairnflow.statestore.base import NewFlowRun, StateStore

__all__ = ["upcoming_runs", "schedule_key", "top_up_schedules"]


def schedule_key(flow_name: str, when: datetime) -> str:
    """The unique key of a schedule's run: ``<flow name>|<UTC ISO time>``."""
    return f"{flow_name}|{pendulum.instance(when).in_tz('UTC').isoformat()}"


def upcoming_runs(flow_name: str, schedule: Any, labels: Sequence[str], version_id: str,
                  after: datetime, n: int) -> list[NewFlowRun]:
    """The next ``n`` runs of ``schedule`` after ``after``, as runs to create."""
    runs = []
    for event in schedule.next(n, after=after, return_events=True):
        parameters = dict(event.parameter_defaults or {})
        run_labels = sorted(set(labels) | set(getattr(event, "labels", None) or []))
        runs.append(NewFlowRun(
            id=str(uuid.uuid4()), flow_version_id=version_id, parameters=parameters,
            parameters_blob=serialize.dump(parameters), labels=run_labels,
            scheduled_start=pendulum.instance(event.start_time).in_tz("UTC"),
            schedule_key=schedule_key(flow_name, event.start_time),
            message=f"Scheduled by the flow's schedule for {event.start_time}"))
    return runs


def top_up_schedules(store: StateStore, n: int = 10) -> int:
    """Create the next ``n`` runs of every active schedule that lacks them; return how many.

    Runs already created (by anyone) are skipped by their unique key. A
    schedule that cannot be unpickled here is skipped (its flow's agents can).
    """
    created = 0
    now = pendulum.now("UTC")
    for version in store.list_flow_versions():
        if not (version.has_schedule and version.schedule_active):
            continue
        _, blob = store.load_flow_version_blobs(version.id)
        try:
            schedule = serialize.load(blob, f"the schedule of flow {version.flow_name!r}")
        except Exception:  # noqa: BLE001 - user code in a filter; another agent may load it
            continue
        runs = upcoming_runs(version.flow_name, schedule, version.labels, version.id,
                             after=now, n=n)
        if runs:
            created += len(store.create_flow_runs(runs))
    return created
