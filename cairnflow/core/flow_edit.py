"""Editing and saving a flow as a whole: Prefect 1's ``Flow.update``, ``replace``,
``save`` and ``load`` (thin methods on ``Flow`` call these)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow
    from cairnflow.core.task import Task

__all__ = ["update", "replace", "save", "load"]


def update(flow: Flow, other: Flow, merge_parameters: bool, validate: bool | None,
           merge_reference_tasks: bool) -> None:
    """Add ``other``'s tasks, edges and constants to ``flow`` (see ``Flow.update``)."""
    if merge_parameters:
        validate = True
        theirs = {p.name: p for p in other.parameters()}
        for mine in flow.parameters():
            if mine.name in theirs and theirs[mine.name] is not mine:
                replace(flow, mine, theirs[mine.name], validate=False)
    for task in other.sorted_tasks():
        flow.add_task(task)
    for task in other.sorted_tasks():
        for edge in other.upstream_edges(task):
            if edge not in flow._edges:
                flow.add_edge(edge.upstream_task, task, key=edge.key, mapped=edge.mapped,
                              flattened=edge.flattened, validate=validate)
    if merge_reference_tasks:
        flow.set_reference_tasks(flow.reference_tasks() | other.reference_tasks())
    for task, values in other.constants.items():
        flow.constants.setdefault(task, {}).update(values)


def replace(flow: Flow, old: Task, new: Any, validate: bool = True) -> None:
    """Swap ``old`` for ``new`` in ``flow``, edges, constants and references included."""
    from cairnflow.core.collections import as_task

    if old not in flow._tasks:
        raise ValueError(f"Task {old} was not found in Flow {flow}")
    new = as_task(new, flow=flow)
    affected = [e for e in flow._edges if old in (e.upstream_task, e.downstream_task)]
    was_reference = old in flow._reference_tasks
    for edge in affected:
        del flow._edges[edge]
        flow._upstream[edge.downstream_task].remove(edge)
        flow._downstream[edge.upstream_task].remove(edge)
    del flow._tasks[old]
    del flow._by_slug[flow.slugs.pop(old)]
    del flow._upstream[old], flow._downstream[old]
    constants = flow.constants.pop(old, None)
    flow._reference_tasks.discard(old)
    flow._sorted = None
    flow.add_task(new)
    if constants:
        flow.constants.setdefault(new, {}).update(constants)
    for edge in affected:
        flow.add_edge(new if edge.upstream_task is old else edge.upstream_task,
                      new if edge.downstream_task is old else edge.downstream_task,
                      key=edge.key, mapped=edge.mapped, flattened=edge.flattened,
                      validate=False)
    if was_reference:
        flow._reference_tasks.add(new)
    if validate:
        flow.validate()


def _default_path(name: str) -> str:
    home = os.environ.get("CAIRNFLOW_HOME") or os.path.expanduser("~/.cairnflow")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "flow"
    return os.path.join(home, "flows", f"{slug}.prefect")


def save(flow: Flow, fpath: str | None = None) -> str:
    """Cloudpickle ``flow`` to ``fpath``; returns the path written."""
    path = fpath or _default_path(flow.name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(cloudpickle.dumps(flow))
    return path


def load(fpath: str) -> Flow:
    """The flow saved at ``fpath`` (or saved under that flow name by default)."""
    path = fpath if os.path.isabs(fpath) or os.path.exists(fpath) else _default_path(fpath)
    with open(path, "rb") as f:
        return cloudpickle.loads(f.read())
