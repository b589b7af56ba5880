"""``cairnflow run`` and ``cairnflow resume``: run a flow durably, with progress.

Both end the same way: the run id, its final state, the task runs that
failed, and the commands to resume it and to see its details; exit status 0
when the flow run succeeded, 1 otherwise.
"""

from __future__ import annotations

import json
import warnings
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cairnflow.cli import output
from cairnflow.cli.errors import FAILED, INTERRUPTED, OK, UsageError, fail
from cairnflow.cli.options import Db, RunRef, reading
from cairnflow.cli.output import command_line
from cairnflow.exceptions import MissingParameterError, RunStillAliveError

if TYPE_CHECKING:
    from cairnflow.cli.progress import Tracker
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
    chosen = make_executor(executor, dask_address)
    path, variable = split_flow_ref(flow_ref)
    trackers: list[Tracker] = []
    script = ScriptRun(_script_wrap(parameters, chosen, db, trackers))
    flow = _load(path, variable, script)  # the file's own flow.run() calls run here
    if flow is None:
        raise typer.Exit(_report_script(script.runs, trackers, db))
    check_params(flow, parameters)
    view = make_view(flow.name)
    tracker = Tracker(view, tasks=len(flow.tasks))
    state = _follow(view, tracker, db, lambda: flow.run(
        parameters=parameters, executor=chosen, store=db, on_transition=tracker,
        run_on_schedule=False))
    raise typer.Exit(report(state, tracker, db))


def resume_command(run_id: RunRef, executor: ExecutorOption = None,
                   dask_address: DaskAddressOption = None, db: Db = None) -> None:
    """Resume a run that did not succeed, with its flow reloaded from its file.

    Task runs that succeeded are not run again: their results come from the
    store. A bug fixed in the file since the failure is picked up.

    Example: cairnflow resume last
    """
    from cairnflow.cli.progress import Tracker, make_view

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
        reused = queries.reused_task_runs(store.get_task_runs(info.id))
        flow = _recorded_flow(store, info)
    view = make_view(flow.name)
    tracker = Tracker(view, tasks=len(flow.tasks), reused=reused, announce=False)
    view.say(f"Resuming run {info.id} of flow {flow.name!r} (attempt {info.attempt + 1}); "
             f"{len(reused)} task runs done before are not run again.")
    state = _follow(view, tracker, db, lambda: flow.resume(
        run_id=info.id, executor=chosen, store=db, on_transition=tracker))
    raise typer.Exit(report(state, tracker, db))


# -- before the run ---------------------------------------------------------------------


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
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


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
                 trackers: list[Tracker]) -> Any:
    """How each ``flow.run()`` of the file runs: with this command's options and view."""
    from cairnflow.cli.progress import Tracker, make_view
    from cairnflow.runner.loading import script_run

    def wrap(flow: Flow, start: Any) -> State:
        script = script_run()
        try:
            check_params(flow, parameters, missing_too=False)
            view = make_view(flow.name)
            tracker = Tracker(view, tasks=len(flow.tasks))
            trackers.append(tracker)
            return _follow(view, tracker, db, lambda: start({
                "parameters": parameters, "executor": chosen, "store": db,
                "on_transition": tracker}))
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
    from cairnflow.runner.api import load_recorded_flow

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flow\.run\(\) was called while")
        return load_recorded_flow(store.load_resume_data(info.id))


# -- during and after ----------------------------------------------------------------------


def _follow(view: Any, tracker: Tracker, db: str | None, start: Any) -> State:
    """Run ``start()`` with the view showing progress; Ctrl-C ends with status 130."""
    from cairnflow.cli.progress import quiet_engine_console

    try:
        with view, quiet_engine_console(view):
            return start()
    except KeyboardInterrupt:
        if tracker.run_id is None:
            fail("interrupted before the run started", INTERRUPTED)
        fail(f"interrupted: run {tracker.run_id} was recorded as Cancelled; resume it with "
             f"{command_line('resume', tracker.run_id, db=db)}", INTERRUPTED)


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
