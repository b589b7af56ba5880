"""The Starlette app: pages, the JSON API, static files, guards and error handling.

``create_app`` builds the app over a store URL; ``cairnflow server start``
serves it with uvicorn. Routes only read through the query API and write
through the actions module: the server never imports or unpickles user code
(except a result a user asks to see).

Example:
    >>> from starlette.testclient import TestClient
    >>> app = create_app("sqlite://", hosts=["testserver"])
    >>> TestClient(app).get("/api/health").json()
    {'status': 'ok'}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from cairnflow import exceptions
from cairnflow.exceptions import AmbiguousRunError, CairnflowError, RunStillAliveError, StoreLockedError
from cairnflow.server import api, pages
from cairnflow.server.security import LOOPBACK_HOSTS, HostAndOriginGuard
from cairnflow.server.stores import Stores

__all__ = ["create_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"


def create_app(url: str | None = None, *, hosts: Iterable[str] = LOOPBACK_HOSTS) -> Starlette:
    """The web UI and JSON API over the store at ``url``.

    Args:
        url: the store URL (default: ``$CAIRNFLOW_DB_URL`` or the home database).
        hosts: the Host header names to answer (any port); others get 403.
    """
    stores = Stores(url)
    app = Starlette(
        routes=[*api.routes, *pages.routes,
                Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")],
        middleware=[Middleware(HostAndOriginGuard, hosts=list(hosts))],
        exception_handlers={
            api.ApiError: _api_error, CairnflowError: _cairnflow_error,
            HTTPException: _http_error, NotImplementedError: _not_implemented,
        },
        lifespan=_closing(stores),
    )
    app.state.stores = stores
    return app


def _closing(stores: Stores):
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        stores.close()

    return lifespan


def _respond(request: Request, status: int, detail: str) -> Response:
    if request.url.path.startswith("/api/"):
        return api.JsonResponse({"detail": detail}, status_code=status)
    return pages.error_page(request, status, detail)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, api.ApiError)
    return _respond(request, exc.status, exc.detail)


async def _cairnflow_error(request: Request, exc: Exception) -> Response:
    """cairnflow's errors as HTTP: unknown -> 404, refused now -> 409, bad input -> 422."""
    if isinstance(exc, AmbiguousRunError):
        status = 422
    elif isinstance(exc, LookupError):  # unknown run, flow, task or result
        status = 404
    elif isinstance(exc, RunStillAliveError):
        status = 409
    elif isinstance(exc, ValueError):  # invalid parameters, a result too large ...
        status = 422
    elif isinstance(exc, StoreLockedError):
        status = 503
    else:
        status = 500
    detail = str(exc) or type(exc).__name__
    invalid = getattr(exceptions, "InvalidParametersError", None)
    if request.url.path.startswith("/api/") and invalid and isinstance(exc, invalid):
        return api.JsonResponse({"detail": detail, "parameters": exc.names}, status_code=422)
    return _respond(request, status, detail)


async def _not_implemented(request: Request, exc: Exception) -> Response:
    return _respond(request, 501, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 else f"nothing at {request.url.path}"
    return _respond(request, exc.status_code, str(detail))
