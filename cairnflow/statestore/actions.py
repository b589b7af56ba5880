"""The write actions every face calls: the CLI, the Python client and the server.

Reads go through ``cairnflow.statestore.queries``; the writes a person asks for
(start a run of a registered flow, cancel, resume, delete, switch a schedule)
go through here, so every face validates and refuses the same way. Each takes
an open ``StateStore`` first and raises a ``CairnflowError`` with a message
for people on bad input, having written nothing.

A run created here begins ``Scheduled``; an agent claims it (``Submitted``)
and starts it (``Running``).

Example:
    >>> from cairnflow.statestore.memory import MemoryStore
    >>> from cairnflow.exceptions import UnknownFlowError
    >>> try:
    ...     create_flow_run(MemoryStore(), "no-such-flow")
    ... except UnknownFlowError as exc:
    ...     print(exc)
    no registered flow with id 'no-such-flow' (see `cairnflow flows ls`)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pendulum

from cairnflow.exceptions import InvalidParametersError, RunStillAliveError
from cairnflow.statestore import queries, serialize
from cairnflow.statestore.base import FlowVersionInfo, NewFlowRun, StateStore, Transition

__all__ = ["create_flow_run", "check_parameters", "cancel_run", "request_resume",
           "delete_runs", "set_schedule_active", "latest_version", "close_attempt"]


def latest_version(store: StateStore, flow: str) -> FlowVersionInfo:
    """A registered flow by version id, or by name (its latest version)."""
    from cairnflow.exceptions import UnknownFlowError

    try:
        return store.get_flow_version(flow)
    except UnknownFlowError:
        versions = store.list_flow_versions(flow_name=flow)
        if not versions:
            raise
        return versions[0]


def check_parameters(version: FlowVersionInfo, given: dict[str, Any]) -> dict[str, Any]:
    """The values a run of ``version`` records: ``given`` plus the JSON-held defaults.

    Raises ``InvalidParametersError`` naming an unknown or a missing required
    parameter. A default JSON cannot hold is left out: the flow's code supplies it.
    """
    if not isinstance(given, dict):
        raise InvalidParametersError("parameters must be an object of name: value")
    specs = {p["name"]: p for p in version.parameters}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        takes = (f"its parameters are {', '.join(sorted(specs))}" if specs
                 else "it takes no parameters")
        raise InvalidParametersError(
            f"flow {version.flow_name!r} has no parameter {unknown[0]!r} ({takes})", unknown)
    missing = sorted(n for n, p in specs.items() if p.get("required") and n not in given)
    if missing:
        raise InvalidParametersError(
            f"flow {version.flow_name!r} needs parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}", missing)
    values = {n: p["default"] for n, p in specs.items()
              if not p.get("required") and not p.get("default_repr")}
    values.update(given)
    return values


def create_flow_run(store: StateStore, flow: str, parameters: dict[str, Any] | None = None,
                    labels: Sequence[str] | None = None,
                    scheduled_start: datetime | None = None) -> str:
    """Create a run of a registered flow (a version id, or a flow name for its latest).

    It is ``Scheduled`` for ``scheduled_start`` (default now) with the
    version's labels unless ``labels`` are given. Returns the run's id.
    Raises ``UnknownFlowError`` or ``InvalidParametersError``.
    """
    version = latest_version(store, flow)
    values = check_parameters(version, dict(parameters or {}))
    when = pendulum.now("UTC") if scheduled_start is None else pendulum.instance(
        scheduled_start).in_tz("UTC")
    run = NewFlowRun(
        id=str(uuid.uuid4()), flow_version_id=version.id, parameters=values,
        parameters_blob=serialize.dump(values),
        labels=sorted(set(version.labels if labels is None else labels)),
        scheduled_start=when, message="Run requested")
    store.create_flow_runs([run])
    return run.id


def cancel_run(store: StateStore, ref: str) -> str:
    """Cancel a run (id, prefix or ``last``); return its state afterwards.

    A ``Scheduled`` or ``Submitted`` run is ``Cancelled`` at once. A ``Running``
    run is marked: the agent on its host stops its process within seconds
    (escalating to a kill) and records ``Cancelled`` for it and its running
    task runs; ``Running`` is returned. A finished run is left as it is.
    """
    return store.request_cancel(queries.resolve_run_id(store, ref))


def request_resume(store: StateStore, ref: str, labels: Sequence[str] | None = None) -> str:
    """Queue a run that did not succeed for an agent to resume; return its id.

    Refused with ``RunStillAliveError`` for a live, queued or succeeded run. A
    run whose process died gets its ``Crashed`` records first.
    """
    info = queries.get_run(store, ref)
    verdict = queries.resume_verdict(info)
    if not verdict.ok:
        raise RunStillAliveError(verdict.reason)
    closing: list[Transition] = []
    if info.state == "Crashed" and info.stored_state == "Running":
        closing = _crash_transitions(store, info.id, info.attempt, info.flow_name,
                                     f"The process running this (pid {info.pid} on "
                                     f"{info.host}) died.")
    if labels is None:
        labels = list(info.labels)
        if not labels and info.flow_version_id:
            labels = store.get_flow_version(info.flow_version_id).labels
        if not labels:
            from cairnflow.registration import host_name

            labels = [host_name()]  # a run started from a terminal: this host's agents
    store.request_resume(info.id, sorted(set(labels)), closing, pendulum.now("UTC"))
    return info.id


def _crash_transitions(store: StateStore, run_id: str, attempt: int, flow_name: str,
                       message: str, state: str = "Crashed") -> list[Transition]:
    """What closes an attempt whose process is gone: its running task runs, then the run."""
    now = pendulum.now("UTC")
    closing = [Transition(run_id, attempt, t.task_slug, t.task_name, t.map_index, state,
                          message, now)
               for t in store.get_task_runs(run_id) if t.state == "Running"]
    closing.append(Transition(run_id, attempt, None, flow_name, None, state, message, now))
    return closing


def close_attempt(store: StateStore, run_id: str, state: str, message: str) -> None:
    """Record ``state`` (Crashed or Cancelled) for a run and its running task runs."""
    info = store.get_flow_run(run_id)
    store.record_transitions(_crash_transitions(store, run_id, info.attempt, info.flow_name,
                                                message, state))


def delete_runs(store: StateStore, refs: Sequence[str], force: bool = False) -> int:
    """Delete runs (ids, prefixes or ``last``) with all they own; return how many.

    A live run is refused with ``RunStillAliveError`` unless ``force``.
    """
    ids = list(dict.fromkeys(queries.resolve_run_id(store, ref) for ref in refs))
    if not force:
        for rid in ids:
            if store.get_flow_run(rid).state == "Running":
                raise RunStillAliveError(f"run {rid} is still running: cancel it first, "
                                         "or force the deletion")
    return store.delete_runs(ids)


def set_schedule_active(store: StateStore, flow: str, active: bool) -> int:
    """Switch a registered flow's schedule on or off; return how many runs were removed.

    Off removes its future scheduled runs at once; on lets agents create the
    upcoming ones.
    """
    return store.set_schedule_active(latest_version(store, flow).id, active)
