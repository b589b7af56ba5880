"""``flow.visualize()``: the graph as DOT text, rendered by graphviz when available."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow


def to_dot(flow: Flow) -> str:
    """The flow's graph in the DOT language: one node per task, one arrow per edge."""
    lines = [f"digraph {_quote(flow.name)} {{"]
    for task in flow.sorted_tasks():
        lines.append(f"  {_quote(flow.slugs[task])} [label={_quote(task.name)}];")
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


def visualize(flow: Flow, filename: str | None = None, format: str | None = None) -> str:
    """Return the DOT text; write it (or an image of it) to ``filename``."""
    dot = to_dot(flow)
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
