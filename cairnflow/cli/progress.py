"""Progress of a run as it happens, for ``cairnflow run`` and ``cairnflow resume``.

``Tracker`` is the run's ``on_transition`` listener: it keeps each task run's
latest state and hands what changed to a view. ``LiveView`` draws counts by
state and a progress bar on a terminal (rich); ``PlainView`` prints one line
per finished task run (``slug state message``) for logs and pipes. The total
is the number of tasks in the flow; mapped children add to it as they appear.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from cairnflow.cli import output
from cairnflow.runner import logs
from cairnflow.states import is_failed, is_finished
from cairnflow.statestore.base import TaskKey, Transition

__all__ = ["Tracker", "LiveView", "PlainView", "make_view", "quiet_engine_console"]

REUSED = "reused"
"""How task runs that a resume takes from earlier attempts are counted."""


class Tracker:
    """Follows one flow-run attempt through its transitions (thread-safe).

    Counts are kept up to date per transition, so a run with 10,000 mapped
    children costs the same per transition as a run with three tasks.

    Args:
        view: where changes are shown.
        tasks: how many tasks the flow has.
        reused: on resume, the task runs taken from earlier attempts (not run again).
        announce: say which run started, with its id, when its first transition comes.
    """

    def __init__(self, view: Any, tasks: int, reused: dict[TaskKey, str] | None = None,
                 announce: bool = True):
        self.view = view
        self.tasks = tasks
        self.announce = announce
        self.run_id: str | None = None
        self._lock = threading.Lock()
        self._latest: dict[TaskKey, tuple[str, str | None]] = {}
        self._reused: set[TaskKey] = set()
        self._counts: dict[str, int] = {}
        self._done = 0
        self._children = 0
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
                return
            key = (t.task_slug, t.map_index)
            self._enter(key, t.state, t.message)
            if is_finished(t.state):
                self.view.finished(output.task_label(*key), t.state, t.message,
                                   child=t.map_index is not None)
            self.view.update(dict(self._counts), self._done, self.total())

    def _enter(self, key: TaskKey, state: str, message: str | None,
               reused: bool = False) -> None:
        old = self._latest.get(key)
        if old is None:
            self._children += key[1] is not None
        else:
            self._count(REUSED if key in self._reused else old[0], -1)
            self._done -= is_finished(old[0])
        self._latest[key] = (state, message)
        if reused:
            self._reused.add(key)
        else:
            self._reused.discard(key)
        self._count(REUSED if reused else state, +1)
        self._done += is_finished(state)

    def _count(self, name: str, change: int) -> None:
        left = self._counts.get(name, 0) + change
        if left:
            self._counts[name] = left
        else:
            self._counts.pop(name, None)

    def total(self) -> int:
        """Tasks in the flow, plus the mapped children seen so far."""
        return self.tasks + self._children

    def done(self) -> int:
        """Task runs in a finished state (reused ones included)."""
        return self._done

    def counts(self) -> dict[str, int]:
        """How many task runs are in each state (runs reused by a resume as ``reused``)."""
        with self._lock:
            return dict(self._counts)

    def failures(self) -> list[tuple[str, str, str | None]]:
        """(task label, state, message) of the task runs that ended failed."""
        with self._lock:
            return [(output.task_label(*key), state, message)
                    for key, (state, message) in self._latest.items()
                    if key not in self._reused and is_failed(state)]

    def ran(self) -> int:
        """How many task runs this attempt took part in (not reused)."""
        return len(self._latest) - len(self._reused)


def _order(counts: dict[str, int]) -> list[tuple[str, int]]:
    first = {REUSED: 0}
    return sorted(counts.items(), key=lambda kv: (first.get(kv[0], 1), -kv[1], kv[0]))


class PlainView:
    """One line per finished task run, for output that is not a terminal."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout  # kept: tasks may swap sys.stdout while they run

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def finished(self, label: str, state: str, message: str | None, child: bool) -> None:
        self.say(" ".join(f"{label} {state} {message or ''}".split("\n")).rstrip())

    def update(self, counts: dict[str, int], done: int, total: int) -> None:
        pass

    def warn(self, level: str, message: str) -> None:
        print(f"{level}: {message}", file=sys.stderr, flush=True)


class LiveView:
    """Counts by state and a progress bar, redrawn in place on a terminal.

    Finished task runs are printed above the bar, except successful mapped
    children (there may be thousands).
    """

    def __init__(self, title: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(file=sys.stdout, highlight=False)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[counts]}"),
            console=self.console, redirect_stderr=False,
        )
        self.bar = self.progress.add_task(_escape(title), total=None, counts="")

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def finished(self, label: str, state: str, message: str | None, child: bool) -> None:
        failed = is_failed(state)
        if child and not failed:
            return
        mark = "[red]✗[/]" if failed else "[green]✓[/]"
        style = output.state_style(state) or "default"
        self.console.print(f"{mark} {_escape(label)} [{style}]{state}[/] "
                           f"[dim]{_escape(message or '')}[/]")

    def update(self, counts: dict[str, int], done: int, total: int) -> None:
        text = "  ".join(f"[{output.state_style(name) or 'dim'}]{n} {name}[/]"
                         for name, n in _order(counts))
        self.progress.update(self.bar, completed=done, total=total, counts=text)

    def warn(self, level: str, message: str) -> None:
        self.console.print(f"[yellow]{_escape(level)}:[/] {_escape(message)}")


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
    """Sends warnings and errors of the run's loggers to the view."""

    def __init__(self, view: Any):
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.view.warn(record.levelname.capitalize(), record.getMessage())
        except Exception:  # a display problem must never break the run
            self.handleError(record)


@contextmanager
def quiet_engine_console(view: Any) -> Iterator[None]:
    """While the block runs, the engine's stderr log handler is silent (records are
    still stored) and warnings go through ``view`` instead."""
    logs.install()
    console = logs.console_handler()
    previous = console.level if console is not None else None
    if console is not None:
        console.setLevel(logging.CRITICAL + 1)
    relay = _Relay(view)
    logger = logging.getLogger("cairnflow")
    logger.addHandler(relay)
    try:
        yield
    finally:
        logger.removeHandler(relay)
        if console is not None:
            console.setLevel(previous)
