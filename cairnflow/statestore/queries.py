"""The query API: what every face (CLI, Python client, server) reads, and how.

The store answers with plain records; this module holds the rules that turn
them into what people and scripts see, once, so the CLI, ``cairnflow.client``
and the web server cannot disagree:

* which run a reference names (a whole id, a unique prefix, or ``last``);
* which task runs show as ``Crashed`` (those left ``Running`` by a dead run);
* whether a run can be resumed, and why not;
* why a task run has no result, and loading the result that it has;
* how mapped children group under their parent (and how many to show);
* the JSON shapes of SPEC.md ("CLI"), which the server's JSON API shares.

Every function takes an open ``StateStore`` first; none writes (writes live in
``cairnflow.statestore.actions``).

Example:
    >>> from cairnflow.statestore.memory import MemoryStore
    >>> [run_json(r) for r in list_runs(MemoryStore())]
    []
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cairnflow import states
from cairnflow._lazy import lazy_module
from cairnflow.exceptions import AmbiguousRunError, ResultNotFoundError, UnknownRunError
from cairnflow.statestore import serialize
from cairnflow.statestore.base import (
    FlowInfo, FlowRunInfo, LogEntry, StateStore, TaskKey, TaskRunInfo, Transition,
    is_owner_alive, labels_match, split_task_label, task_label as base_task_label,
)

if TYPE_CHECKING:
    from cairnflow.statestore.orch_records import AgentInfo, FlowVersionInfo
    from cairnflow.statestore.query_records import ChildrenSummary, ResumeVerdict, RunDetail

logging = lazy_module("logging")  # for level names: `runs ls` reads no log
# Records made only where used (a dataclass costs about a millisecond to make).
records = lazy_module("cairnflow.statestore.query_records")
_RECORDS = frozenset({"RunDetail", "ResumeVerdict", "ChildrenSummary"})

__all__ = [
    "RunDetail", "ResumeVerdict", "resolve_run_id", "get_run", "list_runs", "run_detail",
    "prune_candidates",
    "presented_tasks", "resume_verdict", "reused_task_runs", "history", "logs",
    "require_task", "require_child", "task_ref", "why_no_result", "result_value", "group_mapped", "summarise_children",
    "parse_state", "follow", "task_label", "iso", "level_name", "run_json", "run_detail_json",
    "task_json", "transition_json", "log_json", "flow_json", "list_flows",
    "registered_flows", "registered_flow", "flow_version_json", "agents", "agent_json",
    "agent_is_live", "agents_for",
]


def __getattr__(name: str) -> Any:
    if name in _RECORDS:
        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- which run -----------------------------------------------------------------------


def resolve_run_id(store: StateStore, ref: str) -> str:
    """A whole run id, a unique prefix of one, or ``last`` (the newest run) -> the id.

    Raises ``UnknownRunError`` or ``AmbiguousRunError`` with a message for people.
    """
    ref = ref.strip()
    if ref == "last":  # the run created most recently, whatever the clock said then
        latest = store.latest_run_id()
        if latest is None:
            raise UnknownRunError("there are no runs in this store yet")
        return latest
    matches = store.find_run_ids(ref, limit=2) if ref else []
    if not matches:
        raise UnknownRunError(f"no run matches {ref!r} (see `cairnflow runs ls`)")
    if len(matches) > 1:
        raise AmbiguousRunError(f"run id {ref!r} is ambiguous: give more characters")
    return matches[0]


def get_run(store: StateStore, ref: str) -> FlowRunInfo:
    """The run a reference names (see ``resolve_run_id``)."""
    return store.get_flow_run(resolve_run_id(store, ref))


def parse_state(text: str) -> str:
    """A state name from any capitalisation; ``ValueError`` naming the states otherwise."""
    return states.parse_state_name(text)


def list_runs(store: StateStore, flow_name: str | None = None, state: str | None = None,
              limit: int | None = None, since: datetime | None = None,
              until: datetime | None = None, *, before: str | None = None
              ) -> list[FlowRunInfo]:
    """Runs newest first, optionally of one flow, in one state (any capitalisation),
    and first started at or after ``since`` and before ``until``.

    ``before`` (a run id) gives the page of runs after that one (keyset
    pagination, as fast on page 1,000 as on page 1).
    """
    wanted = None if state is None else parse_state(state)
    if until is None:
        return store.list_runs(flow_name=flow_name, state=wanted, limit=limit, since=since,
                               before=before)
    runs = [r for r in store.list_runs(flow_name=flow_name, state=wanted, since=since,
                                       before=before) if r.created_at < until]
    return runs if limit is None else runs[:limit]


def prune_candidates(store: StateStore, older_than: datetime | None = None,
                     flow_name: str | None = None, state: str | None = None,
                     keep: int | None = None) -> list[FlowRunInfo]:
    """The runs a prune deletes, newest first: finished runs (never one under way)
    first started before ``older_than``, of ``flow_name``, in ``state``, except the
    ``keep`` newest runs of each flow among them."""
    kept: dict[str, int] = {}
    chosen = []
    for run in list_runs(store, flow_name=flow_name, state=state):
        if states.is_under_way(run.state):
            continue
        if keep is not None and kept.get(run.flow_name, 0) < keep:
            kept[run.flow_name] = kept.get(run.flow_name, 0) + 1
            continue
        if older_than is None or run.created_at < older_than:
            chosen.append(run)
    return chosen


def list_flows(store: StateStore) -> list[FlowInfo]:
    """Every flow with runs in the store, by name."""
    return store.list_flows()


def registered_flows(store: StateStore, flow_name: str | None = None,
                     include_archived: bool = False) -> list[FlowVersionInfo]:
    """Registered flows (their latest versions, unless ``include_archived``), by name."""
    return store.list_flow_versions(flow_name=flow_name, include_archived=include_archived)


def registered_flow(store: StateStore, ref: str) -> FlowVersionInfo:
    """A registered flow version by id, or a flow name (its latest version).

    ``UnknownFlowError`` when neither matches.
    """
    from cairnflow.statestore.actions import latest_version

    return latest_version(store, ref)


def agents(store: StateStore) -> list[AgentInfo]:
    """Every agent the store knows, most recently seen first."""
    return store.list_agents()


def agent_is_live(agent: AgentInfo) -> bool:
    """Whether an agent's process is still there (the run liveness rule)."""
    return is_owner_alive(agent.pid, agent.host, agent.last_seen)


def agents_for(store: StateStore, run: FlowRunInfo) -> list[AgentInfo]:
    """The live agents whose labels would let them run ``run`` (empty: it waits forever)."""
    return [a for a in store.list_agents()
            if agent_is_live(a) and labels_match(run.labels, a.labels)]


# -- a run and its task runs -----------------------------------------------------------


def run_detail(store: StateStore, ref: str) -> RunDetail:
    """The run a reference names, with its presented task runs."""
    info = get_run(store, ref)
    return records.RunDetail(info, presented_tasks(info, store.get_task_runs(info.id)))


def presented_tasks(info: FlowRunInfo, tasks: list[TaskRunInfo]) -> list[TaskRunInfo]:
    """Task runs as people should see them: those left Running by a dead run are Crashed."""
    if info.state != "Crashed":
        return tasks
    message = f"The process running this (pid {info.pid} on {info.host}) died."
    return [dataclasses.replace(t, state="Crashed", message=message)
            if t.state == "Running" else t for t in tasks]


def resume_verdict(info: FlowRunInfo) -> ResumeVerdict:
    """Can ``info`` be resumed now? A live run cannot; a succeeded one needs nothing."""
    verdict = records.ResumeVerdict
    if info.state == "Running":
        return verdict(False, f"run {info.id} is still running (pid {info.pid} on "
                              f"{info.host}): wait for it to end, or stop that process, "
                              "before resuming it")
    if info.stored_state == "Success":
        return verdict(False, f"Run {info.id} already succeeded; there is nothing to "
                              "resume.", already_succeeded=True)
    if info.state in states.QUEUED:
        return verdict(False, f"run {info.id} is {info.state}: it has not run yet, an "
                              "agent will start it")
    return verdict(True)


def reused_task_runs(tasks: Sequence[TaskRunInfo]) -> dict[TaskKey, str]:
    """Task runs a resume takes as they are (the engine's rule), by key -> state."""
    return {(t.task_slug, t.map_index): t.state for t in tasks
            if t.state == "Mapped" or states.is_reusable_by_resume(t.state, t.has_result)}


def task_ref(store: StateStore, run_id: str, text: str,
             map_index: int | None = None) -> TaskKey:
    """The task run a person named: ``fetch-1`` or ``fetch-1[7]`` (as every face prints
    mapped children), optionally with a separate ``map_index`` (``--map-index``).

    A slug that itself ends in ``[n]`` wins over the mapped-child reading. Giving
    both ``slug[i]`` and a different ``map_index`` is a ``ValueError``.
    """
    slug, index = split_task_label(text.strip())
    if index is not None and any(t.task_slug == text for t in store.get_task_runs(run_id)):
        slug, index = text, None
    if index is not None and map_index is not None and index != map_index:
        raise ValueError(f"{text!r} names mapped child {index}, but --map-index says "
                         f"{map_index}: give one of them")
    return slug, index if index is not None else map_index


def history(store: StateStore, run_id: str, task_slug: str | None = None,
            map_index: int | None = None) -> list[Transition]:
    """Every transition of a run (or of one task, its mapped children included, or
    of one mapped child when ``map_index`` is given).

    A task the run does not have is an ``UnknownRunError`` naming its tasks.
    """
    transitions = store.get_history(run_id, task_slug)
    if task_slug is not None and not transitions:
        require_task(store, run_id, task_slug)
    if task_slug is not None and map_index is not None:
        transitions = [t for t in transitions if t.map_index == map_index]
        if not transitions:
            require_child(store, run_id, task_slug, map_index)
    return transitions


def logs(store: StateStore, run_id: str, task_slug: str | None = None,
         level: int | None = None, map_index: int | None = None) -> list[LogEntry]:
    """A run's log records (or one task's, or one mapped child's), oldest first, at
    ``level`` or above."""
    entries = store.get_logs(run_id, task_slug)
    if task_slug is not None and not entries:
        require_task(store, run_id, task_slug)
    if task_slug is not None and map_index is not None:
        entries = [e for e in entries if e.map_index == map_index]
        if not entries:
            require_child(store, run_id, task_slug, map_index)
    if level is not None:
        entries = [e for e in entries if e.level >= level]
    return entries


def require_child(store: StateStore, run_id: str, slug: str, map_index: int) -> TaskRunInfo:
    """Mapped child ``map_index`` of task ``slug``; ``UnknownRunError`` saying which exist."""
    tasks = require_task(store, run_id, slug)
    for t in tasks:
        if t.map_index == map_index:
            return t
    children = [t for t in tasks if t.map_index is not None]
    raise UnknownRunError(
        f"task {slug!r} of run {run_id} has no mapped child {map_index}"
        + (f" (it has 0 to {len(children) - 1})" if children else " (it is not mapped)"))


def require_task(store: StateStore, run_id: str, slug: str) -> list[TaskRunInfo]:
    """The run's task runs of ``slug``; ``UnknownRunError`` naming the run's tasks if none."""
    tasks = store.get_task_runs(run_id)
    mine = [t for t in tasks if t.task_slug == slug]
    if not mine:
        slugs = list(dict.fromkeys(t.task_slug for t in tasks))
        known = ", ".join(slugs[:12]) + (", ..." if len(slugs) > 12 else "")
        raise UnknownRunError(f"run {run_id} has no task {slug!r}"
                              + (f" (its tasks: {known})" if slugs else " (it has no task runs)"))
    return mine


def follow(store: StateStore, run_id: str, *, poll: float = 0.25,
           recheck: float = 5.0, sleep: Callable[[float], None] = time.sleep,
           ) -> Iterator[FlowRunInfo]:
    """Yield the run now, then again each time the store changed, until it has ended.

    The last value yielded is the run in its final state; a run that has
    already ended is yielded once. Between changes only the store's
    ``data_version`` is read every ``poll`` seconds (cheap when idle); every
    ``recheck`` seconds the run is read anyway, so a run whose process died
    without a word is seen to have crashed.
    """
    version = store.data_version()
    info = store.get_flow_run(run_id)
    yield info
    checked = time.monotonic()
    while states.is_under_way(info.state):
        sleep(poll)
        now = store.data_version()
        if now is not None and now == version and time.monotonic() - checked < recheck:
            continue
        version, checked = now, time.monotonic()
        info = store.get_flow_run(run_id)
        yield info


# -- results ---------------------------------------------------------------------------


def why_no_result(store: StateStore, run_id: str, slug: str, map_index: int | None) -> str:
    """Why task run (``slug``, ``map_index``) of a run has no checkpointed result."""
    tasks = require_task(store, run_id, slug)
    label = task_label(slug, map_index)
    children = [t for t in tasks if t.map_index is not None]
    wanted = [t for t in tasks if t.map_index == map_index]
    if map_index is None and children:
        return (f"task {slug!r} is mapped: give --map-index N for one of its "
                f"{len(children)} children (0 to {len(children) - 1}), or name it "
                f"{slug}[N]")
    if not wanted:
        return f"task {slug!r} of run {run_id} has no mapped child {map_index}" + (
            f" (it has 0 to {len(children) - 1})" if children else " (it is not mapped)")
    task = wanted[0]
    if not states.is_successful(task.state) or task.state == "Skipped":
        return f"task {label!r} of run {run_id} ended {task.state}, so it has no result"
    return (f"task {label!r} of run {run_id} has no checkpointed result (it ran with "
            "checkpoint=False, or its result could not be pickled)")


def result_value(store: StateStore, run_id: str, slug: str, map_index: int | None = None,
                 max_bytes: int | None = None) -> Any:
    """Unpickle a task run's checkpointed result (only when someone asks to see it).

    The flow's directory is importable while it loads, as it was for the run.
    Raises ``ResultNotFoundError`` saying why there is none (see ``why_no_result``),
    or ``ValueError`` when its pickle is over ``max_bytes`` (it is not unpickled).
    """
    try:
        blob = store.load_result(run_id, slug, map_index)
    except ResultNotFoundError as exc:
        raise ResultNotFoundError(why_no_result(store, run_id, slug, map_index)) from exc
    label = task_label(slug, map_index)
    if max_bytes is not None and len(blob.data) > max_bytes:
        raise ValueError(f"the result of task {label!r} is {len(blob.data)} bytes, more "
                         f"than the {max_bytes} shown here")
    source = store.get_flow_run(run_id).source_file
    directory = os.path.dirname(source) if source else None
    if directory and directory not in sys.path:
        sys.path.append(directory)
    return serialize.load(blob, f"the result of task {label!r} of run {run_id}")


# -- mapped children ---------------------------------------------------------------------


def group_mapped(tasks: Sequence[TaskRunInfo]
                 ) -> list[tuple[TaskRunInfo | None, list[TaskRunInfo]]]:
    """Task runs grouped as (task run, its mapped children), in recorded order."""
    groups: dict[str, tuple[list[TaskRunInfo | None], list[TaskRunInfo]]] = {}
    for t in tasks:
        parent, children = groups.setdefault(t.task_slug, ([None], []))
        if t.map_index is None:
            parent[0] = t
        else:
            children.append(t)
    return [(parent[0], children) for parent, children in groups.values()]


def summarise_children(children: Sequence[TaskRunInfo]) -> ChildrenSummary:
    """A summary of a mapped task's children, for a collapsed view."""
    counts: dict[str, int] = {}
    for c in children:
        counts[c.state] = counts.get(c.state, 0) + 1
    starts = [c.started_at for c in children if c.started_at is not None]
    ends = [c.ended_at for c in children if c.ended_at is not None]
    return records.ChildrenSummary(
        count=len(children), attempts=sum(c.attempts for c in children),
        by_state=sorted(counts.items(), key=lambda kv: -kv[1]),
        started_at=min(starts) if starts else None,
        ended_at=max(ends) if starts and ends else None,
        unsuccessful=[c for c in children if not states.is_successful(c.state)])


# -- JSON shapes (SPEC.md "CLI"; the server's API shares them) ------------------------------


def task_label(slug: str | None, map_index: int | None) -> str:
    """``slug`` or ``slug[3]`` for a mapped child; ``(flow)`` for the flow run itself."""
    return "(flow)" if slug is None else base_task_label(slug, map_index)


def iso(when: datetime | None) -> str | None:
    """ISO 8601 with a UTC offset (stored times are UTC): ``2024-05-01T12:00:00+00:00``."""
    # datetime's own (C) isoformat: the same text as pendulum's, many times faster.
    return None if when is None else datetime.isoformat(when)


def level_name(level: int) -> str:
    """``INFO``, ``WARNING``, ... for a logging level number."""
    return logging.getLevelName(level)


def run_json(info: FlowRunInfo) -> dict[str, Any]:
    """A run as ``runs ls --json`` lists it.

    ``started_at`` is when the run first started; ``attempt_started_at`` when
    its latest attempt (a resume) started.
    """
    return {
        "id": info.id, "flow_name": info.flow_name, "state": info.state,
        "started_at": iso(info.created_at), "ended_at": iso(info.ended_at),
        "attempt": info.attempt, "attempt_started_at": iso(info.started_at),
        "message": info.message, "scheduled_start": iso(info.scheduled_start),
        "flow_id": info.flow_version_id,
    }


def run_detail_json(info: FlowRunInfo, tasks: Sequence[TaskRunInfo]) -> dict[str, Any]:
    """A run with all its task runs, as ``runs show --json`` prints it."""
    return {
        "id": info.id, "flow_name": info.flow_name, "state": info.state,
        "parameters": info.parameters, "attempt": info.attempt, "message": info.message,
        "started_at": iso(info.created_at), "ended_at": iso(info.ended_at),
        "source_file": info.source_file, "source_variable": info.source_variable,
        "flow_hash": info.flow_hash, "flow_id": info.flow_version_id,
        "labels": list(info.labels), "scheduled_start": iso(info.scheduled_start),
        "cancel_requested": info.cancel_requested, "tasks": [task_json(t) for t in tasks],
    }


def task_json(task: TaskRunInfo) -> dict[str, Any]:
    """A task run as ``runs show --json`` lists it."""
    return {
        "slug": task.task_slug, "name": task.task_name, "state": task.state,
        "map_index": task.map_index, "attempts": task.attempts,
        "started_at": iso(task.started_at), "ended_at": iso(task.ended_at),
        "message": task.message, "has_result": task.has_result,
    }


def transition_json(t: Transition) -> dict[str, Any]:
    """One transition as ``runs history --json`` lists it (``task`` None: the flow run)."""
    return {
        "task": t.task_slug, "map_index": t.map_index, "state": t.state,
        "timestamp": iso(t.timestamp), "message": t.message, "attempt": t.attempt,
    }


def flow_json(flow: FlowInfo) -> dict[str, Any]:
    """A flow as ``flows ls --json`` lists it."""
    return {
        "name": flow.name, "runs": flow.runs, "last_run_id": flow.last_run_id,
        "last_state": flow.last_state, "last_run_at": iso(flow.last_run_at),
    }


def log_json(entry: LogEntry) -> dict[str, Any]:
    """A log record as ``runs logs --json`` lists it."""
    return {
        "timestamp": iso(entry.timestamp), "level": level_name(entry.level),
        "task": entry.task_slug, "map_index": entry.map_index, "logger": entry.logger,
        "message": entry.message,
    }


def flow_version_json(version: FlowVersionInfo) -> dict[str, Any]:
    """A registered flow as ``GET /api/flows`` lists it (SPEC.md "Orchestration")."""
    return {
        "id": version.id, "name": version.flow_name, "version": version.version,
        "labels": list(version.labels),
        "parameters": [{"name": p["name"], "default": p.get("default"),
                        "required": bool(p.get("required"))} for p in version.parameters],
        "schedule_active": version.schedule_active, "archived": version.archived,
        "schedule": version.schedule_description, "project": version.project_name,
        "created_at": iso(version.created_at), "source_file": version.source_file,
        "source_variable": version.source_variable, "graph": version.graph,
    }


def agent_json(agent: AgentInfo) -> dict[str, Any]:
    """An agent as ``GET /api/agents`` lists it."""
    return {
        "id": agent.id, "name": agent.name, "labels": list(agent.labels), "host": agent.host,
        "last_seen": iso(agent.last_seen), "started_at": iso(agent.started_at),
        "live": agent_is_live(agent),
    }
