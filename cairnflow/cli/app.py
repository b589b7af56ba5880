"""The ``cairnflow`` Typer app: ``run``, ``resume``, and one sub-app per noun.

A thin shell over the Python API (as sqlite-utils' ``cli.py`` is over
``db.py``): each command opens the store, calls the ``StateStore`` query
methods or the runner, and formats what it gets back. Every command takes
``--db URL`` after its name; errors are reported by ``cairnflow.cli.errors``.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cairnflow.cli import flows, run, runs, server
from cairnflow.cli.errors import EXIT_CODES, CommandGroup

__all__ = ["app"]

app = CommandGroup(
    name="cairnflow",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("run")(run.run_command)
app.command("resume")(run.resume_command)
app.add_typer(runs.app, name="runs")
app.add_typer(flows.app, name="flows")
app.add_typer(server.app, name="server")


def _print_version(value: bool) -> None:
    if value:
        from cairnflow import __version__

        typer.echo(f"cairnflow {__version__}")
        raise typer.Exit()


@app.callback()
def cli(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print cairnflow's version and exit.")] = None,
) -> None:
    """cairnflow: durable, local-first workflows with the Prefect 1 API.

    Every transition of every run is recorded in a SQLite store, so a failed
    run resumes where it stopped. Start with `cairnflow run FILE`, then
    `cairnflow runs ls`.
    """
