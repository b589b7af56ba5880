"""The JSON API of SPEC.md ("Orchestration"): thin routes over the query API and actions.

Reads return the CLI's ``--json`` shapes. An unknown id is a 404 and a bad
parameter a 422, each with ``{"detail": "<what is wrong>"}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
        return json.dumps(_plain(content), ensure_ascii=False, allow_nan=False,
                          default=str).encode("utf-8")


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
                       state=query_state(request), limit=limit or None)
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


def delete_run(request: Request) -> Response:
    """Delete a run with everything it owns."""
    writer = stores(request).writer()
    run_id = q.resolve_run_id(writer, request.path_params["run_id"])
    writer.delete_runs([run_id])
    return JsonResponse({"id": run_id, "deleted": True})


routes = [
    Route("/api/health", health),
    Route("/api/runs", list_runs),
    Route("/api/runs/{run_id}", get_run),
    Route("/api/runs/{run_id}", delete_run, methods=["DELETE"]),
    Route("/api/runs/{run_id}/history", run_history),
    Route("/api/runs/{run_id}/logs", run_logs),
]
