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
    import sys
    from importlib.machinery import ModuleSpec

    script = sys.modules.get("__main__")
    if script is not None and getattr(script, "__spec__", None) is None:
        # Worker processes spawned from here (processes executor, Dask's nannies)
        # would run a console script again to rebuild __main__, and one without a
        # __main__ guard would run the command again; a module spec named
        # "*.__main__" tells multiprocessing to leave __main__ alone.
        script.__spec__ = ModuleSpec("cairnflow.__main__", None)
    app(prog_name="cairnflow")
