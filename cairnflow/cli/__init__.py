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

import sys
import types
from typing import Any

__all__ = ["app", "main"]


class _Package(types.ModuleType):
    """``cairnflow.cli.app`` is the Typer app, imported on first use (Typer, pydantic and
    rich take longer to import than a quick command takes to run); importing the module
    of the same name does not replace it."""

    @property
    def app(self) -> Any:
        from cairnflow.cli.app import app

        return app

    @app.setter
    def app(self, module: Any) -> None:  # the import system naming the submodule
        pass


sys.modules[__name__].__class__ = _Package


def main() -> None:
    """Run the ``cairnflow`` command line."""
    from importlib.machinery import ModuleSpec

    script = sys.modules.get("__main__")
    if script is not None and getattr(script, "__spec__", None) is None:
        # Worker processes spawned from here (processes executor, Dask's nannies)
        # would run a console script again to rebuild __main__, and one without a
        # __main__ guard would run the command again; a module spec named
        # "*.__main__" tells multiprocessing to leave __main__ alone.
        script.__spec__ = ModuleSpec("cairnflow.__main__", None)
    from cairnflow.cli import quick

    if quick.handle(sys.argv[1:]):
        return
    from cairnflow.cli.app import app

    app(prog_name="cairnflow")
