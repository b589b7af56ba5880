"""The read commands people and scripts call most often, without loading Typer.

Typer (and through it pydantic and rich) takes longer to import than such a
command takes to run, so ``main()`` first offers the command line to
``handle``. It answers only a command line it fully understands,
``cairnflow --version``, ``cairnflow runs ls [--json]`` with ``--flow``, ``--state``, ``--limit`` and
``--db``, or ``cairnflow runs show RUN_ID --json`` with ``--all`` and ``--db``
(options as ``--opt value`` or ``--opt=value``), and prints what the Typer
command prints. Anything else (another command or option, ``--help``, a value
that is wrong, an error while reading) is left to Typer, which does the work
again and reports a mistake in its own words: reads change nothing, so doing
one twice is harmless.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["handle"]

_RUNS_LS = {"--flow", "--state", "--limit", "--db"}
_RUNS_SHOW = {"--db"}


def handle(argv: Sequence[str]) -> bool:
    """Run the command line ``argv`` (without the program name) if it is one of the
    quick ones; return whether it was (and so was done)."""
    if list(argv) == ["--version"]:
        from cairnflow import __version__

        _print(print, f"cairnflow {__version__}")
        return True
    if len(argv) < 2 or argv[0] != "runs":
        return False
    if argv[1] == "ls":
        options = _options(argv[2:], _RUNS_LS)
        return options is not None and _runs_ls(options, "--json" in argv)
    if len(argv) < 3 or "--json" not in argv:
        return False
    if argv[1] == "show" and not argv[2].startswith("-"):
        options = _options(argv[3:], _RUNS_SHOW, flags={"--all"})
        return options is not None and _runs_show(argv[2], options)
    return False


def _options(args: Sequence[str], known: set[str],
             flags: frozenset[str] | set[str] = frozenset()) -> dict[str, str] | None:
    """``--json``, ``flags`` and ``known`` options with a value each, or None for
    anything else."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--json" or arg in flags:
            continue
        name, equals, value = arg.partition("=")
        if name not in known or name in options:
            return None
        if not equals:
            if i >= len(args) or args[i].startswith("-"):
                return None
            value = args[i]
            i += 1
        options[name] = value
    return options


def _runs_ls(options: dict[str, str], as_json: bool) -> bool:
    from cairnflow.cli import output
    from cairnflow.cli.opening import reading
    from cairnflow.exceptions import CairnflowError
    from cairnflow.statestore import queries

    try:
        limit = int(options.get("--limit", "20"))
        state = options.get("--state")
        wanted = None if state is None else queries.parse_state(state)
    except ValueError:
        return False
    if limit < 0:
        return False
    try:
        with reading(options.get("--db")) as store:
            runs = queries.list_runs(store, flow_name=options.get("--flow"), state=wanted,
                                     limit=limit or None)
        data = [output.run_json(r) for r in runs] if as_json else runs
    except (CairnflowError, OSError):
        return False  # Typer's command reads again and reports it in one line
    _print(output.print_json if as_json else output.show_runs, data)
    return True


def _runs_show(ref: str, options: dict[str, str]) -> bool:
    from cairnflow.cli import output
    from cairnflow.cli.opening import reading
    from cairnflow.exceptions import CairnflowError
    from cairnflow.statestore import queries

    try:
        with reading(options.get("--db")) as store:
            detail = queries.run_detail(store, ref)
        data = output.run_detail_json(detail.run, detail.tasks)
    except (CairnflowError, OSError):
        return False  # an unknown run, say: Typer's command reports it in one line
    _print(output.print_json, data)
    return True


def _print(show: Any, data: Any) -> None:
    """``show(data)``; a reader that has gone (``... | head``) ends it quietly, as
    ``errors.QuietWhenClosed`` does for Typer's commands."""
    from cairnflow.cli.output import discard_output

    try:
        show(data)
    except BrokenPipeError:
        discard_output(sys.stdout)
