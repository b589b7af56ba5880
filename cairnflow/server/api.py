"""The JSON API of SPEC.md ("Orchestration"): thin routes over the query API and actions.

Reads return the CLI's ``--json`` shapes. An unknown id is a 404 and a bad
parameter a 422, each with ``{"detail": "<what is wrong>"}``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cairnflow.server import orchestration as orch
from cairnflow.statestore import queries as q

__all__ = ["routes", "ApiError", "JsonResponse", "query_int", "query_state", "query_level", "stores", "LEVELS"]


class ApiError(Exception):
    """A request the server refuses: an HTTP status and one line for the user."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class JsonResponse(JSONResponse):
    """JSON as the CLI prints it: values JSON cannot hold (NaN, bytes, objects) as strings."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, default=str)
        except ValueError:  # NaN or infinity somewhere: rare, so only then walk it all
            text = json.dumps(_plain(content), ensure_ascii=False, allow_nan=False,
                              default=str)
        return text.encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def stores(request: Request) -> Any:
    """The app's ``Stores``."""
    return request.app.state.stores


def query_int(request: Request, name: str, default: int | None = None,
              minimum: int = 0) -> int | None:
    """An integer query parameter; 422 naming it when it is not one."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(422, f"query parameter {name!r} must be an integer, not {text!r}")
    if value < minimum:
        raise ApiError(422, f"query parameter {name!r} must be at least {minimum}")
    return value


def query_state(request: Request, name: str = "state") -> str | None:
    """A state name (any case) -> its class name; 422 naming the parameter if unknown."""
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return q.parse_state(text)
    except ValueError as exc:
        raise ApiError(422, f"query parameter {name!r}: {exc}") from None


LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def query_level(request: Request, name: str = "level") -> int | None:
    """A logging level name (any case) -> its number; 422 naming the parameter if unknown."""
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return LEVELS[text.upper()]
    except KeyError:
        raise ApiError(422, f"query parameter {name!r}: {text!r} is not one of "
                            + ", ".join(LEVELS)) from None


# -- routes -------------------------------------------------------------------------


def health(request: Request) -> Response:
    """``{"status": "ok"}`` while the server runs."""
    return JsonResponse({"status": "ok"})


def list_runs(request: Request) -> Response:
    """Runs newest first, as ``runs ls --json``; ``flow``, ``state``, ``limit`` filters."""
    limit = query_int(request, "limit", default=100)
    runs = q.list_runs(stores(request).reader(), flow_name=request.query_params.get("flow"),
                       state=query_state(request), limit=limit or None,
                       since=_query_time(request, "since"),
                       before=request.query_params.get("before") or None)
    return JsonResponse([q.run_json(r) for r in runs])


def get_run(request: Request) -> Response:
    """One run with its task runs, as ``runs show --json``."""
    detail = q.run_detail(stores(request).reader(), request.path_params["run_id"])
    return JsonResponse(q.run_detail_json(detail.run, detail.tasks))


def run_history(request: Request) -> Response:
    """Every transition of a run, as ``runs history --json``; ``task`` filters by slug."""
    store = stores(request).reader()
    run_id = q.resolve_run_id(store, request.path_params["run_id"])
    transitions = q.history(store, run_id, request.query_params.get("task") or None)
    return JsonResponse([q.transition_json(t) for t in transitions])


def run_logs(request: Request) -> Response:
    """A run's log records, as ``runs logs --json``; ``task`` filters by slug."""
    store = stores(request).reader()
    run_id = q.resolve_run_id(store, request.path_params["run_id"])
    entries = q.logs(store, run_id, request.query_params.get("task") or None,
                     query_level(request))
    return JsonResponse([q.log_json(e) for e in entries])


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 422 if it is not one."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(422, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "the request body must be a JSON object")
    return body


def run_url(request: Request, run_id: str) -> str:
    """The run's page, as the browser reached this server."""
    return f"{str(request.base_url).rstrip('/')}/flow-run/{run_id}"


def list_flows(request: Request) -> Response:
    """Registered flows (latest versions; ``archived=true`` adds older ones)."""
    archived = request.query_params.get("archived", "").lower() in ("1", "true", "yes")
    versions = orch.registered_flows(stores(request).reader(), include_archived=archived)
    return JsonResponse([q.flow_version_json(v) for v in versions])


def get_flow(request: Request) -> Response:
    """One registered flow version, by id (or by name: its latest version)."""
    if not orch.AVAILABLE:
        raise ApiError(404, f"no registered flow with id {request.path_params['flow_id']!r}")
    version = q.registered_flow(stores(request).reader(), request.path_params["flow_id"])
    return JsonResponse(q.flow_version_json(version))


async def create_run(request: Request) -> Response:
    """Create a run of a registered flow: 201 ``{"id", "state", "url"}``."""
    body = await json_body(request)
    unknown = sorted(set(body) - {"parameters", "labels", "scheduled_start"})
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}: give parameters, labels, "
                            "scheduled_start")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(422, "'parameters' must be an object of name: value")
    labels = body.get("labels")
    if labels is not None and (not isinstance(labels, list)
                               or not all(isinstance(x, str) for x in labels)):
        raise ApiError(422, "'labels' must be a list of strings")
    when = _scheduled_start(body.get("scheduled_start"))
    run_id = await run_in_threadpool(
        orch.actions().create_flow_run, stores(request).writer(), request.path_params["flow_id"],
        parameters, labels, when)
    return JsonResponse({"id": run_id, "state": "Scheduled", "url": run_url(request, run_id)},
                        status_code=201)


def _query_time(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"query parameter {name!r} must be an ISO 8601 time, "
                            f"not {text!r}") from None
    if when.tzinfo is None:
        raise ApiError(422, f"query parameter {name!r} needs a UTC offset")
    return when


def _scheduled_start(text: Any) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"'scheduled_start' must be an ISO 8601 time, not {text!r}") \
            from None
    if when.tzinfo is None:
        raise ApiError(422, "'scheduled_start' needs a UTC offset, e.g. 2024-05-01T12:00:00Z")
    return when


async def set_schedule(request: Request) -> Response:
    """Switch a flow's schedule on or off: ``{"active": true|false}``."""
    body = await json_body(request)
    active = body.get("active")
    if not isinstance(active, bool):
        raise ApiError(422, "'active' must be true or false")
    store = stores(request).writer()
    flow_id = request.path_params["flow_id"]
    removed = await run_in_threadpool(orch.actions().set_schedule_active, store, flow_id, active)
    return JsonResponse({"id": flow_id, "schedule_active": active, "removed_runs": removed})


async def cancel_run(request: Request) -> Response:
    """Cancel a run: ``{"id", "state"}`` (Cancelled, or Running while it stops)."""
    await json_body(request)
    store = stores(request).writer()
    run_id = await run_in_threadpool(q.resolve_run_id, store, request.path_params["run_id"])
    state = await run_in_threadpool(orch.actions().cancel_run, store, run_id)
    return JsonResponse({"id": run_id, "state": state})


async def resume_run(request: Request) -> Response:
    """Queue a run that did not succeed for an agent to resume: ``{"id", "state"}``."""
    await json_body(request)
    store = stores(request).writer()
    run_id = await run_in_threadpool(orch.actions().request_resume, store,
                                     request.path_params["run_id"])
    return JsonResponse({"id": run_id, "state": "Scheduled", "url": run_url(request, run_id)})


async def delete_run(request: Request) -> Response:
    """Delete a run with everything it owns (a live run is refused: cancel it first)."""
    await json_body(request)
    store = stores(request).writer()
    run_id = await run_in_threadpool(q.resolve_run_id, store, request.path_params["run_id"])
    await run_in_threadpool(_delete, store, run_id)
    return JsonResponse({"id": run_id, "deleted": True})


def _delete(store: Any, run_id: str) -> None:
    if orch.AVAILABLE:
        orch.actions().delete_runs(store, [run_id])
        return
    if store.get_flow_run(run_id).state == "Running":
        from cairnflow.exceptions import RunStillAliveError

        raise RunStillAliveError(f"run {run_id} is still running: stop it first")
    store.delete_runs([run_id])


def list_agents(request: Request) -> Response:
    """Every agent the store knows, most recently seen first."""
    return JsonResponse([q.agent_json(a) for a in orch.agents(stores(request).reader())])


routes = [
    Route("/api/health", health),
    Route("/api/flows", list_flows),
    Route("/api/flows/{flow_id}", get_flow),
    Route("/api/flows/{flow_id}/runs", create_run, methods=["POST"]),
    Route("/api/flows/{flow_id}/schedule", set_schedule, methods=["POST"]),
    Route("/api/runs", list_runs),
    Route("/api/runs/{run_id}", get_run),
    Route("/api/runs/{run_id}", delete_run, methods=["DELETE"]),
    Route("/api/runs/{run_id}/history", run_history),
    Route("/api/runs/{run_id}/logs", run_logs),
    Route("/api/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/api/runs/{run_id}/resume", resume_run, methods=["POST"]),
    Route("/api/agents", list_agents),
]
