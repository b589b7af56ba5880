"""How the CLI shows things: tables for people, JSON for scripts, chosen one way.

Commands build JSON-ready data with the ``*_json`` functions below and hand
it to ``emit`` together with a function that prints it for people. JSON is
the stable contract of SPEC.md ("CLI"): states by class name, timestamps ISO
8601 with a UTC offset. Tables show local times with their zone, human
durations and coloured states (colour only on a terminal, never with
``NO_COLOR``).

Tables are plain text laid out here rather than with rich: ``runs show`` of
a run with 10,000 task runs must print in well under a second.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

from cairnflow.states import (
    Cancelled, Failed, Looped, Paused, Pending, Running, Skipped, Success, state_from_name,
)
from cairnflow.statestore.queries import (
    flow_json, iso, level_name, log_json, run_detail_json, run_json, task_json, task_label,
    transition_json,
)

__all__ = [
    "emit", "print_json", "Table", "fit", "stdout_is_terminal", "echo_raw", "echo", "fields", "run_json", "run_detail_json",
    "task_json", "transition_json", "flow_json", "log_json", "iso", "local_time",
    "clock_time", "local_zone", "human_duration", "state_style", "style_state", "styled",
    "color_enabled", "task_label", "short_id", "command_line", "level_name", "show_runs",
    "discard_output",
]

SHORT_ID = 8

# -- choosing -----------------------------------------------------------------------


def emit(as_json: bool, to_json: Callable[[], Any], show: Callable[[], None]) -> None:
    """Print ``to_json()`` as JSON when ``as_json``, else call ``show`` to print for people.

    Both are functions, so only the output asked for is built.
    """
    if as_json:
        print_json(to_json())
    else:
        show()


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout; what JSON cannot hold is shown as a string
    (``serialize.json_safe``), so the output is valid JSON for every stored value."""
    from cairnflow.statestore.serialize import json_safe

    text = json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False)
    _write(text + "\n")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- JSON shapes: SPEC.md "CLI", defined once in the query API --------------------------
# run_json, run_detail_json, task_json, transition_json, flow_json, log_json, iso,
# task_label and level_name are imported above from cairnflow.statestore.queries.


# -- values for people -----------------------------------------------------------------


def show_runs(runs: Sequence[Any]) -> None:
    """The table ``runs ls`` prints: a row per run (``FlowRunInfo``), newest first."""
    table = Table(["id", "flow", "state", f"started ({local_zone()})", "duration",
                   "attempt"], state_column=2, right=[5], optional=[4, 5])
    for r in runs:
        table.add(short_id(r.id), r.flow_name, r.state, _started(r), _run_duration(r),
                  r.attempt)
    table.print()
    if not runs:
        echo("(no runs)")


def _started(run: Any) -> str:
    local = local_time(run.created_at)
    return local.rsplit(" ", 1)[0]  # the zone is in the header


def _run_duration(run: Any) -> str:
    """How long the latest attempt took (or has taken so far, while it runs)."""
    end = run.ended_at
    if end is None and run.state == "Running":
        end = datetime.now(timezone.utc)
    return human_duration(run.started_at, end)


def short_id(run_id: str) -> str:
    """The first 8 characters of a run id, which any run command accepts as a prefix."""
    return run_id[:SHORT_ID]


def command_line(*words: str, db: str | None = None) -> str:
    """A ``cairnflow`` command to copy and paste, with ``--db`` if one was given."""
    import shlex

    parts = ["cairnflow", *words] + (["--db", db] if db else [])
    return " ".join(shlex.quote(p) for p in parts)


def local_time(when: datetime | None) -> str:
    """``2024-05-01 14:00:03 CEST``: local time with its zone."""
    if when is None:
        return ""
    here = datetime.fromtimestamp(when.timestamp()).astimezone()
    return f"{here:%Y-%m-%d %H:%M:%S} {here.tzname()}"


def clock_time(when: datetime | None, day_of: datetime | None = None) -> str:
    """``14:00:03`` (local), with the date in front when it is not ``day_of``'s date."""
    if when is None:
        return ""
    # Naive local time is enough: the zone is in the column header. Cheap, for
    # tables of 10,000 task runs.
    here = datetime.fromtimestamp(when.timestamp())
    if day_of is not None and _local_date(day_of) != here.date():
        return f"{here:%Y-%m-%d %H:%M:%S}"
    return f"{here:%H:%M:%S}"


@lru_cache(maxsize=8)
def _local_date(when: datetime) -> date:
    return datetime.fromtimestamp(when.timestamp()).date()


def local_zone() -> str:
    """The local time zone's abbreviation, for column headers."""
    return datetime.now().astimezone().tzname() or ""


def human_duration(start: datetime | None, end: datetime | None) -> str:
    """``0.25s``, ``12.3s``, ``5m 03s``, ``2h 05m``, ``3d 04h``; empty if unknown."""
    if start is None or end is None:
        return ""
    # Timestamps, not `end - start`: pendulum's subtraction builds an Interval,
    # which costs a quarter of a second over 10,000 task runs.
    seconds = max(end.timestamp() - start.timestamp(), 0.0)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


# -- colour ------------------------------------------------------------------------

_ANSI = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
         "cyan": "36", "dim": "2", "bold": "1", "bold red": "1;31"}

# Checked in order: the first class a state is a kind of gives its colour. The UI's
# concern, kept out of the state classes.
_STATE_COLOURS: tuple[tuple[type, str], ...] = (
    (Paused, "magenta"), (Pending, "yellow"), (Running, "blue"), (Skipped, "dim"),
    (Success, "green"), (Failed, "red"), (Cancelled, "magenta"), (Looped, "cyan"),
)


def color_enabled(stream: Any = None) -> bool:
    """Colour on a terminal unless ``NO_COLOR`` is set (``FORCE_COLOR`` forces it)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def styled(text: str, style: str | None, enabled: bool) -> str:
    """``text`` wrapped in the ANSI codes of ``style`` when ``enabled``."""
    if not enabled or not style or not text:
        return text
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


@lru_cache(maxsize=None)
def state_style(state: str) -> str | None:
    """The colour a state is shown in (by its class), or None for an unknown name."""
    if state == "Crashed":
        return "bold red"
    try:
        cls = state_from_name(state)
    except KeyError:
        return None
    return next((colour for kind, colour in _STATE_COLOURS if issubclass(cls, kind)), None)


def style_state(state: str, enabled: bool) -> str:
    """A state name in its colour."""
    return styled(state, state_style(state), enabled)


# -- tables ------------------------------------------------------------------------


class Table:
    """A plain-text table: columns padded to their widest cell, one line per row.

    On a terminal the table is fitted to its width: the ``optional`` columns
    are left out (in the order given) while the rest would not fit, then the
    ``flex`` column (the messages) is cut, keeping an exception's name
    (``fit``). State columns are coloured. Elsewhere every cell is printed whole.

    Example:
        >>> t = Table(["slug", "state"], state_column=1)
        >>> t.add("say_hello-1", "Success")
        >>> t.render(color=False, width=None).splitlines()[1]
        'say_hello-1  Success'
    """

    MIN_FLEX = 20
    """The flex column is not cut narrower than this while optional columns remain."""

    def __init__(self, headers: Sequence[str], *, state_column: int | None = None,
                 flex: int | None = None, right: Iterable[int] = (),
                 optional: Iterable[int] = ()):
        self.headers = list(headers)
        self.rows: list[list[str]] = []
        self.state_column = state_column
        self.flex = flex
        self.right = set(right)
        self.optional = list(optional)

    def add(self, *cells: Any) -> None:
        """Add a row; None becomes an empty cell, newlines become spaces."""
        self.rows.append(["" if c is None else " ".join(str(c).split("\n")) for c in cells])

    def render(self, *, color: bool, width: int | None) -> str:
        """The table as text; ``width`` None never cuts a cell."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                if len(cell) > widths[i]:
                    widths[i] = len(cell)
        shown = list(range(len(widths)))
        cut = None
        if width is not None:
            shown = self._columns_that_fit(widths, width)
            if self.flex is not None and self.flex in shown:
                others = sum(widths[i] for i in shown if i != self.flex)
                room = width - others - 2 * (len(shown) - 1)
                if room < widths[self.flex]:
                    cut = widths[self.flex] = max(room, min(widths[self.flex], 10))
        lines = [self._line(self.headers, widths, shown, cut, color, header=True)]
        for row in self.rows:
            lines.append(self._line(row, widths, shown, cut, color))
        return "\n".join(lines) + "\n"

    def _columns_that_fit(self, widths: list[int], width: int) -> list[int]:
        shown = list(range(len(widths)))
        for drop in self.optional:
            need = sum(min(widths[i], self.MIN_FLEX) if i == self.flex else widths[i]
                       for i in shown) + 2 * (len(shown) - 1)
            if need <= width:
                break
            shown.remove(drop)
        return shown

    def _line(self, cells: Sequence[str], widths: list[int], shown: list[int],
              cut: int | None, color: bool, header: bool = False) -> str:
        parts = []
        last = shown[-1]
        for i in shown:
            cell = cells[i] if i < len(cells) else ""
            if cut is not None and i == self.flex and len(cell) > cut:
                cell = fit(cell, cut)
            pad = widths[i] - len(cell)
            if i == last and i not in self.right:
                text = cell  # no trailing spaces
            elif i in self.right:
                text = " " * pad + cell
            else:
                text = cell + " " * pad
            if header:
                text = styled(text, "bold", color)
            elif i == self.state_column:
                text = styled(text, state_style(cell), color)
            parts.append(text)
        return "  ".join(parts).rstrip()

    def print(self, max_rows: int | None = None) -> None:
        """Print the table on stdout, fitted to the terminal if stdout is one
        (and to ``max_rows`` rows, the rest counted in a last line)."""
        import shutil  # with its archive formats: only for a table, not for --json

        color = color_enabled()
        width = shutil.get_terminal_size().columns if _stdout_is_terminal() else None
        rows = self.rows
        if max_rows is not None and len(rows) > max(max_rows, 1):
            keep = max(max_rows, 2) - 1
            self.rows = rows[:keep] + [[f"… {len(rows) - keep} more rows"]]
        try:
            _write(self.render(color=color, width=width))
        finally:
            self.rows = rows


_EXCEPTION = re.compile(r"\b[A-Z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\(")


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis, keeping the exception
    it names (``Error during e… KeyError('amount')``) where there is room for it.

    Example:
        >>> fit("Error during execution of task: KeyError('amount')", 30)
        "Error duri… KeyError('amount')"
    """
    if len(text) <= width:
        return text
    found = _EXCEPTION.search(text)
    if found is not None and found.start() > 0:
        tail = text[found.start():]
        room = width - len(tail) - 2
        if room >= 4:
            return text[:room].rstrip() + "… " + tail
        text = tail
        if len(text) <= width:
            return text
    return text[:width - 1] + "…"


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (tables are fitted, views redrawn in place)."""
    return _stdout_is_terminal()


def discard_output(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null: its reader has gone
    (``... | head``), and the interpreter's last flush at exit must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def echo_raw(text: str) -> None:
    """``text`` on stdout as it is (no newline)."""
    _write(text)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def echo(text: str = "") -> None:
    """One line on stdout."""
    _write(text + "\n")


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """``label  value`` lines, labels aligned (a run's header in ``runs show``)."""
    width = max(len(label) for label, _ in pairs)
    color = color_enabled()
    _write("".join(f"{styled(label.ljust(width), 'bold', color)}  {value}\n"
                   for label, value in pairs))
