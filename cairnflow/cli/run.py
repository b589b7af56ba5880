"""``cairnflow run`` and ``cairnflow resume``: run a flow durably, with progress.

Both end the same way: the run id, its final state, the task runs that
failed, and the commands to resume it and to see its details; exit status 0
when the flow run succeeded, 1 otherwise.
"""

from __future__ import annotations

import json
import warnings
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

from cairnflow.cli import output
from cairnflow.cli.errors import FAILED, INTERRUPTED, OK, UsageError, fail
from cairnflow.cli.interrupts import stop_on_sigint
from cairnflow.cli.options import Db, RunRef, reading
from cairnflow.cli.output import command_line
from cairnflow.exceptions import MissingParameterError, RunStillAliveError

if TYPE_CHECKING:
    from cairnflow.cli.progress import Tracker
    from cairnflow.statestore.base import TaskRunInfo
    from cairnflow.core.flow import Flow
    from cairnflow.runner.executors import Executor
    from cairnflow.states import State
    from cairnflow.statestore.base import FlowRunInfo, StateStore

# The engine's modules are imported when a flow runs, not when `cairnflow runs ls` starts.

__all__ = ["run_command", "resume_command", "parse_params", "ExecutorName"]

FAILURES_SHOWN = 10


class ExecutorName(str, Enum):
    """Where tasks run: in order, threads, processes, or Dask."""

    local = "local"
    threads = "threads"
    processes = "processes"
    dask = "dask"


Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show the tasks' log records (INFO and up) as they come; the "
                            "same as --log-level INFO.")]

LogLevel = Annotated[Optional[str], typer.Option(
    "--log-level", metavar="LEVEL", show_default=False,
    help="Show the tasks' log records of LEVEL and up as they come: DEBUG, INFO, WARNING, "
         "ERROR (default: $CAIRNFLOW_LOG_LEVEL, else WARNING). All records at INFO and up "
         "are stored either way: `cairnflow runs logs`.")]

ExecutorOption = Annotated[Optional[ExecutorName], typer.Option(
    "--executor", case_sensitive=False, show_default=False,
    help="Where tasks run: local (one at a time), threads, processes or dask "
         "(default: the flow's own executor, else local).")]


DaskAddressOption = Annotated[Optional[str], typer.Option(
    "--dask-address", metavar="tcp://HOST:PORT", envvar="CAIRNFLOW_DASK_ADDRESS",
    show_default=False,
    help="Run task code on this existing Dask cluster (implies --executor dask; "
         "$CAIRNFLOW_DASK_ADDRESS is used with --executor dask).")]


def run_command(
    flow_ref: Annotated[str, typer.Argument(
        metavar="FILE[:VARIABLE]", show_default=False,
        help="The flow file, and the flow's variable name if the file defines several.")],
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", metavar="KEY=VALUE", show_default=False,
        help="A parameter value (repeatable); VALUE is JSON-decoded when it is valid "
             "JSON, else taken as a string.")] = None,
    executor: ExecutorOption = None,
    dask_address: DaskAddressOption = None,
    schedule: Annotated[bool, typer.Option(
        "--schedule", help="Run on the flow's schedule, as flow.run() does: wait for each "
                           "scheduled time, run, repeat until the schedule ends (Ctrl-C "
                           "stops). Without it a flow with a schedule runs once, now.")] = False,
    verbose: Verbose = False,
    log_level: LogLevel = None,
    db: Db = None,
) -> None:
    """Run a flow durably, with live progress.

    Every transition is recorded, so a run that fails can be resumed with
    `cairnflow resume RUN_ID`.

    Example: cairnflow run etl.py:flow --param day=2024-05-01 --param limit=10
    """
    from cairnflow.cli.progress import Tracker, make_view
    from cairnflow.runner.loading import ScriptRun, split_flow_ref

    parameters = parse_params(param or [])
    level = log_level_number(verbose, log_level)
    chosen = make_executor(executor, dask_address)
    path, variable = split_flow_ref(flow_ref)
    trackers: list[Tracker] = []
    script = ScriptRun(_script_wrap(parameters, chosen, db, trackers, level))
    flow = _load(path, variable, script)  # the file's own flow.run() calls run here
    if flow is None:
        raise typer.Exit(_report_script(script.runs, trackers, db))
    check_params(flow, parameters)
    if schedule and flow.schedule is None:
        raise UsageError(f"flow {flow.name!r} has no schedule: leave out --schedule to run "
                         "it once")
    view = make_view(flow.name)
    if schedule:
        raise typer.Exit(_run_on_schedule(flow, parameters, chosen, view, level, db))
    if flow.schedule is not None:
        view.say(f"Flow {flow.name!r} has a schedule; running it once now "
                 "(--schedule runs it on its schedule).")
    tracker = new_tracker(flow, view)
    state = _follow(view, tracker, db, lambda: flow.run(
        parameters=parameters, executor=chosen, store=db, on_transition=tracker,
        run_on_schedule=False), level)
    raise typer.Exit(report(state, tracker, db))


def resume_command(run_id: RunRef, executor: ExecutorOption = None,
                   dask_address: DaskAddressOption = None, verbose: Verbose = False,
                   log_level: LogLevel = None, db: Db = None) -> None:
    """Resume a run that did not succeed, with its flow reloaded from its file.

    Task runs that succeeded are not run again: their results come from the
    store. A bug fixed in the file since the failure is picked up.

    Example: cairnflow resume last
    """
    from cairnflow.cli.progress import make_view

    level = log_level_number(verbose, log_level)
    chosen = make_executor(executor, dask_address)
    from cairnflow.statestore import queries

    with reading(db) as store:
        info = queries.get_run(store, run_id)
        verdict = queries.resume_verdict(info)
        if verdict.already_succeeded:
            output.echo(verdict.reason or "")
            output.echo(f"Details: {command_line('runs', 'show', info.id, db=db)}")
            raise typer.Exit(OK)
        if not verdict.ok:
            raise RunStillAliveError(verdict.reason)
        task_runs = store.get_task_runs(info.id)
        reused = queries.reused_task_runs(task_runs)
        flow = _recorded_flow(store, info)
    view = make_view(flow.name)
    tracker = new_tracker(flow, view, reused=reused, announce=False,
                          children=_children(task_runs))
    view.say(f"Resuming run {info.id} of flow {flow.name!r} (attempt {info.attempt + 1}); "
             f"{len(reused)} task runs done before are not run again.")
    state = _follow(view, tracker, db, lambda: flow.resume(
        run_id=info.id, executor=chosen, store=db, on_transition=tracker), level)
    raise typer.Exit(report(state, tracker, db))


def _children(task_runs: list[TaskRunInfo]) -> dict[str, int]:
    """How many mapped children each mapped task of a stored run has."""
    counts: dict[str, int] = {}
    for t in task_runs:
        if t.map_index is not None:
            counts[t.task_slug] = counts.get(t.task_slug, 0) + 1
    return counts


def new_tracker(flow: Flow, view: Any, **kwargs: Any) -> Tracker:
    """A progress tracker for one run of ``flow``."""
    from cairnflow.cli.progress import Tracker, retry_policies

    return Tracker(view, tasks=len(flow.tasks), retries=retry_policies(flow), **kwargs)


# -- before the run ---------------------------------------------------------------------


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level_number(verbose: bool, name: str | None) -> int:
    """The level of task logs shown live: ``--log-level``, ``-v`` (INFO), else
    ``$CAIRNFLOW_LOG_LEVEL``, else WARNING."""
    import logging
    import os

    if name is None:
        name = "INFO" if verbose else os.environ.get("CAIRNFLOW_LOG_LEVEL") or "WARNING"
        source = "CAIRNFLOW_LOG_LEVEL"
    else:
        source = "--log-level"
    if name.upper() not in LEVELS:
        raise UsageError(f"{source} {name!r} is not a log level: use one of "
                         f"{', '.join(LEVELS)}")
    return getattr(logging, name.upper())


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["n=3", "name=Marvin"]`` -> ``{"n": 3, "name": "Marvin"}``.

    Each item splits at its first ``=``; the value is JSON-decoded when it is
    valid JSON, else kept as a string.
    """
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {item!r} is not KEY=VALUE (for example --param n=3)")
        try:
            values[key] = json.loads(raw, parse_constant=_not_json)
        except ValueError:  # not JSON (NaN and Infinity are not): the text itself
            values[key] = raw
    return values


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def check_params(flow: Flow, values: dict[str, Any], missing_too: bool = True) -> None:
    """Refuse unknown (and missing) parameters before anything is recorded."""
    declared = {p.name: p for p in flow.parameters()}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        takes = (f"its parameters are {', '.join(sorted(declared))}" if declared
                 else "it takes no parameters")
        raise UsageError(f"flow {flow.name!r} has no parameter {unknown[0]!r} ({takes})")
    missing = sorted(n for n, p in declared.items() if p.required and n not in values)
    if missing and missing_too:
        given = " ".join(f"--param {n}=VALUE" for n in missing)
        raise MissingParameterError(
            f"flow {flow.name!r} needs parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}: add {given}")


def make_executor(name: ExecutorName | None, dask_address: str | None = None) -> Executor | None:
    """The executor named on the command line; None keeps the flow's own.

    ``--dask-address`` on the command line means Dask; taken from the environment
    it only tells ``--executor dask`` which cluster to use.
    """
    from cairnflow.runner.executors import LocalDaskExecutor, LocalExecutor

    import os

    # the same value as the environment's counts as the environment's
    if dask_address and dask_address != os.environ.get("CAIRNFLOW_DASK_ADDRESS"):
        if name is None:
            name = ExecutorName.dask
        elif name is not ExecutorName.dask:
            raise UsageError(f"--dask-address needs --executor dask, not --executor "
                             f"{name.value}")
    if name is None:
        return None
    if name is ExecutorName.local:
        return LocalExecutor()
    if name is ExecutorName.dask:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            fail('the dask executor needs Dask: pip install "cairnflow[dask]"', FAILED)
        from cairnflow.runner.executors import DaskExecutor

        return DaskExecutor(address=dask_address or None)
    return LocalDaskExecutor(scheduler=name.value)


def _load(path: str, variable: str | None, script: Any) -> Flow | None:
    """The file's flow to run; None when the file ran its own (``script.runs``)."""
    from cairnflow.runner.loading import run_flow_file

    return run_flow_file(path, variable, script)


def _script_wrap(parameters: dict[str, Any], chosen: Executor | None, db: str | None,
                 trackers: list[Tracker], level: int) -> Any:
    """How each ``flow.run()`` of the file runs: with this command's options and view."""
    from cairnflow.cli.progress import make_view
    from cairnflow.runner.loading import script_run

    def wrap(flow: Flow, start: Any) -> State:
        script = script_run()
        try:
            check_params(flow, parameters, missing_too=False)
            view = make_view(flow.name)
            tracker = new_tracker(flow, view)
            trackers.append(tracker)
            return _follow(view, tracker, db, lambda: start({
                "parameters": parameters, "executor": chosen, "store": db,
                "on_transition": tracker}), level)
        except BaseException as exc:  # ours (bad --param, Ctrl-C): not the file's error
            if script is not None:
                script.error = exc
            raise

    return wrap


def _report_script(states: list[State], trackers: list[Tracker], db: str | None) -> int:
    """Report each run the file made; 0 only when every one succeeded."""
    statuses = [report(state, tracker, db) for state, tracker in zip(states, trackers)]
    return FAILED if any(status != OK for status in statuses) else OK


def _recorded_flow(store: StateStore, info: FlowRunInfo) -> Flow:
    """The run's flow: its source file afresh, else the copy saved at its first run."""
    from cairnflow.runner.api import load_recorded_flow, saved_parameters

    data = store.load_resume_data(info.id)  # its results are loaded only if used
    saved_parameters(data)  # refuse before anything is said or loaded
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flow\.run\(\) was called while")
        return load_recorded_flow(data)


# -- during and after ----------------------------------------------------------------------


def _run_on_schedule(flow: Flow, parameters: dict[str, Any], executor: Executor | None,
                     view: Any, level: int, db: str | None) -> int:
    """Run ``flow`` at each time of its schedule; the exit status of its last run."""
    from cairnflow.cli.progress import EachRun

    upcoming = flow.schedule.next(1)
    if not upcoming:
        raise UsageError(f"the schedule of flow {flow.name!r} has no more runs")
    runs = EachRun(lambda: new_tracker(flow, view),
                   lambda tracker, end: _between_runs(flow, view, end))
    view.say(f"Running flow {flow.name!r} on its schedule; the first run is at "
             f"{output.local_time(upcoming[0])} (Ctrl-C stops).")

    def start() -> State | None:
        try:
            return flow.run(parameters=parameters, executor=executor, store=db,
                            on_transition=runs, run_on_schedule=True)
        except ValueError:  # Prefect 1's "no more scheduled runs", if the time passed
            if runs.tracker is None:
                raise UsageError(f"the schedule of flow {flow.name!r} has no more runs")
            raise

    state = _follow(view, runs, db, start, level)
    if runs.tracker is None:
        fail(f"the schedule of flow {flow.name!r} had no more runs")
    return report(state, runs.tracker, db)


def _between_runs(flow: Flow, view: Any, end: Any) -> None:
    """After each scheduled run: how it ended, and when the next one starts."""
    upcoming = flow.schedule.next(1)
    if not upcoming:  # the final report follows
        view.say("The schedule has no more runs.")
        return
    view.say(f"Run {end.flow_run_id}: {end.state}" + (f" - {end.message}" if end.message else ""))
    view.say(f"Next run at {output.local_time(upcoming[0])}.")


def _follow(view: Any, tracker: Any, db: str | None, start: Any, level: int) -> State:
    """Run ``start()`` with the view showing progress; Ctrl-C ends with status 130."""
    from cairnflow.cli.progress import quiet_engine_console

    stop_on_sigint()
    try:
        with view, quiet_engine_console(view, tracker, level):
            return start()
    except KeyboardInterrupt:
        if getattr(tracker, "between_runs", False):
            fail("stopped between scheduled runs", INTERRUPTED)
        if tracker.run_id is None:
            _stop_now("interrupted before the run started")
        _stop_now(_interrupted(tracker.run_id, db))


def _interrupted(run_id: str, db: str | None) -> str:
    """What Ctrl-C left, as the store has it (the run may have ended just before)."""
    try:
        with reading(db) as store:
            state = store.get_flow_run(run_id).stored_state
    except Exception as exc:  # the store is what failed: say so, still exit 130
        return f"interrupted: run {run_id}; its final state could not be read ({exc})"
    said = f"interrupted: run {run_id} was recorded as {state}"
    if state == "Success":
        return said
    return f"{said}; resume it with {command_line('resume', run_id, db=db)}"


def _stop_now(message: str) -> NoReturn:
    """Report an interruption and exit 130 now: task code still running in threads
    (which Python cannot stop) must not keep the process alive; it records nothing."""
    import os
    import sys
    import threading

    stragglers = [t for t in threading.enumerate()
                  if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not stragglers:
        fail(message, INTERRUPTED)
    try:
        fail(message, INTERRUPTED)
    except typer.Exit:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(INTERRUPTED)


def report(state: State | None, tracker: Tracker, db: str | None) -> int:
    """Print how the run ended and what to do next; return the exit status."""
    if state is None:  # flow.run() skips a run only while a flow file is loading
        fail("the flow did not run")
    run_id = state.context.get("flow_run_id") or tracker.run_id or "?"
    color = output.color_enabled()
    output.echo()
    output.echo(f"Run {run_id}: {output.style_state(state.name, color)}"
                + (f" - {state.message}" if state.message else ""))
    failures = tracker.failures()
    if failures:
        output.echo(f"{len(failures)} task run{'s' if len(failures) > 1 else ''} failed:")
        table = output.Table(["slug", "state", "message"], state_column=1, flex=2)
        for label, name, message in failures[:FAILURES_SHOWN]:
            table.add(label, name, message)
        table.print()
        if len(failures) > FAILURES_SHOWN:
            output.echo(f"... and {len(failures) - FAILURES_SHOWN} more")
    if not state.is_successful():
        output.echo(f"Resume it with: {command_line('resume', run_id, db=db)}")
    output.echo(f"Details:        {command_line('runs', 'show', run_id, db=db)}")
    return OK if state.is_successful() else FAILED
