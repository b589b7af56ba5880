"""Where log records and captured prints go during a run.

Records from ``get_run_logger()`` (loggers under ``cairnflow``) are handed to
the current run's log sink, found in the run context, so they are stored with
their flow run and task run; they are also printed to stderr.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from cairnflow.context import current

__all__ = ["install", "capture_stdout", "flush_captured_stdout", "TASK_FAILED"]

CONSOLE_FORMAT = "[%(asctime)s] %(levelname)s - %(name)s | %(message)s"
CONSOLE_HANDLER = "cairnflow-console"
TASK_FAILED = "cairnflow_task_failed"
"""An attribute set on the engine's "Task x failed" record, holding the exception's
repr (also when it was raised in a worker process, where the record carries the
remote traceback as text): the CLI's progress says that failure (or its retry) from
the transitions instead of repeating the record."""


class RunLogHandler(logging.Handler):
    """Hands each record to the sink of the run it was emitted in, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = current().get("_log_sink")
        if sink is not None:
            sink(record)


def install(console: bool = True) -> None:
    """Attach the run handler (and a stderr handler) to the ``cairnflow`` logger, once.

    A worker process installs no stderr handler (``console=False``): its records
    travel back to the flow's process, which stores and shows them, so every
    line on the terminal has one format.
    """
    logger = logging.getLogger("cairnflow")
    if any(isinstance(h, RunLogHandler) for h in logger.handlers):
        return
    logger.addHandler(RunLogHandler())
    logger.setLevel(logging.INFO)  # what is stored; the console shows CAIRNFLOW_LOG_LEVEL up
    logger.propagate = False
    if not console:
        return
    handler = _StderrHandler()
    handler.set_name(CONSOLE_HANDLER)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    handler.setLevel(os.environ.get("CAIRNFLOW_LOG_LEVEL", "INFO").upper())
    logger.addHandler(handler)


def console_handler() -> logging.Handler | None:
    """The stderr handler ``install`` added, to quiet or redirect it."""
    return next((h for h in logging.getLogger("cairnflow").handlers
                 if h.get_name() == CONSOLE_HANDLER), None)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a CLI runner or pytest may swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _StdoutRouter(io.TextIOBase):
    """Sends prints of tasks with ``log_stdout=True`` to their run logger, by line."""

    def __init__(self, original: TextIO):
        self.original = original

    def write(self, text: str) -> int:
        buffer = current().get("_stdout_buffer")
        if buffer is None:
            return self.original.write(text)
        buffer.append(text)
        if "\n" in text:
            *lines, rest = "".join(buffer).split("\n")
            buffer[:] = [rest] if rest else []
            for line in lines:
                _task_logger().info(line)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def _task_logger() -> logging.Logger:
    return logging.getLogger(f"cairnflow.{current().get('task_name') or 'run'}")


@contextmanager
def capture_stdout(enabled: bool) -> Iterator[None]:
    """Route prints of tasks that asked for it to their logger while the block runs."""
    if not enabled or isinstance(sys.stdout, _StdoutRouter):
        yield
        return
    original = sys.stdout
    sys.stdout = _StdoutRouter(original)
    try:
        yield
    finally:
        sys.stdout = original


def flush_captured_stdout() -> None:
    """Log what a task printed without a final newline."""
    buffer = current().get("_stdout_buffer")
    if buffer:
        _task_logger().info("".join(buffer))
        buffer.clear()
