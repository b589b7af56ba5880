"""``flow.register()``: store a version of a flow for the UI and agents to run.

A registered version is plain data (``FlowVersionRecord``): where to load the
flow from (its file and variable, as resume does, so a fix on disk is picked
up), the pickled flow as a fallback, its parameters, labels, schedule and
graph. The server reads it without importing user code; an agent loads the
flow in the process it starts for each run. No server needs to be running:
the store is the bus.

Example:
    >>> import os, tempfile
    >>> from cairnflow import Flow, Parameter, task
    >>> @task
    ... def say_hello(person):
    ...     print(f"Hello, {person}!")
    >>> with Flow("Say hi!") as flow:
    ...     say_hello(Parameter("name"))
    <Task: say_hello>
    >>> db = f"sqlite:///{tempfile.mkdtemp()}/cairnflow.db"
    >>> flow_id = flow.register(store=db, no_url=True)
    >>> len(flow_id)
    36
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pendulum

from cairnflow.statestore.base import FlowVersionRecord, StateStore

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow

__all__ = ["register_flow", "version_record", "flow_graph", "parameter_specs", "ui_url",
           "flow_url", "host_name", "UPCOMING_RUNS"]

UPCOMING_RUNS = 10
"""How many upcoming runs of a schedule the store holds at a time."""


def host_name() -> str:
    """This host's name, as labels and liveness use it (``CAIRNFLOW_HOSTNAME`` overrides)."""
    from cairnflow.statestore.base import host_name as store_host_name

    return store_host_name()


def ui_url() -> str:
    """The web UI's base URL: ``CAIRNFLOW_UI_URL``, default ``http://localhost:8080``."""
    return (os.environ.get("CAIRNFLOW_UI_URL") or "http://localhost:8080").rstrip("/")


def flow_url(version_id: str) -> str:
    """The UI page of a registered flow version."""
    return f"{ui_url()}/flow/{version_id}"


def register_flow(flow: Flow, project_name: str | None = None,
                  labels: list[str] | None = None, idempotency_key: str | None = None,
                  set_schedule_active: bool = True, no_url: bool = False,
                  store: StateStore | str | None = None) -> str:
    """Register ``flow`` (see ``Flow.register``); return the version's id."""
    from cairnflow.agent.scheduling import upcoming_runs
    from cairnflow.runner.api import _open_store
    from cairnflow.runner.loading import is_loading

    if is_loading():
        # `cairnflow register FILE` (or an agent's run) is loading the file: the file's
        # own flow.register() would register it again each time.
        return ""
    flow.validate()
    record = version_record(flow, project_name, labels, idempotency_key, set_schedule_active)
    upcoming = []
    if flow.schedule is not None and set_schedule_active:
        upcoming = upcoming_runs(flow.name, flow.schedule, record.labels, "pending",
                                 after=pendulum.now("UTC"), n=UPCOMING_RUNS)
    with _open_store(store) as opened:
        version_id, created = opened.record_flow_version(record, upcoming)
        info = opened.get_flow_version(version_id)
    if not no_url:
        print(f"Flow URL: {flow_url(version_id)}")
        print(f" └── ID: {version_id}")
        print(f" └── Version: {info.version}" + ("" if created else
                                                  " (unchanged: same idempotency key)"))
        if project_name:
            print(f" └── Project: {project_name}")
        print(f" └── Labels: {info.labels}")
    return version_id


def version_record(flow: Flow, project_name: str | None = None,
                   labels: list[str] | None = None, idempotency_key: str | None = None,
                   set_schedule_active: bool = True) -> FlowVersionRecord:
    """The plain-data record of a flow that the store keeps for one version."""
    from cairnflow.runner.api import _dump_or_none, _source_variable, flow_hash

    schedule = flow.schedule
    return FlowVersionRecord(
        flow_name=flow.name, flow_hash=flow_hash(flow), parameters=parameter_specs(flow),
        labels=sorted(set(labels)) if labels else [host_name()], graph=flow_graph(flow),
        created_at=pendulum.now("UTC"), project_name=project_name,
        idempotency_key=idempotency_key, source_file=flow.source,
        source_variable=_source_variable(flow), flow_blob=_dump_or_none(flow, "flow"),
        schedule_blob=None if schedule is None else _dump_or_none(schedule, "schedule"),
        schedule_description=None if schedule is None else _describe(schedule),
        schedule_active=schedule is not None and set_schedule_active)


def parameter_specs(flow: Flow) -> list[dict[str, Any]]:
    """Each parameter's ``name``, ``default`` and ``required``, by name.

    A default that JSON cannot hold is given as its repr, with ``default_repr``
    True: a run that does not set it gets the real default from the flow's code.
    """
    specs = []
    for p in sorted(flow.parameters(), key=lambda p: p.name):
        spec: dict[str, Any] = {"name": p.name, "required": bool(p.required)}
        try:
            json.dumps(p.default, allow_nan=False)
            spec["default"] = p.default
        except (TypeError, ValueError):
            spec["default"], spec["default_repr"] = repr(p.default), True
        specs.append(spec)
    return specs


def flow_graph(flow: Flow) -> dict[str, Any]:
    """The flow's tasks and edges as plain data, for a schematic that needs no user code.

    ``tasks``: ``slug``, ``name``, ``type`` (the class name), ``mapped`` (it
    maps over an upstream result), ``parameter``, ``tags``; in topological order.
    ``edges``: ``upstream``, ``downstream`` (slugs), ``key``, ``mapped``, ``flattened``.
    """
    from cairnflow.core.parameter import Parameter

    slugs = flow.slugs
    ordered = flow.sorted_tasks()
    mapped = {e.downstream_task for e in flow.edges if e.mapped}
    tasks = [{"slug": slugs[t], "name": t.name, "type": type(t).__name__,
              "mapped": t in mapped, "parameter": isinstance(t, Parameter),
              "tags": sorted(getattr(t, "tags", None) or [])} for t in ordered]
    edges = sorted(({"upstream": slugs[e.upstream_task], "downstream": slugs[e.downstream_task],
                     "key": e.key, "mapped": e.mapped, "flattened": e.flattened}
                    for e in flow.edges),
                   key=lambda e: (e["downstream"], e["upstream"], e["key"] or ""))
    return {"tasks": tasks, "edges": edges}


def _describe(schedule: Any) -> str:
    clocks = getattr(schedule, "clocks", None)
    if not clocks:
        return repr(schedule)
    return "; ".join(_describe_clock(c) for c in clocks)


def _describe_clock(clock: Any) -> str:
    cron = getattr(clock, "cron", None)
    if cron:
        return f"cron {cron!r}"
    interval = getattr(clock, "interval", None)
    if interval is not None:
        return f"every {interval}"
    return type(clock).__name__
