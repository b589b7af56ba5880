"""The ``cairnflow`` command line (Typer): run and resume flows, inspect runs.

``main()`` is the console script's entry point; ``app`` is the Typer app, for
``typer.testing.CliRunner``.

Example:
    >>> from typer.testing import CliRunner
    >>> from cairnflow.cli import app
    >>> CliRunner().invoke(app, ["--version"]).output.startswith("cairnflow ")
    True
"""

from __future__ import annotations

from cairnflow.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the ``cairnflow`` command line."""
    app(prog_name="cairnflow")
