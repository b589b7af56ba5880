"""What the server reads, in the CLI's ``--json`` shapes: a thin seam over the query API.

Every page and every JSON route reads through these functions, so the server
shows exactly what ``cairnflow runs ... --json`` prints.
"""

from __future__ import annotations

from typing import Any

from cairnflow import states as state_classes
from cairnflow.cli import output
from cairnflow.cli.runs import presented_tasks
from cairnflow.statestore.base import FlowRunInfo, StateStore, TaskRunInfo

__all__ = [
    "STATE_NAMES", "run_json", "run_detail", "history_json", "logs_json", "list_runs",
    "presented_tasks", "task_json", "iso",
]

STATE_NAMES = tuple(n for n in state_classes.__all__ if n[0].isupper() and n != "State")

iso = output.iso
run_json = output.run_json
task_json = output.task_json


def list_runs(store: StateStore, flow: str | None = None, state: str | None = None,
              limit: int | None = None) -> list[FlowRunInfo]:
    """Runs newest first (as ``runs ls``)."""
    return store.list_runs(flow_name=flow, state=state, limit=limit)


def run_detail(store: StateStore, ref: str) -> tuple[FlowRunInfo, list[TaskRunInfo]]:
    """A run (by id, prefix or ``last``) and its task runs as people see them."""
    info = store.get_flow_run(store.resolve_run_id(ref))
    return info, presented_tasks(info, store.get_task_runs(info.id))


def run_detail_json(info: FlowRunInfo, tasks: list[TaskRunInfo]) -> dict[str, Any]:
    """``runs show --json``."""
    return output.run_detail_json(info, tasks)


def history_json(store: StateStore, run_id: str, task: str | None = None) -> list[dict]:
    """``runs history --json``."""
    return [output.transition_json(t) for t in store.get_history(run_id, task)]


def logs_json(store: StateStore, run_id: str, task: str | None = None) -> list[dict]:
    """``runs logs --json``."""
    return [output.log_json(e) for e in store.get_logs(run_id, task)]
