"""Starting and resuming flow runs: what ``flow.run()``, ``flow.resume()`` and the
CLI call. It prepares a run (parameters, store, the run record, prior states)
and hands it to ``FlowRunner``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cairnflow._digest import sha256_hex
from cairnflow.core.flow import Flow
from cairnflow.exceptions import (
    FlowLoadError, MissingParameterError, UnknownRunError, UnresumableRunError,
)
from cairnflow.runner import logs
from cairnflow.runner.executors import Executor, LocalExecutor
from cairnflow.runner.flow_runner import FlowRun, FlowRunner, long_lived_heap_frozen
from cairnflow.runner.loading import (
    ScriptRun, _script_run, is_loading, load_flow_from_file, script_run, skip_run,
)
from cairnflow.states import State, Success
from cairnflow.statestore import serialize
from cairnflow.states import INTERRUPTIBLE
from cairnflow.statestore.base import (
    FlowRunRecord, StateStore, Transition, check_claim, host_name, process_start_time,
)
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

if TYPE_CHECKING:
    from cairnflow.statestore.read_records import ResumeData

__all__ = ["run_flow", "resume_flow", "resume_run", "flow_hash", "load_recorded_flow"]

log = logging.getLogger("cairnflow.flow_runner")

Listener = Callable[[Transition], None]


def run_flow(flow: Flow, parameters: dict[str, Any] | None = None,
             executor: Executor | None = None, store: StateStore | str | None = None,
             run_on_schedule: bool | None = None, on_transition: Listener | None = None,
             context: dict[str, Any] | None = None, task_states: dict | None = None,
             **kwargs: Any) -> State | None:
    """Run ``flow`` durably (see ``Flow.run``)."""
    if is_loading() or _in_spawned_bootstrap():
        skip_run(flow)
        warnings.warn("flow.run() was called while the flow file was being loaded; "
                      "it is skipped (guard it with `if __name__ == '__main__':`).", stacklevel=3)
        return None
    values = _collect_parameters(flow, parameters, kwargs)
    script = script_run()
    if script is not None:  # `cairnflow run FILE` lends its store, executor and view
        return _run_in_script(script, flow, values, executor, context, task_states)
    with _open_store(store) as opened:
        if flow.schedule is not None and run_on_schedule is not False:
            return _run_on_schedule(flow, values, executor, opened, on_transition, context,
                                    task_states)
        return _start(flow, values, executor, opened, on_transition, context,
                      task_states=task_states)


def _run_in_script(script: ScriptRun, flow: Flow, values: dict[str, Any],
                   executor: Executor | None, context: dict[str, Any] | None,
                   task_states: dict | None) -> State:
    """One ``flow.run()`` of a file that ``cairnflow run`` executes: it runs once,
    now, with the command line's options (its ``--param`` values win)."""
    def start(options: dict[str, Any]) -> State:
        token = _script_run.set(None)  # a flow run inside a task is a run of its own
        try:
            return run_flow(flow, parameters={**values, **options.get("parameters", {})},
                            executor=options.get("executor") or executor,
                            store=options.get("store"),
                            run_on_schedule=options.get("run_on_schedule", False),
                            on_transition=options.get("on_transition"), context=context,
                            task_states=task_states)
        finally:
            _script_run.reset(token)

    state = script.wrap(flow, start)
    script.runs.append(state)
    return state


def _start(flow: Flow, parameters: dict[str, Any], executor: Executor | None,
           store: StateStore, on_transition: Listener | None, context: dict[str, Any] | None,
           scheduled_start_time: Any = None, task_states: dict | None = None) -> State:
    with long_lived_heap_frozen():
        parameters = _with_defaults(flow, parameters)
        record = _new_record(flow, parameters)
        run = FlowRun(flow, store, executor or flow.executor or LocalExecutor(), record,
                      parameters, None, on_transition, context, scheduled_start_time)
        run.given_states = dict(task_states or {})
        return FlowRunner(run).execute()


def _run_on_schedule(flow: Flow, parameters: dict[str, Any], executor: Executor | None,
                     store: StateStore, on_transition: Listener | None,
                     context: dict[str, Any] | None,
                     task_states: dict | None = None) -> State | None:
    """Sleep until each scheduled time and run; return the last state when the
    schedule has no more times (none at all is Prefect 1's ``ValueError``)."""
    state = None
    after = None
    while True:
        events = flow.schedule.next(1, after=after, return_events=True)
        if not events:
            if state is None:
                raise ValueError("Flow has no more scheduled runs.")
            return state
        event = events[0]
        delay = (event.start_time - pendulum.now("UTC")).total_seconds()
        if delay > 0:
            log.info("Waiting for the next scheduled run of %r at %s", flow.name,
                     event.start_time)
            time.sleep(delay)
        values = {**(event.parameter_defaults or {}), **parameters}
        state = _start(flow, values, executor, store, on_transition, context,
                       scheduled_start_time=event.start_time, task_states=task_states)
        after = event.start_time


def resume_flow(flow: Flow, run_id: str | None = None, executor: Executor | None = None,
                store: StateStore | str | None = None,
                on_transition: Listener | None = None) -> State:
    """Resume a run of ``flow`` with this flow's code (see ``Flow.resume``)."""
    with _open_store(store) as opened:
        if run_id is None:
            run_id = _latest_unfinished(opened, flow.name)
        else:
            run_id = opened.resolve_run_id(run_id)
        return _resume(opened, run_id, flow, executor, on_transition)


def resume_run(run_id: str, store: StateStore | str | None = None,
               executor: Executor | None = None,
               on_transition: Listener | None = None) -> State:
    """Resume run ``run_id`` with its flow reloaded from its recorded source.

    The source file is executed afresh, so a bug fixed since the failure is
    picked up; where the file is gone, the copy of the flow saved at the first
    run is used.
    """
    with _open_store(store) as opened:
        return _resume(opened, opened.resolve_run_id(run_id), None, executor, on_transition)


def _resume(store: StateStore, run_id: str, flow: Flow | None, executor: Executor | None,
            on_transition: Listener | None) -> State:
    info = store.get_flow_run(run_id)
    # The store checks this again when the attempt starts; here it fails fast.
    check_claim(run_id, info.attempt + 1, info.attempt, info.stored_state, info.pid, info.host,
                info.updated_at, info.process_start)
    if info.stored_state == "Success":
        state = Success(f"Run {run_id} already succeeded; there is nothing to resume.")
        state.context["flow_run_id"] = run_id
        return state
    data = store.load_resume_data(run_id)
    if flow is None:
        flow = load_recorded_flow(data)
    elif flow.name != data.run.flow_name:
        raise FlowLoadError(f"run {run_id} is a run of flow {data.run.flow_name!r}, "
                            f"not of {flow.name!r}")
    crashed = _crash_transitions(data, info.pid, info.host) if info.state == "Crashed" else []
    notes = _changes_since(flow, data)
    parameters = saved_parameters(data)
    _load_reused_results(data)  # a damaged result refuses the resume before it starts
    record = _new_record(flow, parameters, run_id=run_id, attempt=data.run.attempt + 1)
    run = FlowRun(flow, store, executor or flow.executor or LocalExecutor(), record,
                  parameters, data, on_transition, None, None, crashed)
    with long_lived_heap_frozen():
        return FlowRunner(run, notes).execute()


def _load_reused_results(data: ResumeData) -> None:
    """Read, once, the results of the task runs the resume will reuse (and only those)."""
    from cairnflow.runner.task_runner import is_reusable

    for key, info in data.task_runs.items():
        if info.has_result and is_reusable(info):
            data.results[key]


def _latest_unfinished(store: StateStore, flow_name: str) -> str:
    for info in store.list_runs(flow_name=flow_name):
        if info.stored_state != "Success":
            return info.id
    raise UnknownRunError(f"flow {flow_name!r} has no run that did not succeed; "
                          "there is nothing to resume")


def load_recorded_flow(data: ResumeData) -> Flow:
    """The run's flow: its source file executed afresh, else the copy saved at its
    first run; ``FlowLoadError`` when neither is available."""
    run = data.run
    if run.source_file and os.path.isfile(run.source_file):
        return load_flow_from_file(run.source_file, run.source_variable)
    if run.flow_blob is not None:
        log.warning("The source of run %s (%s) is gone; resuming with the copy of the flow "
                    "saved at its first run.", run.id, run.source_file or "unknown file")
        return serialize.load(run.flow_blob, "the saved flow")
    raise FlowLoadError(f"run {run.id}: its source ({run.source_file or 'unknown'}) is gone "
                        "and no copy of the flow was saved; resume it from Python with "
                        "flow.resume(run_id)")


def _crash_transitions(data: ResumeData, pid: int, host: str) -> list[Transition]:
    """What closes the dead attempt's history: its running task runs and its flow run
    Crashed (committed with the new attempt's start, never on their own)."""
    if host == host_name():
        message = f"The process running this (pid {pid} on {host}) died."
    else:
        message = (f"The process running this (pid {pid} on {host}) stopped sending "
                   "heartbeats; it is taken as dead.")
    now = datetime.now(timezone.utc)
    attempt = data.run.attempt
    crashed = [Transition(data.run.id, attempt, info.task_slug, info.task_name, info.map_index,
                          "Crashed", message, now)
               for info in data.task_runs.values() if info.state in INTERRUPTIBLE]
    crashed.append(Transition(data.run.id, attempt, None, data.run.flow_name, None, "Crashed",
                              message, now))
    return crashed


def _changes_since(flow: Flow, data: ResumeData) -> list[tuple[int, str]]:
    """How the flow being resumed differs from the run's record, in words.

    Only slugs are compared: a task that is in the flow but has no record was
    either added since or not reached before the run stopped; both will run.
    """
    if data.run.flow_hash == flow_hash(flow):
        return []
    before = {slug for slug, _ in data.task_runs}
    now = set(flow.slugs.values())
    notes = [(logging.INFO, "The flow's structure changed since this run started.")]
    notes += [(logging.WARNING, f"Task {slug!r} is no longer in the flow; its history is "
                                "kept and it will not run.")
              for slug in sorted(before - now)]
    unrecorded = sorted(now - before)
    if unrecorded:
        notes.append((logging.INFO, f"Tasks with no record in this run (new, or not reached "
                                    f"before it stopped) will run: {', '.join(unrecorded)}"))
    return notes


# -- the run record -------------------------------------------------------------------


def _new_record(flow: Flow, parameters: dict[str, Any], run_id: str | None = None,
                attempt: int = 1) -> FlowRunRecord:
    return FlowRunRecord(
        id=run_id or str(uuid.uuid4()), flow_name=flow.name, flow_hash=flow_hash(flow),
        parameters=_json_safe(parameters), parameters_blob=_dump_parameters(parameters),
        source_file=flow.source, source_variable=_source_variable(flow),
        flow_blob=_dump_or_none(flow, "flow") if attempt == 1 else None, attempt=attempt,
        pid=os.getpid(), host=host_name(), started_at=datetime.now(timezone.utc),
        process_start=process_start_time(os.getpid()))


def flow_hash(flow: Flow) -> str:
    """A hash of the flow's structure: its slugs and edges (not its code)."""
    order = flow.sorted_tasks()
    # Kept with the order it was computed from: any change to the graph (tasks,
    # slugs, edges) makes the flow compute a new order, and so a new hash.
    cached = flow.__dict__.get("_hash_of_order")
    if cached is not None and cached[0] is order:
        return cached[1]
    slugs, upstream_edges = flow.slugs, flow.upstream_edges
    parts = []  # hashed as one text: the same digest as hashing each part in turn
    for task in order:
        parts.append(slugs[task])
        for up, _, key, mapped, flattened in upstream_edges(task):
            parts.append(f"<{slugs[up]}:{key}:{mapped}:{flattened}")
    value = sha256_hex("".join(parts).encode())[:16]
    flow.__dict__["_hash_of_order"] = (order, value)
    return value


def _source_variable(flow: Flow) -> str | None:
    if getattr(flow, "source_variable", None) or flow.source is None:
        return getattr(flow, "source_variable", None)
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == flow.source:
            for name, value in list(vars(module).items()):
                if value is flow:
                    return name
    return None


class UnsavedParameter:
    """Stands, in a run's saved parameters, for a value that could not be pickled."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason


def _dump_parameters(parameters: dict[str, Any]) -> serialize.SerializedResult:
    """The parameters serialized; a value that cannot be pickled is saved as an
    ``UnsavedParameter``, so that resume refuses rather than pass another value."""
    try:
        return serialize.dump(parameters)
    except Exception:
        pass
    saved: dict[str, Any] = {}
    for name, value in parameters.items():
        try:
            serialize.dump(value)
            saved[name] = value
        except Exception as exc:
            log.warning("The parameter %r of this run cannot be pickled (%r); this run "
                        "cannot be resumed: resume will refuse it rather than pass another "
                        "value.", name, exc)
            saved[name] = UnsavedParameter(name, f"{type(exc).__name__}: {exc}")
    return serialize.dump(saved)


def saved_parameters(data: ResumeData) -> dict[str, Any]:
    """The run's parameters as it ran with them, for resume.

    Raises ``UnresumableRunError`` naming a parameter that could not be saved.
    """
    run = data.run
    if run.parameters_blob is None:
        if not run.parameters:
            return {}
        raise UnresumableRunError(
            f"run {run.id} cannot be resumed: its parameters could not be saved when it ran "
            f"({', '.join(sorted(run.parameters))}); start a new run instead")
    values = serialize.load(run.parameters_blob, "the run's parameters")
    unsaved = [v for v in values.values() if isinstance(v, UnsavedParameter)]
    if unsaved:
        first = unsaved[0]
        raise UnresumableRunError(
            f"run {run.id} cannot be resumed: its parameter {first.name!r} could not be "
            f"saved when it ran ({first.reason}); start a new run instead")
    return values


def _dump_or_none(value: Any, what: str) -> serialize.SerializedResult | None:
    """``value`` serialized, or None with a warning: resume then needs the source file."""
    try:
        return serialize.dump(value)
    except Exception as exc:
        log.warning("The %s of this run cannot be pickled (%r); resuming it will need its "
                    "source file.", what, exc)
        return None


def _json_safe(parameters: dict[str, Any]) -> dict[str, Any]:
    return serialize.json_safe(parameters)


def _collect_parameters(flow: Flow, parameters: dict[str, Any] | None,
                        kwargs: dict[str, Any]) -> dict[str, Any]:
    """Parameter values from ``parameters`` and matching keyword arguments, checked
    before anything runs."""
    declared = {p.name: p for p in flow.parameters()}
    values = dict(parameters or {})
    unknown_kwargs = [k for k in kwargs if k not in declared]
    if unknown_kwargs:
        raise TypeError(f"Flow.run() got unexpected keyword arguments: {unknown_kwargs} "
                        f"(the flow's parameters are {sorted(declared)})")
    values.update(kwargs)
    unexpected = sorted(set(values) - set(declared))
    if unexpected:
        raise ValueError(f"Flow.run received the following unexpected parameters: "
                         f"{', '.join(unexpected)}")
    missing = sorted(name for name, p in declared.items() if p.required and name not in values)
    if missing:
        raise MissingParameterError(f"Flow.run did not receive the following required "
                                    f"parameters: {', '.join(missing)}")
    return values


def _with_defaults(flow: Flow, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's value for one run. Defaults are recorded with the run, so a
    resume uses the values it ran with even if the code's defaults changed."""
    return {**{p.name: p.default for p in flow.parameters()}, **values}


class _open_store:  # noqa: N801 - used as a context manager
    """A ``StateStore`` from an instance (left open) or a URL/None (opened and closed)."""

    def __init__(self, store: StateStore | str | None):
        self.given = store
        self.owned: StateStore | None = None

    def __enter__(self) -> StateStore:
        logs.install()
        if isinstance(self.given, StateStore):
            return self.given
        from cairnflow.statestore import open_store

        self.owned = open_store(self.given)
        return self.owned

    def __exit__(self, *exc: Any) -> None:
        if self.owned is not None:
            self.owned.close()


def _in_spawned_bootstrap() -> bool:
    """A worker process of the processes executor re-imports the main script as
    ``__mp_main__``; a bare ``flow.run()`` in it must not run the flow again."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:  # a spawned worker has imported it: this is no worker
        return False
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))

