"""``cairnflow server start``: the web UI and the JSON API over the store."""

from __future__ import annotations

from typing import Annotated

import typer

from cairnflow.cli.errors import CommandGroup, UsageError
from cairnflow.cli.options import Db

__all__ = ["app", "start"]

app = CommandGroup(name="server", help="Serve the web UI and its JSON API.",
                   no_args_is_help=True)


@app.command("start")
def start(
    host: Annotated[str, typer.Option(
        "--host", help="The address to listen on. Anything but 127.0.0.1/localhost lets "
                       "other machines reach the UI, which has no login.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="The port to listen on.")] = 8080,
    db: Db = None,
) -> None:
    """Serve the web UI and the JSON API on http://HOST:PORT (127.0.0.1:8080).

    The server reads and writes the same store as the CLI and the agents; it
    never imports your flows' code.

    Example: cairnflow server start --port 8080
    """
    import uvicorn

    from cairnflow.server.app import create_app
    from cairnflow.server.security import LOOPBACK_HOSTS, allowed_hosts

    if not host.strip():
        raise UsageError("--host must name an address, e.g. 127.0.0.1")
    if host not in LOOPBACK_HOSTS:
        typer.echo(f"Warning: listening on {host}: any machine that can reach it can see "
                   "your runs and start, cancel or delete them (there is no login).",
                   err=True)
    app = create_app(db, hosts=allowed_hosts(host, port))
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    typer.echo(f"cairnflow UI on http://{shown}:{port}/ (store: {app.state.stores.url})")
    typer.echo("Press Ctrl-C to stop.")
    server.run()
