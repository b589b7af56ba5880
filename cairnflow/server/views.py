"""What the pages draw, computed from plain records: colours, the task tree, the Gantt
timeline and the schematic's layout. No HTML here (the templates do that), no store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from cairnflow import states
from cairnflow.states import (
    Cancelled, Failed, Looped, Paused, Pending, Running, Skipped, Success, state_from_name,
)
from cairnflow.statestore import queries as q
from cairnflow.statestore.base import TaskRunInfo, Transition

__all__ = [
    "state_kind", "is_finished", "TaskGroup", "task_groups", "Timeline", "timelines",
    "Schematic", "schematic", "CHILD_ROWS",
]

TASK_GROUPS = 300
"""At most this many task runs (with their children) are listed (unsuccessful first)."""

CHILD_ROWS = 50
"""At most this many mapped children are listed under their task (unsuccessful first)."""

TIMELINE_ROWS = 300
"""At most this many rows in one attempt's timeline."""

SCHEMATIC_NODES = 400
"""A graph with more tasks than this is not drawn."""

# The first class a state is a kind of gives its colour (a UI concern, kept here).
_KINDS: tuple[tuple[type, str], ...] = (
    (Paused, "paused"), (Pending, "pending"), (Running, "running"), (Skipped, "skipped"),
    (Success, "success"), (Failed, "failed"), (Cancelled, "cancelled"), (Looped, "looped"),
)

_SEVERITY = {"failed": 6, "crashed": 7, "cancelled": 5, "running": 4, "paused": 3,
             "pending": 2, "looped": 1, "skipped": 0, "success": 0, "unknown": 0}


@lru_cache(maxsize=None)
def state_kind(state: str | None) -> str:
    """The CSS kind of a state name: ``success``, ``failed``, ``crashed``, ``running`` ..."""
    if state == "Crashed":
        return "crashed"
    if state == "Submitted":  # claimed by an agent, not started yet
        return "pending"
    try:
        cls = state_from_name(state or "")
    except KeyError:
        return "unknown"
    return next((kind for base, kind in _KINDS if issubclass(cls, base)), "unknown")


def is_finished(state: str | None) -> bool:
    """Whether a state name is final (the page stops updating)."""
    return states.is_finished(state or "")


def worst(states: Iterable[str]) -> str | None:
    """The state shown for a group: the most severe of ``states``."""
    best: str | None = None
    for s in states:
        if best is None or _SEVERITY[state_kind(s)] > _SEVERITY[state_kind(best)]:
            best = s
    return best


# -- the task tree ----------------------------------------------------------------


@dataclass
class TaskGroup:
    """A task run and its mapped children, as ``runs show`` nests them."""

    slug: str
    parent: TaskRunInfo | None
    children: list[TaskRunInfo] = field(default_factory=list)
    shown: list[TaskRunInfo] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        """How many children are not listed."""
        return len(self.children) - len(self.shown)


def task_groups(tasks: Sequence[TaskRunInfo], all_children: bool = False) -> list[TaskGroup]:
    """Task runs grouped as (task run, its mapped children), in recorded order.

    A run with more than ``TASK_GROUPS`` groups shows that many: the unsuccessful
    first (in recorded order), then the rest in recorded order; groups are built
    only for those shown, so a run of 10,000 task runs costs little more than one
    of 300.
    """
    pairs = q.group_mapped(tasks)
    if not all_children and len(pairs) > TASK_GROUPS:
        failing = [i for i, pair in enumerate(pairs) if not _ok(*pair)][:TASK_GROUPS]
        keep = set(failing)
        for i in range(len(pairs)):
            if len(keep) >= TASK_GROUPS:
                break
            keep.add(i)
        pairs = [pair for i, pair in enumerate(pairs) if i in keep]
    groups = [TaskGroup(children[0].task_slug if parent is None else parent.task_slug,
                        parent, children) for parent, children in pairs]
    for group in groups:
        children = group.children
        if not children:
            continue
        summary = q.summarise_children(children)
        group.counts = dict(summary.by_state)
        if all_children or len(children) <= CHILD_ROWS:
            group.shown = children
        else:  # the unsuccessful first, as `runs show` does
            shown = summary.unsuccessful[:CHILD_ROWS]
            if len(shown) < CHILD_ROWS:
                seen = {id(c) for c in shown}
                shown += [c for c in children if id(c) not in seen][:CHILD_ROWS - len(shown)]
            group.shown = shown
    return groups


def _ok(parent: TaskRunInfo | None, children: Sequence[TaskRunInfo]) -> bool:
    """Whether a group's task run and all its mapped children succeeded."""
    if parent is not None and not states.is_successful(parent.state):
        return False
    return all(states.is_successful(c.state) for c in children)


# -- the timeline --------------------------------------------------------------------


@dataclass
class Bar:
    """One task run's span in one attempt, in percent of the attempt's span."""

    label: str
    state: str
    start: datetime
    end: datetime | None
    left: float = 0.0
    width: float = 0.0
    count: int = 1


@dataclass
class Timeline:
    """One attempt's Gantt chart: a row per task run that ran in it."""

    attempt: int
    start: datetime
    end: datetime
    bars: list[Bar]
    hidden: int = 0

    @property
    def seconds(self) -> float:
        """How long the attempt's task runs took, first start to last end."""
        return max(self.end.timestamp() - self.start.timestamp(), 0.0)


def timelines(history: Sequence[Transition], now: datetime) -> list[Timeline]:
    """A Gantt chart per attempt from the run's history: each Running to what ended it.

    Mapped children of one task are drawn as one bar when there are many.
    """
    spans: dict[tuple[int, str, int | None], list[list[Any]]] = {}
    for t in history:
        if t.task_slug is None:
            continue
        key = (t.attempt, t.task_slug, t.map_index)
        if t.state == "Running":
            spans.setdefault(key, []).append([t.timestamp, None, "Running"])
            continue
        runs = spans.get(key)
        if runs and runs[-1][1] is None:
            runs[-1][1], runs[-1][2] = t.timestamp, t.state
    by_attempt: dict[int, list[Bar]] = {}
    grouped: dict[tuple[int, str], list[Bar]] = {}
    for (attempt, slug, index), runs in spans.items():
        label = slug if index is None else f"{slug}[{index}]"
        for start, end, state in runs:
            bar = Bar(label, state, start, end)
            if index is None:
                by_attempt.setdefault(attempt, []).append(bar)
            else:
                grouped.setdefault((attempt, slug), []).append(bar)
    for (attempt, slug), bars in grouped.items():
        rows = by_attempt.setdefault(attempt, [])
        if len(bars) <= 20:
            rows.extend(bars)
            continue
        ends = [b.end or now for b in bars]
        rows.append(Bar(f"{slug}[…] ({len(bars)} children)", worst(b.state for b in bars) or "",
                        min(b.start for b in bars), max(ends), count=len(bars)))
    return [_layout(attempt, bars, now) for attempt, bars in sorted(by_attempt.items())]


def timeline_from_tasks(tasks: Sequence[TaskRunInfo], attempt: int,
                        now: datetime) -> list[Timeline]:
    """The latest attempt's chart from the task runs alone (for runs too wide to read
    their whole history on every refresh): each task run's latest start to its end.

    Only the ``TIMELINE_ROWS`` earliest rows become bars (``_layout`` shows no more);
    the rest are counted as hidden."""
    rows: list[TaskRunInfo | Bar] = []
    grouped: dict[str, list[TaskRunInfo]] = {}
    for t in tasks:
        if t.started_at is None:
            continue
        if t.map_index is None:
            rows.append(t)
        else:
            grouped.setdefault(t.task_slug, []).append(t)
    for slug, children in grouped.items():
        if len(children) <= 20:
            rows.extend(children)
        else:
            rows.append(Bar(f"{slug}[…] ({len(children)} children)",
                            worst(c.state for c in children) or "",
                            min(c.started_at for c in children),  # type: ignore[type-var]
                            max((c.ended_at or now) for c in children), count=len(children)))
    if not rows:
        return []
    shown = heapq.nsmallest(TIMELINE_ROWS, rows, key=_start)  # = sorted(...)[:TIMELINE_ROWS]
    bars = [r if isinstance(r, Bar) else
            Bar(q.task_label(r.task_slug, r.map_index), r.state, r.started_at, r.ended_at)
            for r in shown]
    return [_layout(attempt, bars, now, hidden=len(rows) - len(bars))]


def _start(row: TaskRunInfo | Bar) -> datetime:
    return row.start if isinstance(row, Bar) else row.started_at  # type: ignore[return-value]


def _layout(attempt: int, bars: list[Bar], now: datetime, hidden: int = 0) -> Timeline:
    bars.sort(key=lambda b: b.start)
    hidden += max(len(bars) - TIMELINE_ROWS, 0)
    bars = bars[:TIMELINE_ROWS]
    start = min(b.start for b in bars)
    end = max((b.end or now) for b in bars)
    span = max(end.timestamp() - start.timestamp(), 1e-6)
    for b in bars:
        b.left = 100.0 * (b.start.timestamp() - start.timestamp()) / span
        b.width = max(100.0 * ((b.end or now).timestamp() - b.start.timestamp()) / span, 0.4)
        b.width = min(b.width, 100.0 - b.left) if b.left < 100 else 0.4
    return Timeline(attempt, start, end, bars, hidden)


# -- the schematic --------------------------------------------------------------------


@dataclass
class Node:
    """A task of the schematic, placed in its column (depth) and row."""

    slug: str
    name: str
    mapped: bool
    x: float
    y: float
    state: str | None = None


@dataclass
class Schematic:
    """The flow's graph laid out left to right: nodes, edges as (x1, y1, x2, y2)."""

    nodes: list[Node]
    edges: list[tuple[float, float, float, float]]
    width: float
    height: float


NODE_W, NODE_H, GAP_X, GAP_Y = 150.0, 34.0, 50.0, 14.0


def schematic(graph: dict[str, Any] | None,
              states: dict[str, str] | None = None) -> Schematic | None:
    """Lay out a stored plain-data graph (``tasks`` and ``edges``) in columns by depth.

    ``states`` maps a slug to its state, to colour the nodes. None when there is
    no graph, or one too large to draw.
    """
    if not graph:
        return None
    tasks = graph.get("tasks") or []
    if not tasks or len(tasks) > SCHEMATIC_NODES:
        return None
    slugs = [t["slug"] for t in tasks]
    known = set(slugs)
    edges = [(e["upstream"], e["downstream"]) for e in graph.get("edges") or []
             if e.get("upstream") in known and e.get("downstream") in known]
    depth = _depths(slugs, edges)
    columns: dict[int, list[str]] = {}
    for slug in slugs:
        columns.setdefault(depth[slug], []).append(slug)
    place: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        for row, slug in enumerate(members):
            place[slug] = (10 + col * (NODE_W + GAP_X), 10 + row * (NODE_H + GAP_Y))
    by_slug = {t["slug"]: t for t in tasks}
    nodes = [Node(slug, by_slug[slug].get("name") or slug, bool(by_slug[slug].get("mapped")),
                  *place[slug], state=(states or {}).get(slug)) for slug in slugs]
    lines = [(place[u][0] + NODE_W, place[u][1] + NODE_H / 2, place[d][0], place[d][1] + NODE_H / 2)
             for u, d in dict.fromkeys(edges)]
    width = 20 + (max(columns) + 1) * (NODE_W + GAP_X) - GAP_X
    height = 20 + max(len(m) for m in columns.values()) * (NODE_H + GAP_Y) - GAP_Y
    return Schematic(nodes, lines, width, height)


def _depths(slugs: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a root to each task (a cycle, impossible in a flow, stops it)."""
    upstream: dict[str, list[str]] = {s: [] for s in slugs}
    for u, d in edges:
        upstream[d].append(u)
    depth: dict[str, int] = {}

    def visit(slug: str, seen: frozenset[str]) -> int:
        if slug in depth:
            return depth[slug]
        if slug in seen:
            return 0
        ups = upstream[slug]
        value = 0 if not ups else 1 + max(visit(u, seen | {slug}) for u in ups)
        depth[slug] = value
        return value

    for s in slugs:
        visit(s, frozenset())
    return depth


# -- the Run form ------------------------------------------------------------------------


@dataclass
class Field:
    """One input of the Run form, typed from the parameter's default."""

    name: str
    required: bool
    kind: str  # string, integer, number, boolean, json, auto (as the CLI's --param)
    value: str
    checked: bool = False
    hint: str = ""


def run_form(parameters: Sequence[dict[str, Any]]) -> list[Field]:
    """Inputs for a registered flow's parameters: prefilled with defaults, typed by them."""
    import json

    fields = []
    for p in parameters:
        name, default, required = p["name"], p.get("default"), bool(p.get("required"))
        if p.get("default_repr"):
            fields.append(Field(name, False, "auto", "", hint=f"default {default} "
                                "(set by the flow; type a value to override it)"))
        elif isinstance(default, bool):
            fields.append(Field(name, required, "boolean", "", checked=default))
        elif isinstance(default, int):
            fields.append(Field(name, required, "integer", str(default)))
        elif isinstance(default, float):
            fields.append(Field(name, required, "number", repr(default)))
        elif isinstance(default, str):
            fields.append(Field(name, required, "string", default))
        elif isinstance(default, (list, dict)):
            fields.append(Field(name, required, "json", json.dumps(default), hint="JSON"))
        else:
            fields.append(Field(name, required, "auto", "", hint="JSON, or text"
                                if required else "JSON, or text; empty: the default (null)"))
    return fields
