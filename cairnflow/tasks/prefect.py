"""Flow of flows: tasks that run registered flows through the agent (Prefect 1's
``prefect.tasks.prefect``).

``create_flow_run`` creates a run of a registered flow (``Scheduled``: an agent
whose labels match starts it), ``wait_for_flow_run`` waits for it to end,
``get_task_run_result`` loads one of its task's checkpointed results, and
``StartFlowRun`` does the first two in one task. They use the store named by
``CAIRNFLOW_DB_URL`` (which an agent sets for the runs it starts), else the
default store.

Example:
    >>> from cairnflow import Flow
    >>> from cairnflow.tasks.prefect import create_flow_run, wait_for_flow_run
    >>> with Flow("parent") as parent:
    ...     child = create_flow_run(flow_name="child", parameters={"n": 3})
    ...     done = wait_for_flow_run(child, raise_final_state=True)
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from cairnflow import signals
from cairnflow.core.task import Task, task

__all__ = ["create_flow_run", "wait_for_flow_run", "get_task_run_result", "StartFlowRun",
           "FlowRunView"]

POLL_SECONDS = 0.5


def _store() -> Any:
    from cairnflow.statestore import open_store

    return open_store()


class FlowRunView:
    """What ``wait_for_flow_run`` returns: a finished run's id, state and message."""

    def __init__(self, flow_run_id: str, state: str, message: str | None, flow_name: str):
        self.flow_run_id = flow_run_id
        self.state = state
        self.message = message
        self.flow_name = flow_name

    def __repr__(self) -> str:
        return f"<FlowRunView {self.flow_run_id} {self.state}>"


def _create(flow_id: str | None, flow_name: str | None, parameters: dict | None,
            labels: list[str] | None, scheduled_start_time: datetime | None) -> str:
    from cairnflow.statestore import actions

    ref = flow_id or flow_name
    if not ref:
        raise ValueError("create_flow_run needs flow_id or flow_name")
    store = _store()
    try:
        return actions.create_flow_run(store, ref, parameters or {}, labels=labels,
                                       scheduled_start=scheduled_start_time)
    finally:
        store.close()


def _wait(flow_run_id: str, max_duration: timedelta | None) -> FlowRunView:
    from cairnflow import states

    deadline = None if max_duration is None else time.monotonic() + max_duration.total_seconds()
    while True:
        store = _store()
        try:
            info = store.get_flow_run(flow_run_id)
        finally:
            store.close()
        if states.is_finished(info.state):
            return FlowRunView(info.id, info.state, info.message, info.flow_name)
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(f"flow run {flow_run_id} did not finish within {max_duration}")
        time.sleep(POLL_SECONDS)


@task
def create_flow_run(flow_id: str | None = None, flow_name: str | None = None,
                    project_name: str = "", parameters: dict | None = None,
                    labels: list[str] | None = None, run_name: str | None = None,
                    scheduled_start_time: datetime | None = None) -> str:
    """Create a run of a registered flow (by version id, or by name: its latest version)
    and return its id; an agent with the flow's labels starts it."""
    return _create(flow_id, flow_name, parameters, labels, scheduled_start_time)


@task
def wait_for_flow_run(flow_run_id: str, stream_states: bool = True, stream_logs: bool = False,
                      raise_final_state: bool = False,
                      max_duration: timedelta = timedelta(hours=12)) -> FlowRunView:
    """Wait for a flow run to finish; with ``raise_final_state``, end this task in the
    child's state (Failed if it failed)."""
    view = _wait(flow_run_id, max_duration)
    if raise_final_state:
        _raise_state(view)
    return view


@task
def get_task_run_result(flow_run_id: str, task_slug: str, map_index: int = -1,
                        poll_time: int = 5) -> Any:
    """The checkpointed result of task ``task_slug`` of a flow run, once the run ended."""
    from cairnflow.statestore import queries

    _wait(flow_run_id, None)
    store = _store()
    try:
        return queries.result_value(store, flow_run_id, task_slug,
                                    None if map_index == -1 else map_index)
    finally:
        store.close()


def _raise_state(view: FlowRunView) -> None:
    from cairnflow import states

    message = f"{view.flow_name} finished in state {view.state}: {view.message or ''}".strip()
    if states.is_successful(view.state):
        return
    raise signals.FAIL(message)


class StartFlowRun(Task):
    """Start a run of a registered flow; with ``wait=True``, wait for it and end in its state.

    Args:
        flow_name: the registered flow's name (its latest version runs).
        project_name: kept for Prefect 1 compatibility.
        parameters: the run's parameters (merged with those given to ``run``).
        wait: wait for the run to end; a failed child fails this task.
        **kwargs: passed to ``Task``.
    """

    def __init__(self, flow_name: str | None = None, project_name: str | None = None,
                 parameters: dict | None = None, wait: bool = False,
                 new_flow_context: dict | None = None, run_name: str | None = None,
                 scheduled_start_time: datetime | None = None, **kwargs: Any):
        self.flow_name = flow_name
        self.project_name = project_name
        self.parameters = parameters
        self.wait = wait
        self.scheduled_start_time = scheduled_start_time
        super().__init__(**kwargs)

    def run(self, flow_name: str | None = None, parameters: dict | None = None,
            idempotency_key: str | None = None, scheduled_start_time: datetime | None = None,
            **kwargs: Any) -> str:
        """Create the run; return its id (after it ended, with ``wait``)."""
        name = flow_name or self.flow_name
        if not name:
            raise ValueError("StartFlowRun needs a flow_name")
        values = {**(self.parameters or {}), **(parameters or {})}
        run_id = _create(None, name, values, None,
                         scheduled_start_time or self.scheduled_start_time)
        if self.wait:
            _raise_state(_wait(run_id, None))
        return run_id
