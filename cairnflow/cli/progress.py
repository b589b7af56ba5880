"""Progress of a run as it happens, for ``cairnflow run`` and ``cairnflow resume``.

``Tracker`` is the run's ``on_transition`` listener: it keeps each task run's
latest state and hands what changed to a view. ``LiveView`` draws a progress
bar and counts by state on a terminal (rich); ``PlainView`` prints one line
per finished task run (``slug state message``) for logs and pipes.

What the views say is meant to be true at every moment:

* the total is the flow's tasks plus every mapped child, counted as soon as
  its map expands (the ``Mapped`` transition says how many children it has);
* a try that failed and will be retried is shown as such (``retrying in 1s,
  attempt 2 of 4``), not as an error; the final failure is shown once;
* log records at the chosen level (``--log-level``, default warnings) are
  shown with the task run they came from, in one format, whichever process
  (thread, worker process) emitted them.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from cairnflow.cli import output
from cairnflow.context import current
from cairnflow.runner import logs
from cairnflow.runner.logs import TASK_FAILED
from cairnflow.states import is_failed, is_finished
from cairnflow.statestore.base import TaskKey, Transition

if TYPE_CHECKING:
    from cairnflow.core.flow import Flow

__all__ = [
    "Tracker", "EachRun", "LiveView", "PlainView", "make_view", "quiet_engine_console", "retry_policies",
    "log_line",
]

REUSED = "reused"
"""How task runs that a resume takes from earlier attempts are counted."""


def retry_policies(flow: Flow) -> dict[str, tuple[int, float | None]]:
    """``{slug: (max_retries, retry_delay in seconds)}`` for the flow's tasks that retry."""
    policies = {}
    for task, slug in flow.slugs.items():
        retries = getattr(task, "max_retries", 0) or 0
        if retries:
            delay = getattr(task, "retry_delay", None)
            policies[slug] = (retries, delay.total_seconds()
                              if isinstance(delay, timedelta) else None)
    return policies


def _mapped_count(message: str | None) -> int | None:
    from cairnflow.runner.flow_runner import mapped_count

    return mapped_count(message)


class Tracker:
    """Follows one flow-run attempt through its transitions (thread-safe).

    Counts are kept up to date per transition, so a run with 10,000 mapped
    children costs the same per transition as a run with three tasks.

    Args:
        view: where changes are shown.
        tasks: how many tasks the flow has.
        reused: on resume, the task runs taken from earlier attempts (not run again).
        announce: say which run started, with its id, when its first transition comes.
        retries: ``retry_policies(flow)``, to say "attempt 2 of 4" and "in 1s".
        children: on resume, how many mapped children each mapped task has already.
    """

    def __init__(self, view: Any, tasks: int, reused: dict[TaskKey, str] | None = None,
                 announce: bool = True, retries: dict[str, tuple[int, float | None]] | None
                 = None, children: dict[str, int] | None = None):
        self.view = view
        self.tasks = tasks
        self.announce = announce
        self.retries = retries or {}
        self.run_id: str | None = None
        self.final: Transition | None = None
        self._lock = threading.Lock()
        self._latest: dict[TaskKey, tuple[str, str | None]] = {}
        self._reused: set[TaskKey] = set()
        self._counts: dict[str, int] = {}
        self._done = 0
        self._seen_children: dict[str, int] = {}
        self._expected_children: dict[str, int] = dict(children or {})
        self._extra = sum(self._expected_children.values())
        self._tries: dict[TaskKey, int] = {}
        self._last_error: dict[TaskKey, str] = {}
        for key, state in (reused or {}).items():
            self._enter(key, state, None, reused=True)
        view.update(dict(self._counts), self._done, self.total())

    def __call__(self, t: Transition) -> None:
        with self._lock:
            if self.run_id is None:
                self.run_id = t.flow_run_id
                if self.announce:
                    self.view.say(f"Run {t.flow_run_id} of flow {t.task_name!r} started "
                                  f"(attempt {t.attempt}).")
            if t.task_slug is None:
                if is_finished(t.state):
                    self.final = t
                return
            key = (t.task_slug, t.map_index)
            label = output.task_label(*key)
            self._enter(key, t.state, t.message)
            if t.state == "Running":
                self._tries[key] = self._tries.get(key, 0) + 1
            elif t.state == "Mapped":
                self._expect(t.task_slug, _mapped_count(t.message))
            # the bar first: a line printed above it redraws it, and must not show it stale
            self.view.update(dict(self._counts), self._done, self.total())
            if t.state == "Retrying":
                self.view.retrying(label, self._retry_text(key))
            elif is_finished(t.state):
                self.view.finished(label, t.state, t.message, child=t.map_index is not None)

    def note_failure(self, key: TaskKey, error: str) -> None:
        """The exception of a task run's latest failed try (from the engine's log record)."""
        with self._lock:
            self._last_error[key] = error

    def _retry_text(self, key: TaskKey) -> str:
        tries = self._tries.get(key, 1)
        retries, delay = self.retries.get(key[0], (0, None))
        when = f" in {_human_seconds(delay)}" if delay else ""
        of = f" of {retries + 1}" if retries else ""
        error = self._last_error.pop(key, None)
        return (f"{error}: " if error else "") + f"retrying{when}, attempt {tries + 1}{of}"

    def _expect(self, slug: str, count: int | None) -> None:
        if count is None:
            return
        before = max(self._expected_children.get(slug, 0), self._seen_children.get(slug, 0))
        self._expected_children[slug] = count
        self._extra += max(count, self._seen_children.get(slug, 0)) - before

    def _enter(self, key: TaskKey, state: str, message: str | None,
               reused: bool = False) -> None:
        old = self._latest.get(key)
        if old is None:
            if key[1] is not None:
                self._see_child(key[0])
        else:
            self._count(REUSED if key in self._reused else old[0], -1)
            self._done -= is_finished(old[0])
            del self._latest[key]  # kept in the order of each task run's latest transition
        self._latest[key] = (state, message)
        if reused:
            self._reused.add(key)
        else:
            self._reused.discard(key)
        self._count(REUSED if reused else state, +1)
        self._done += is_finished(state)

    def _see_child(self, slug: str) -> None:
        seen = self._seen_children.get(slug, 0) + 1
        self._seen_children[slug] = seen
        if seen > self._expected_children.get(slug, 0):
            self._extra += 1

    def _count(self, name: str, change: int) -> None:
        left = self._counts.get(name, 0) + change
        if left:
            self._counts[name] = left
        else:
            self._counts.pop(name, None)

    def total(self) -> int:
        """Tasks in the flow, plus the mapped children of every map that expanded."""
        return self.tasks + self._extra

    def done(self) -> int:
        """Task runs in a finished state (reused ones included)."""
        return self._done

    def counts(self) -> dict[str, int]:
        """How many task runs are in each state (runs reused by a resume as ``reused``)."""
        with self._lock:
            return dict(self._counts)

    def failures(self) -> list[tuple[str, str, str | None]]:
        """(task label, state, message) of the task runs that ended failed, in the
        order they ended."""
        with self._lock:
            return [(output.task_label(*key), state, message)
                    for key, (state, message) in self._latest.items()
                    if key not in self._reused and is_failed(state)]

    def ran(self) -> int:
        """How many task runs this attempt took part in (not reused)."""
        return len(self._latest) - len(self._reused)


class EachRun:
    """The ``on_transition`` listener of a flow that runs on its schedule: a fresh
    ``Tracker`` (from ``make()``) for each run, and ``ended(tracker, transition)``
    when a run's final transition comes."""

    def __init__(self, make: Any, ended: Any):
        self.make = make
        self.ended = ended
        self.tracker: Tracker | None = None

    def __call__(self, t: Transition) -> None:
        if self.tracker is None or self.tracker.run_id != t.flow_run_id:
            self.tracker = self.make()
        self.tracker(t)
        if t.task_slug is None and self.tracker.final is not None:
            self.ended(self.tracker, t)

    @property
    def run_id(self) -> str | None:
        """The run in progress, if one is."""
        return None if self.between_runs else self.tracker.run_id  # type: ignore[union-attr]

    @property
    def between_runs(self) -> bool:
        """No run is in progress: waiting for the first or the next scheduled time."""
        return self.tracker is None or self.tracker.final is not None

    def note_failure(self, key: TaskKey, error: str) -> None:
        if self.tracker is not None:
            self.tracker.note_failure(key, error)


def _human_seconds(seconds: float) -> str:
    """``1s``, ``1.5s``, ``2m``, ``2m 30s``, ``1h 05m``."""
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m" + (f" {whole % 60:02d}s" if whole % 60 else "")
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _order(counts: dict[str, int]) -> list[tuple[str, int]]:
    first = {REUSED: 0}
    return sorted(counts.items(), key=lambda kv: (first.get(kv[0], 1), -kv[1], kv[0]))


def log_line(when: datetime, level: str, label: str | None, message: str) -> str:
    """A live log line: ``14:02:03  WARNING  fetch-1[3]  message`` (as ``runs logs``)."""
    clock = datetime.fromtimestamp(when.timestamp()).strftime("%H:%M:%S")
    return f"{clock}  {level.ljust(7)}  " + (f"{label}  " if label else "") + message


class PlainView:
    """One line per finished task run, for output that is not a terminal.

    Log records go to stderr, everything else to stdout.
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out = out or sys.stdout  # kept: tasks may swap sys.stdout while they run
        self.err = err

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def finished(self, label: str, state: str, message: str | None, child: bool) -> None:
        self.say(" ".join(f"{label} {state} {message or ''}".split("\n")).rstrip())

    def retrying(self, label: str, text: str) -> None:
        self.say(f"{label} Retrying {text}")

    def update(self, counts: dict[str, int], done: int, total: int) -> None:
        pass

    def log(self, when: datetime, level: str, label: str | None, message: str) -> None:
        err = self.err or sys.stderr
        err.write(log_line(when, level, label, message) + "\n")
        err.flush()


class LiveView:
    """A progress bar, and counts by state under it, redrawn in place on a terminal.

    Finished task runs, retries and log records are printed above the bar,
    except successful mapped children (there may be thousands). The bar
    line shrinks to the terminal (the flow's name is cut first) and the
    counts wrap under it, so 60 columns still show ``done/total``.

    Args:
        title: the flow's name.
        console: a ``rich.console.Console`` to draw on (tests pass one); stdout's by default.
    """

    def __init__(self, title: str, console: Any = None):
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column
        from rich.text import Text

        self.console = console or Console(file=sys.stdout, highlight=False)
        title_column = Column(no_wrap=True, overflow="ellipsis")
        screen = self.console

        class _Progress(Progress):
            def get_renderables(self) -> Iterator[Any]:
                # the flow's name gives way first on a narrow terminal
                title_column.max_width = max(8, screen.width // 3)
                yield self.make_tasks_table(self.tasks)
                for task in self.tasks:
                    if task.fields.get("counts"):
                        yield Text.from_markup(task.fields["counts"], overflow="fold")

        self.progress = _Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}", table_column=title_column),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
            MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, redirect_stderr=False, expand=True,
        )
        self.bar = self.progress.add_task(_escape(title), total=None, counts="")

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _print(self, text: str, markup: bool = True) -> None:
        # rich redraws the bar under a printed line from its last refresh: bring it
        # up to date first, so the bar never shows a total the line contradicts
        if self.progress.live.is_started:
            self.progress.refresh()
        self.console.print(text, markup=markup, highlight=False)

    def say(self, text: str) -> None:
        self._print(text, markup=False)

    def finished(self, label: str, state: str, message: str | None, child: bool) -> None:
        failed = is_failed(state)
        if child and not failed:
            return
        mark = "[red]✗[/]" if failed else "[green]✓[/]"
        style = output.state_style(state) or "default"
        self._print(f"{mark} {_escape(label)} [{style}]{state}[/] "
                    f"[dim]{_escape(message or '')}[/]")

    def retrying(self, label: str, text: str) -> None:
        self._print(f"[yellow]↻[/] {_escape(label)} [yellow]Retrying[/] {_escape(text)}")

    def update(self, counts: dict[str, int], done: int, total: int) -> None:
        text = "  ".join(f"[{output.state_style(name) or 'dim'}]{n} {name}[/]"
                         for name, n in _order(counts))
        self.progress.update(self.bar, completed=done, total=total, counts=text)

    def refresh(self) -> None:
        """Draw the bar now (rich redraws it on its own a few times a second)."""
        self.progress.refresh()

    def log(self, when: datetime, level: str, label: str | None, message: str) -> None:
        style = "red" if level in ("ERROR", "CRITICAL") else \
            "yellow" if level == "WARNING" else "dim"
        clock = datetime.fromtimestamp(when.timestamp()).strftime("%H:%M:%S")
        self._print(f"[dim]{clock}[/]  [{style}]{level.ljust(7)}[/]  "
                    + (f"{_escape(label)}  " if label else "") + _escape(message))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def make_view(title: str) -> LiveView | PlainView:
    """A live view on a terminal, plain lines otherwise."""
    try:
        live = sys.stdout.isatty()
    except (AttributeError, ValueError):
        live = False
    return LiveView(title) if live else PlainView()


class _Relay(logging.Handler):
    """Shows the run's log records at ``level`` and above through the view, each with
    its task run; the engine's "task failed" record goes to the tracker instead."""

    def __init__(self, view: Any, tracker: Tracker | None, level: int):
        super().__init__(level)
        self.view = view
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ctx = current()
            slug = ctx.get("task_slug")
            key = (slug, ctx.get("map_index")) if slug else None
            failure = getattr(record, TASK_FAILED, None)
            if failure:
                if self.tracker is not None and key is not None:
                    self.tracker.note_failure(key, failure)
                return
            when = datetime.fromtimestamp(record.created).astimezone()
            label = output.task_label(*key) if key else None
            self.view.log(when, record.levelname, label, record.getMessage())
        except Exception:  # a display problem must never break the run
            self.handleError(record)


@contextmanager
def quiet_engine_console(view: Any, tracker: Tracker | None = None,
                         level: int = logging.WARNING) -> Iterator[None]:
    """While the block runs, the engine's stderr log handler is silent (records are
    still stored) and records at ``level`` and above are shown through ``view``."""
    logs.install()
    console = logs.console_handler()
    logger = logging.getLogger("cairnflow")
    previous = console.level if console is not None else None
    previous_logger = logger.level
    if console is not None:
        console.setLevel(logging.CRITICAL + 1)
    if level < logger.getEffectiveLevel():
        logger.setLevel(level)  # DEBUG records are emitted (and stored) only when asked for
    relay = _Relay(view, tracker, level)
    logger.addHandler(relay)
    try:
        yield
    finally:
        logger.removeHandler(relay)
        logger.setLevel(previous_logger)
        if console is not None:
            console.setLevel(previous)
