"""The ``--json`` read commands that scripts call often, without loading Typer.

Typer (and through it pydantic and rich) takes longer to import than such a
command takes to run, so ``main()`` first offers the command line to
``handle``. It answers only a command line it fully understands,
``cairnflow runs ls --json`` with ``--flow``, ``--state``, ``--limit`` and
``--db`` (as ``--opt value`` or ``--opt=value``), and prints what the Typer
command prints. Anything else (another command or option, ``--help``, a value
that is wrong, an error while reading) is left to Typer, which does the work
again and reports a mistake in its own words: reads change nothing, so doing
one twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["handle"]

_RUNS_LS = {"--flow", "--state", "--limit", "--db"}


def handle(argv: Sequence[str]) -> bool:
    """Run the command line ``argv`` (without the program name) if it is one of the
    quick ones; return whether it was (and so was done)."""
    if len(argv) < 3 or argv[0] != "runs" or argv[1] != "ls" or "--json" not in argv:
        return False
    options = _options(argv[2:], _RUNS_LS)
    if options is None:
        return False
    return _runs_ls(options)


def _options(args: Sequence[str], known: set[str]) -> dict[str, str] | None:
    """``--json`` and ``known`` options with a value each, or None for anything else."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--json":
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


def _runs_ls(options: dict[str, str]) -> bool:
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
        data = [output.run_json(r) for r in runs]
    except (CairnflowError, OSError):
        return False  # Typer's command reads again and reports it in one line
    output.print_json(data)
    return True
