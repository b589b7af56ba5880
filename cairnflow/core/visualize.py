"""``flow.visualize()``: the graph as DOT text, rendered by graphviz when available."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow
    from cairnflow.states import State


# fill colours of final states, as Prefect 1's visualize(flow_state=) drew them
_COLORS = {"Success": "#28a745", "Cached": "#ffa500", "Mapped": "#97cc04",
           "Skipped": "#f0f0f0", "Failed": "#eb0000", "TriggerFailed": "#c42800",
           "TimedOut": "#cc5500", "Crashed": "#a30000", "Cancelled": "#bdbdbd",
           "Paused": "#99ccff", "Pending": "#dedede", "Looped": "#fbd3b4"}


def to_dot(flow: Flow, flow_state: State | None = None) -> str:
    """The flow's graph in the DOT language: one node per task, one arrow per edge;
    with ``flow_state`` (a finished run's state), each node filled by its task's state."""
    lines = [f"digraph {_quote(flow.name)} {{"]
    task_states = flow_state.result if flow_state is not None else None
    for task in flow.sorted_tasks():
        style = ""
        state = task_states.get(task) if isinstance(task_states, dict) else None
        if state is not None:
            color = _COLORS.get(type(state).__name__, "#ffffff")
            style = f", style=filled, fillcolor={_quote(color)}, " \
                    f"tooltip={_quote(type(state).__name__)}"
        lines.append(f"  {_quote(flow.slugs[task])} [label={_quote(task.name)}{style}];")
    for task in flow.sorted_tasks():
        for edge in flow.upstream_edges(task):
            attrs = []
            if edge.key:
                attrs.append(f"label={_quote(edge.key)}")
            if edge.mapped:
                attrs.append("style=dashed")
            attr_text = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {_quote(flow.slugs[edge.upstream_task])} -> "
                         f"{_quote(flow.slugs[task])}{attr_text};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def visualize(flow: Flow, filename: str | None = None, format: str | None = None,
              flow_state: State | None = None) -> str:
    """Return the DOT text; write it (or an image of it) to ``filename``."""
    dot = to_dot(flow, flow_state)
    if filename is None:
        return dot
    fmt = format or os.path.splitext(filename)[1].lstrip(".") or "dot"
    if fmt in ("dot", "gv"):
        with open(filename, "w", encoding="utf-8") as f:
            f.write(dot)
        return dot
    try:
        import graphviz
    except ImportError:
        raise ImportError(f"Rendering to .{fmt} needs the optional `graphviz` package "
                          "(pip install graphviz); write a .dot file instead.") from None
    base = os.path.splitext(filename)[0]
    graphviz.Source(dot).render(base, format=fmt, cleanup=True)
    return dot


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
