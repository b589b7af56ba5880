"""The HTML pages: server-rendered Jinja2 templates (autoescaped) over the query API.

A page that shows something in progress polls itself with htmx (``hx-trigger=
"every 1s"`` on its live section) and the server stops drawing that trigger
once the run has ended, so updates stop by themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from cairnflow import states
from cairnflow.exceptions import ResultNotFoundError
from cairnflow.server import orchestration as orch
from cairnflow.server import views
from cairnflow.server.api import ApiError, query_int, query_level, query_state, stores
from cairnflow.statestore import queries as q

__all__ = ["routes", "error_page", "templates"]

TEMPLATE_DIR = Path(__file__).parent / "templates"

STATE_NAMES = sorted(states.NAMES)

RUNS_PAGE = 50
"""Runs per page of ``/runs``."""

RESULT_BYTES = 1 << 20
"""The largest pickled result the server will unpickle to show (1 MiB)."""

RESULT_REPR_CHARS = 20_000

HISTORY_ROWS = 500
"""The run page lists at most this many transitions (the JSON API has them all)."""

LOG_ROWS = 2000

WIDE_RUN = 2000
"""A run with more task runs than this has its timeline drawn from its task runs
(latest attempt) and its history left to the JSON API."""

templates = Environment(loader=FileSystemLoader(TEMPLATE_DIR),
                        autoescape=select_autoescape(default=True, default_for_string=True))


def _utc(when: datetime | None) -> str:
    return "" if when is None else f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _clock(when: datetime | None) -> str:
    return "" if when is None else f"{when.astimezone(timezone.utc):%H:%M:%S}"


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = datetime.now(timezone.utc).timestamp() - when.timestamp()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h"
    else:
        text = f"{int(seconds // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def _duration(start: datetime | None, end: datetime | None) -> str:
    from cairnflow.cli.output import human_duration

    return human_duration(start, end)


templates.filters.update(utc=_utc, clock=_clock, ago=_ago, kind=views.state_kind)
templates.globals.update(duration=_duration, label=q.task_label, finished=views.is_finished,
                         level_name=q.level_name)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template ``name`` with ``context``, as an HTML response."""
    html = templates.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, detail: str) -> Response:
    """An error as a page (the API answers JSON instead)."""
    return render(request, "error.html", status=status, status_code=status, detail=detail)


# -- pages ------------------------------------------------------------------------------


def dashboard(request: Request) -> Response:
    """Counts by state over 24 h, running runs, recent failures, upcoming runs, agents."""
    store = stores(request).reader()
    now = datetime.now(timezone.utc)
    since = now - timedelta(hours=24)
    recent = q.list_runs(store, limit=DASHBOARD_RUNS, since=since)
    counts: dict[str, int] = {}
    for r in recent:
        counts[r.state] = counts.get(r.state, 0) + 1
    running = [r for r in recent if r.state == "Running"]
    failures = [r for r in recent if states.is_failed(r.state)][:10]
    agents = [_agent_view(a) for a in orch.agents(store)]
    upcoming = _upcoming(store, now)
    return render(request, "dashboard.html", counts=sorted(counts.items()), running=running,
                  failures=failures, total=len(recent), agents=agents, upcoming=upcoming,
                  warnings=_unserved(store, upcoming))


DASHBOARD_RUNS = 5000
"""The dashboard counts at most this many of the last 24 hours' runs."""

LATE_AFTER = timedelta(seconds=15)
"""A Scheduled run this long past its start time is shown as late."""


def _upcoming(store: Any, now: datetime) -> list[dict[str, Any]]:
    """Scheduled runs, soonest first, each marked late when it is overdue."""
    queued = q.list_runs(store, state="Scheduled", limit=200)
    queued.sort(key=lambda r: _due(r))
    return [{"id": r.id, "flow_name": r.flow_name, "labels": list(getattr(r, "labels", ())),
             "run": r, "scheduled_start": _due(r), "late": _due(r) < now - LATE_AFTER}
            for r in queued[:20]]


def _due(run: Any) -> datetime:
    return getattr(run, "scheduled_start", None) or run.created_at


def _unserved(store: Any, upcoming: list[dict[str, Any]]) -> list[str]:
    """A warning per label set of scheduled runs that no live agent can run."""
    warned: dict[tuple[str, ...], str] = {}
    for u in upcoming:
        key = tuple(u["labels"])
        if key in warned or orch.agents_for(store, u["run"]):
            continue
        want = " ".join(f"--label {label}" for label in key)
        warned[key] = (f"Run {u['id'][:8]} of {u['flow_name']!r} "
                       + (f"needs an agent with labels {', '.join(key)}" if key
                          else "needs an agent")
                       + f", and no live agent has them: start one with "
                       f"`cairnflow agent local start {want}`.".replace("  ", " "))
    return list(warned.values())


def _agent_view(agent: Any) -> dict[str, Any]:
    view = q.agent_json(agent)
    view["last_seen"] = agent.last_seen
    return view


def runs_page(request: Request) -> Response:
    """Runs newest first, filtered by flow, state and age, a page at a time (keyset)."""
    store = stores(request).reader()
    flow = request.query_params.get("flow") or None
    state = query_state(request)
    hours = query_int(request, "hours")
    before = request.query_params.get("before") or None
    since = datetime.now(timezone.utc) - timedelta(hours=hours) if hours else None
    runs = q.list_runs(store, flow_name=flow, state=state, limit=RUNS_PAGE, since=since,
                       before=before)
    next_page = None
    if len(runs) == RUNS_PAGE:
        query = {k: v for k, v in request.query_params.items() if k != "before" and v}
        next_page = "/runs?" + urlencode({**query, "before": runs[-1].id})
    flows = [f.name for f in q.list_flows(store)]
    return render(request, "runs.html", runs=runs, flows=flows, flow=flow, state=state,
                  hours=hours, states=STATE_NAMES, next_page=next_page,
                  first_page="/runs?" + urlencode(
                      {k: v for k, v in request.query_params.items() if k != "before" and v})
                  if before else None)


def flows_page(request: Request) -> Response:
    """Registered flows (latest versions), then flows that only have runs."""
    store = stores(request).reader()
    by_name = {f.name: f for f in q.list_flows(store)}
    rows = []
    for v in orch.registered_flows(store):
        info = by_name.pop(v.flow_name, None)
        rows.append({"id": v.id, "name": v.flow_name, "version": v.version,
                     "labels": v.labels, "schedule": v.schedule_description,
                     "schedule_active": v.schedule_active, "runs": info.runs if info else 0,
                     "last_run_id": info.last_run_id if info else None,
                     "last_state": info.last_state if info else None})
    rows += [{"id": None, "name": f.name, "version": None, "labels": [], "schedule": None,
              "schedule_active": False, "runs": f.runs, "last_run_id": f.last_run_id,
              "last_state": f.last_state} for f in by_name.values()]
    rows.sort(key=lambda r: r["name"].lower())
    return render(request, "flows.html", flows=rows)


def flow_page(request: Request) -> Response:
    """A registered flow: versions, labels, schedule, schematic, runs and the Run form."""
    store = stores(request).reader()
    if not orch.AVAILABLE:
        raise ApiError(404, f"no registered flow with id {request.path_params['flow_id']!r}")
    version = q.registered_flow(store, request.path_params["flow_id"])
    versions = q.registered_flows(store, flow_name=version.flow_name, include_archived=True)
    runs = q.list_runs(store, flow_name=version.flow_name, limit=FLOW_RUNS)
    return render(request, "flow.html", flow=q.flow_version_json(version), version=version,
                  versions=versions, runs=runs, schematic=views.schematic(version.graph),
                  form=views.run_form(version.parameters),
                  live=any(not views.is_finished(r.state) for r in runs))


FLOW_RUNS = 20
"""The flow page lists this many of its newest runs."""


def run_page(request: Request) -> Response:
    """A run: state, actions, task runs, timeline, schematic, logs and history."""
    store = stores(request).reader()
    detail = q.run_detail(store, request.path_params["run_id"])
    info, tasks = detail.run, detail.tasks
    now = datetime.now(timezone.utc)
    wide = len(tasks) > WIDE_RUN
    if wide:  # the whole history of a very wide run is too much to read every second
        history: list[Any] = []
        timelines = views.timeline_from_tasks(tasks, info.attempt, now)
    else:
        history = store.get_history(info.id)
        timelines = views.timelines(history, now)
    log_filter = _log_filter(request)
    logs = _filtered_logs(store, info.id, log_filter)
    task_slugs = list(dict.fromkeys(t.task_slug for t in tasks))
    groups = views.task_groups(tasks)
    slugs_shown = len(groups)
    return render(
        request, "run.html", run=info, groups=groups,
        groups_hidden=len(task_slugs) - slugs_shown,
        timelines=timelines, history=history[-HISTORY_ROWS:],
        history_total=len(history), wide=wide, logs=logs[-LOG_ROWS:], logs_total=len(logs),
        log_filter=log_filter, task_slugs=task_slugs, live=not views.is_finished(info.state),
        task_count=len(tasks), can_cancel=not views.is_finished(info.state),
        can_resume=_resumable(info), flow_id=getattr(info, "flow_version_id", None),
        schematic=_run_schematic(store, info, tasks))


def _run_schematic(store: Any, info: Any, tasks: list[Any]) -> Any:
    """The graph of the version the run was made from (or one with its hash), by state."""
    graph = None
    if not orch.AVAILABLE:
        return None
    if info.flow_version_id:
        graph = store.get_flow_version(info.flow_version_id).graph
    else:
        for v in orch.registered_flows(store, flow_name=info.flow_name, include_archived=True):
            if v.flow_hash == info.flow_hash:
                graph = v.graph
                break
    if graph is None:
        return None
    by_slug: dict[str, list[str]] = {}
    for t in tasks:
        by_slug.setdefault(t.task_slug, []).append(t.state)
    shown = {}
    for slug, found in by_slug.items():
        shown[slug] = found[0] if len(found) == 1 else views.worst(found[1:]) or found[0]
    return views.schematic(graph, shown)


def _resumable(info: Any) -> bool:
    return q.resume_verdict(info).ok


def _log_filter(request: Request) -> dict[str, Any]:
    level = query_level(request)
    return {"task": request.query_params.get("task") or "", "level": level,
            "level_name": q.level_name(level) if level else "",
            "q": request.query_params.get("q") or ""}


def _filtered_logs(store: Any, run_id: str, f: dict[str, Any]) -> list[Any]:
    entries = q.logs(store, run_id, f["task"] or None, f["level"])
    if f["q"]:
        needle = f["q"].lower()
        entries = [e for e in entries if needle in e.message.lower()]
    return entries


def run_logs_text(request: Request) -> Response:
    """The run's logs (filtered as on the page) as a text file to download."""
    store = stores(request).reader()
    run_id = q.resolve_run_id(store, request.path_params["run_id"])
    lines = [f"{_utc(e.timestamp)}  {q.level_name(e.level):<8} "
             f"{q.task_label(e.task_slug, e.map_index)}  {e.message}"
             for e in _filtered_logs(store, run_id, _log_filter(request))]
    return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""), headers={
        "content-disposition": f'attachment; filename="{run_id}.log"'})


def run_result(request: Request) -> Response:
    """A task's result, unpickled only because a user asked, and only when small."""
    store = stores(request).reader()
    run_id = q.resolve_run_id(store, request.path_params["run_id"])
    slug = request.query_params.get("task")
    if not slug:
        raise ApiError(422, "query parameter 'task' (a task slug) is required")
    map_index = query_int(request, "map_index")
    label = q.task_label(slug, map_index)
    text = note = None
    try:
        text = repr(q.result_value(store, run_id, slug, map_index, max_bytes=RESULT_BYTES))
    except ResultNotFoundError:
        raise
    except ValueError as exc:  # too large to unpickle here
        note = f"{exc}; read it with `cairnflow runs result {run_id} {slug}`."
    except Exception as exc:  # a user's object may fail to load in any way
        note = f"The result could not be loaded here: {exc}"
    if text is not None and len(text) > RESULT_REPR_CHARS:
        text = text[:RESULT_REPR_CHARS] + " …"
        note = f"Cut to its first {RESULT_REPR_CHARS:,} characters."
    return render(request, "result.html", run_id=run_id, label=label, text=text, note=note)


def agents_page(request: Request) -> Response:
    """The agents the store knows, with when each was last seen."""
    agents = [_agent_view(a) for a in orch.agents(stores(request).reader())]
    return render(request, "agents.html", agents=agents)


routes = [
    Route("/", dashboard),
    Route("/flows", flows_page),
    Route("/flow/{flow_id}", flow_page),
    Route("/runs", runs_page),
    Route("/flow-run/{run_id}", run_page),
    Route("/flow-run/{run_id}/logs.txt", run_logs_text),
    Route("/flow-run/{run_id}/result", run_result),
    Route("/agents", agents_page),
]
