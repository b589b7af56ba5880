"""The server's guards for a UI on localhost: its own Host only, same-origin JSON writes.

A page on any other site can make a browser send requests to
``http://127.0.0.1:8080``. Two rules keep such a page from reading or changing
the store:

* DNS rebinding: a hostile name that resolves to 127.0.0.1 reaches the server
  with that name in its ``Host`` header, so a request whose Host is not one of
  the server's own names is refused (403).
* Cross-site writes: a write (POST, PUT, PATCH, DELETE) must be
  ``Content-Type: application/json`` (which an HTML form cannot send, and
  which a script on another origin cannot send without a CORS preflight that
  the server never grants) and, when the browser names an ``Origin``, that
  origin must be the server's own (415 and 403 otherwise).

Example:
    >>> allowed_hosts("127.0.0.1", 8080)[:2]
    ['127.0.0.1', 'localhost']
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["HostAndOriginGuard", "allowed_hosts", "LOOPBACK_HOSTS"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = dict[str, Any]


def allowed_hosts(bind: str, port: int) -> list[str]:
    """The host names a server bound to ``bind`` answers to (ports are not compared).

    A loopback or wildcard bind answers to every loopback name; a bind to
    another address or name answers to that one as well.
    """
    names = list(LOOPBACK_HOSTS)
    if bind not in names and bind not in ("0.0.0.0", "::", ""):
        names.append(bind.lower())
    return names


def host_name(host_header: str) -> str:
    """``localhost:8080`` -> ``localhost``; ``[::1]:8080`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class HostAndOriginGuard:
    """ASGI middleware that refuses foreign Host headers and cross-origin or non-JSON writes.

    Args:
        app: the ASGI app to guard.
        hosts: the host names (without port) this server answers to.
    """

    def __init__(self, app: Any, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        await _send_json(send, status, {"detail": message})

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        headers = _headers(scope)
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return 403, (f"Host {host!r} is not this server's: open the UI at "
                         "http://127.0.0.1:<port>/ or http://localhost:<port>/")
        if scope["method"] not in _WRITES:
            return None
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return 415, "writes must be sent as Content-Type: application/json"
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
            return 403, f"cross-origin write refused (Origin {origin!r})"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site write refused"
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_json(send: Any, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
