"""``cairnflow runs``: what happened in past and current runs.

Each command opens the store (read-only, except ``rm`` and ``prune``), asks the
query API (``cairnflow.statestore.queries``, which the client and the server
read through too), and prints a table or, with ``--json``, its shapes of
SPEC.md ("CLI").
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any, Optional

import pendulum
import typer

from cairnflow.cli import output
from cairnflow.cli.errors import CommandGroup, UsageError, fail
from cairnflow.cli.options import Db, Json, RunRef, database_exists, reading, writing
from cairnflow.statestore import queries
from cairnflow.statestore.base import FlowRunInfo, TaskRunInfo
from cairnflow.statestore.queries import presented_tasks
from cairnflow.states import is_successful

__all__ = ["app", "parse_duration", "presented_tasks", "state_name"]

app = CommandGroup(name="runs", help="Inspect and remove runs.", no_args_is_help=True)

CHILD_ROWS = 10
"""A mapped task with more children than this is shown collapsed in ``runs show``."""


# -- ls ------------------------------------------------------------------------------


@app.command("ls")
def list_runs(
    flow: Annotated[Optional[str], typer.Option(
        "--flow", metavar="NAME", help="Only runs of this flow.")] = None,
    state: Annotated[Optional[str], typer.Option(
        "--state", metavar="STATE",
        help="Only runs in this state: Success, Failed, Running, Crashed, Cancelled, "
             "Paused (any case).")] = None,
    since: Annotated[Optional[str], typer.Option(
        "--since", metavar="WHEN", help="Only runs started since WHEN: a duration ago (2d, "
                                        "12h, 90m) or a local date/time (2024-05-01, "
                                        "2024-05-01T12:00).")] = None,
    until: Annotated[Optional[str], typer.Option(
        "--until", metavar="WHEN", help="Only runs started before WHEN (as --since).")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=0, help="At most this many runs; 0 for all.")] = 20,
    as_json: Json = False,
    db: Db = None,
) -> None:
    """List runs, newest first.

    `started` is when a run first started; `duration` is how long its latest
    attempt took (`attempt` counts resumes).

    Example: cairnflow runs ls --flow etl --state failed --since 2d --limit 5
    """
    wanted = None if state is None else state_name(state)
    start = None if since is None else parse_when(since, "--since")
    end = None if until is None else parse_when(until, "--until")
    with reading(db) as store:
        runs = queries.list_runs(store, flow_name=flow, state=wanted, limit=limit or None,
                                 since=start, until=end)
    output.emit(as_json, lambda: [output.run_json(r) for r in runs], lambda: _show_runs(runs))


_show_runs = output.show_runs  # also what `runs rm` shows before it asks


def state_name(text: str) -> str:
    """A state's class name from any capitalisation: ``failed`` -> ``Failed``."""
    try:
        return queries.parse_state(text)
    except ValueError as exc:
        raise UsageError(f"--state {exc}") from None


# -- show -----------------------------------------------------------------------------


@app.command("show")
def show(
    run_id: RunRef,
    all_children: Annotated[bool, typer.Option(
        "--all", help="List every mapped child (by default a mapped task with many "
                      "children is summarised).")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="Redraw as the run goes on, until it ends (with --json, "
                              "print it once it has ended).")] = False,
    as_json: Json = False,
    db: Db = None,
) -> None:
    """Show a run and its task runs.

    JSON lists every task run, mapped children included. Task runs left
    Running by a run whose process died are shown as Crashed.

    Example: cairnflow runs show last --watch
    """
    with reading(db) as store:
        detail = queries.run_detail(store, run_id)
        if watch:
            detail = _watch(store, detail, all_children, as_json, db)
            if not as_json:
                return
    info, tasks = detail.run, detail.tasks
    output.emit(as_json, lambda: output.run_detail_json(info, tasks),
                lambda: _show_run(info, tasks, all_children, db))


def _watch(store: Any, detail: queries.RunDetail, all_children: bool, as_json: bool,
           db: str | None) -> queries.RunDetail:
    """Redraw the run each time it changed until it ends; return it as it ended.

    On a terminal the screen is redrawn in place; elsewhere each changed view
    is printed after the last, separated by a blank line.
    """
    import shutil

    terminal = output.stdout_is_terminal()
    drawn = None
    for _ in queries.follow(store, detail.run.id, poll=0.5):
        detail = queries.run_detail(store, detail.run.id)
        if as_json:
            continue
        key = (detail.run.state, [(t.state, t.attempts) for t in detail.tasks])
        if key == drawn:
            continue
        if terminal:
            output.echo_raw("\x1b[H\x1b[2J")  # home, clear the screen
        elif drawn is not None:
            output.echo()
        drawn = key
        _show_run(detail.run, detail.tasks, all_children, db,
                  height=shutil.get_terminal_size().lines - 10 if terminal else None)
    return detail


def _show_run(info: FlowRunInfo, tasks: list[TaskRunInfo], all_children: bool,
              db: str | None, height: int | None = None) -> None:
    color = output.color_enabled()
    state = output.style_state(info.state, color)
    ended = output.local_time(info.ended_at)
    pairs = [
        ("run", info.id), ("flow", info.flow_name),
        ("state", f"{state}  {info.message or ''}".rstrip()),
        ("attempt", str(info.attempt)),
        ("started", output.local_time(info.created_at)),
    ]
    if info.attempt > 1:
        pairs.append(("resumed", output.local_time(info.started_at)))
    if ended:
        pairs.append(("ended", f"{ended} (attempt took "
                               f"{output.human_duration(info.started_at, info.ended_at)})"))
    pairs.append(("parameters", json.dumps(info.parameters, ensure_ascii=False)))
    if info.source_file:
        source = info.source_file + (f":{info.source_variable}" if info.source_variable else "")
        pairs.append(("source", source))
    output.fields(pairs)
    output.echo()
    _task_table(tasks, info, all_children).print(max_rows=height)
    if not tasks:
        output.echo("(no task runs)")
    if queries.resume_verdict(info).ok:
        output.echo()
        output.echo(f"Resume it with: {output.command_line('resume', info.id, db=db)}")


def _task_table(tasks: list[TaskRunInfo], info: FlowRunInfo,
                all_children: bool) -> output.Table:
    table = output.Table(["slug", "state", "attempts", f"start ({output.local_zone()})",
                          "duration", "message"], state_column=1, flex=5, right=[2],
                         optional=[3, 4, 2])
    day = info.created_at

    def add(t: TaskRunInfo, indent: str = "") -> None:
        table.add(indent + output.task_label(t.task_slug, t.map_index), t.state, t.attempts,
                  output.clock_time(t.started_at, day),
                  output.human_duration(t.started_at, t.ended_at), t.message)

    for parent, children in queries.group_mapped(tasks):
        if parent is not None:
            add(parent)
        if all_children or len(children) <= CHILD_ROWS:
            for child in children:
                add(child, "  ")
            continue
        _add_summary(table, children, day)
        unsuccessful = [c for c in children if not is_successful(c.state)]
        for child in unsuccessful[:CHILD_ROWS]:
            add(child, "  ")
        if len(unsuccessful) > CHILD_ROWS:
            table.add(f"  … {len(unsuccessful) - CHILD_ROWS} more", "", "", "", "",
                      "not successful; --all lists every child")
    return table


def _add_summary(table: output.Table, children: list[TaskRunInfo], day: Any) -> None:
    summary = queries.summarise_children(children)
    table.add(f"  [{summary.count} mapped children]", "", summary.attempts,
              output.clock_time(summary.started_at, day),
              output.human_duration(summary.started_at, summary.ended_at),
              ", ".join(f"{n} {s}" for s, n in summary.by_state)
              + " (--all lists every child)")


# -- history ----------------------------------------------------------------------------


@app.command("history")
def history(
    run_id: RunRef,
    task: Annotated[Optional[str], typer.Option(
        "--task", metavar="SLUG", help="Only this task's transitions (its mapped children "
                                       "included), or one mapped child's: SLUG[N].")] = None,
    as_json: Json = False,
    db: Db = None,
) -> None:
    """Show every state transition of a run, oldest first.

    Example: cairnflow runs history last --task fetch-1[7]
    """
    with reading(db) as store:
        rid = queries.resolve_run_id(store, run_id)
        slug, index = _task(store, rid, task)
        transitions = queries.history(store, rid, slug, map_index=index)
    day = transitions[0].timestamp if transitions else None

    def show() -> None:
        table = output.Table([f"time ({output.local_zone()})", "task", "attempt", "state",
                              "message"], state_column=3, flex=4, right=[2], optional=[2])
        for t in transitions:
            table.add(output.clock_time(t.timestamp, day) if day else "",
                      output.task_label(t.task_slug, t.map_index), t.attempt, t.state,
                      t.message)
        table.print()

    output.emit(as_json, lambda: [output.transition_json(t) for t in transitions], show)


def _task(store: Any, run_id: str, text: str | None,
          map_index: int | None = None) -> tuple[str | None, int | None]:
    """``--task`` / ``SLUG`` as typed (``fetch-1[7]`` included) -> (slug, map index)."""
    if text is None:
        return None, map_index
    try:
        return queries.task_ref(store, run_id, text, map_index)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- result ------------------------------------------------------------------------------


@app.command("result")
def result(
    run_id: RunRef,
    slug: Annotated[str, typer.Argument(metavar="SLUG", help="The task run, as "
                                        "`runs show` lists it: add-1, or fetch-1[7] for a "
                                        "mapped child.", show_default=False)],
    map_index: Annotated[Optional[int], typer.Option(
        "--map-index", metavar="N", help="The mapped child's index (the same as "
                                         "SLUG[N]).")] = None,
    as_json: Json = False,
    db: Db = None,
) -> None:
    """Print a task's checkpointed result (its repr, or JSON with --json).

    Example: cairnflow runs result last fetch-1[7] --json
    """
    with reading(db) as store:
        rid = queries.resolve_run_id(store, run_id)
        slug, map_index = _task(store, rid, slug, map_index)
        value = queries.result_value(store, rid, slug, map_index)
    label = output.task_label(slug, map_index)
    if not as_json:
        output.echo(repr(value))
        return
    try:
        output.print_json(value)
    except (TypeError, ValueError) as exc:
        fail(f"the result of task {label!r} is a {type(value).__name__}, which JSON cannot "
             f"represent ({exc}); leave out --json to print its repr")


# -- logs ---------------------------------------------------------------------------------


@app.command("logs")
def logs(
    run_id: RunRef,
    task: Annotated[Optional[str], typer.Option(
        "--task", metavar="SLUG", help="Only this task's records (its mapped children "
                                       "included), or one mapped child's: SLUG[N].")] = None,
    level: Annotated[Optional[str], typer.Option(
        "--level", metavar="LEVEL", help="Only records at LEVEL and above: DEBUG, INFO, "
                                         "WARNING, ERROR.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing records as they are committed, until the run "
                               "ends (with --json, one object per line).")] = False,
    as_json: Json = False,
    db: Db = None,
) -> None:
    """Print the log records stored with a run: time, level, task, message.

    Example: cairnflow runs logs last -f --task fetch-1[7]
    """
    minimum = None if level is None else _level_number(level)
    with reading(db) as store:
        rid = queries.resolve_run_id(store, run_id)
        slug, index = _task(store, rid, task)
        if not follow:
            entries = queries.logs(store, rid, slug, level=minimum, map_index=index)
            output.emit(as_json, lambda: [output.log_json(e) for e in entries],
                        lambda: _print_logs(entries, empty="(no log records)"))
            return
        shown = 0
        for _ in queries.follow(store, rid):
            entries = queries.logs(store, rid, slug, map_index=index)
            new = [e for e in entries[shown:] if minimum is None or e.level >= minimum]
            shown = len(entries)
            if as_json:
                for e in new:
                    output.echo(json.dumps(output.log_json(e), ensure_ascii=False))
            else:
                _print_logs(new)


def _print_logs(entries: list[Any], empty: str | None = None) -> None:
    color = output.color_enabled()
    lines = []
    for e in entries:
        name = output.level_name(e.level)
        style = "red" if e.level >= 40 else "yellow" if e.level >= 30 else None
        lines.append(f"{output.local_time(e.timestamp)}  "
                     f"{output.styled(name.ljust(7), style, color)}  "
                     f"{output.task_label(e.task_slug, e.map_index)}  {e.message}")
    if lines:
        output.echo("\n".join(lines))
    elif empty:
        output.echo(empty)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level_number(name: str) -> int:
    import logging

    if name.strip().upper() not in _LEVELS:
        raise UsageError(f"--level {name!r} is not a log level: use one of {', '.join(_LEVELS)}")
    return getattr(logging, name.strip().upper())


# -- rm and prune ---------------------------------------------------------------------------


Yes = Annotated[bool, typer.Option(
    "--yes", "-y", help="Do not ask before deleting more than one run (nothing asks "
                        "when stdin is not a terminal).")]


@app.command("rm")
def remove(
    run_ids: Annotated[list[str], typer.Argument(
        metavar="RUN_ID...", help="Runs to delete: ids, unique prefixes, or 'last'.",
        show_default=False)],
    force: Annotated[bool, typer.Option(
        "--force", help="Also delete runs that are still running.")] = False,
    yes: Yes = False,
    db: Db = None,
) -> None:
    """Delete runs with everything recorded about them (history, results, logs).

    On a terminal, deleting more than one run asks first.

    Example: cairnflow runs rm 3f2a9c1e last
    """
    with reading(db) as store:
        runs = {}
        for ref in run_ids:
            info = queries.get_run(store, ref)
            runs[info.id] = info
    live = [r.id for r in runs.values() if r.state == "Running"]
    if live and not force:
        raise UsageError(f"run {live[0]} is still running: stop it first, or use --force")
    _confirm(list(runs.values()), yes)
    with writing(db) as store:
        removed = store.delete_runs(list(runs))
    output.echo(f"Removed {removed} run{'' if removed == 1 else 's'}.")


def _confirm(runs: list[FlowRunInfo], yes: bool) -> None:
    """On a terminal, ask before deleting more than one run; a no ends with status 1."""
    if yes or len(runs) <= 1 or not _stdin_is_terminal():
        return
    _show_runs(runs[:20])
    if len(runs) > 20:
        output.echo(f"... and {len(runs) - 20} more")
    if not typer.confirm(f"Delete these {len(runs)} runs and everything recorded about them?",
                         default=False):
        fail("nothing was deleted")


def _stdin_is_terminal() -> bool:
    import sys

    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, option: str = "--older-than") -> timedelta:
    """``30d``, ``12h``, ``90m`` (also ``s`` and ``w``) -> a timedelta."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise UsageError(f"{option} {text!r} is not a duration: use a number and a unit, "
                         "like 30d, 12h or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_when(text: str, option: str) -> Any:
    """``2d`` (that long ago), ``2024-05-01`` or ``2024-05-01T12:00`` (local time unless
    it names its zone) -> an aware UTC datetime."""
    if _DURATION.fullmatch(text):
        return pendulum.now("UTC") - parse_duration(text, option)
    try:
        when = pendulum.parse(text.strip(), tz=pendulum.local_timezone())
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        when = None
    if not isinstance(when, pendulum.DateTime):
        raise UsageError(f"{option} {text!r} is not a time: use a duration ago (2d, 12h, "
                         "90m) or a date (2024-05-01, 2024-05-01T12:00)")
    return when.in_timezone("UTC")


@app.command("prune")
def prune(
    older_than: Annotated[Optional[str], typer.Option(
        "--older-than", metavar="DURATION", show_default=False,
        help="Delete finished runs that started longer ago than this: 30d, 12h, 90m.")] = None,
    flow: Annotated[Optional[str], typer.Option(
        "--flow", metavar="NAME", help="Only runs of this flow.")] = None,
    state: Annotated[Optional[str], typer.Option(
        "--state", metavar="STATE", help="Only runs in this state (any case).")] = None,
    keep: Annotated[Optional[int], typer.Option(
        "--keep", metavar="N", min=0, help="Keep the N newest runs of each flow.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs that would be deleted; delete nothing.")] = False,
    yes: Yes = False,
    db: Db = None,
) -> None:
    """Delete finished runs (runs under way are always kept).

    Give --older-than, --keep or both. On a terminal, deleting more than one
    run asks first.

    Example: cairnflow runs prune --older-than 30d --flow etl --keep 10 --dry-run
    """
    if older_than is None and keep is None:
        raise UsageError("say which runs to prune: --older-than DURATION, --keep N, or both")
    cutoff = None if older_than is None else pendulum.now("UTC") - parse_duration(older_than)
    wanted = None if state is None else state_name(state)
    if not database_exists(db):
        doomed: list[FlowRunInfo] = []  # nothing recorded yet: do not create a database
    else:
        with reading(db) as store:
            doomed = queries.prune_candidates(store, cutoff, flow, wanted, keep)
    which = f" started before {output.local_time(cutoff)}" if cutoff is not None else ""
    plural = "" if len(doomed) == 1 else "s"
    if dry_run:
        if doomed:
            _show_runs(doomed)
        output.echo(f"Would remove {len(doomed)} finished run{plural}{which} (dry run: "
                    "nothing was deleted).")
        return
    _confirm(doomed, yes)
    removed = 0
    if doomed:
        with writing(db) as store:
            removed = store.delete_runs([r.id for r in doomed])
    output.echo(f"Removed {removed} finished run{'' if removed == 1 else 's'}{which}.")
