"""The one place where errors become a line on stderr and an exit status.

Every command is registered through ``CommandGroup`` (a ``typer.Typer``),
which wraps it in ``reporting_errors``: a ``CairnflowError`` (an unknown run,
an unreadable store, a flow file without a flow, a corrupt result ...) or an
``OSError`` is printed as one line, ``Error: <what went wrong>``, and the
command exits with the status below, never with a traceback. Anything else
is a bug in cairnflow and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer

from cairnflow.exceptions import CairnflowError, MissingParameterError

__all__ = [
    "OK", "FAILED", "USAGE", "INTERRUPTED", "EXIT_CODES", "UsageError", "CommandGroup",
    "reporting_errors", "fail", "exit_status",
]

F = TypeVar("F", bound=Callable[..., Any])

OK = 0
"""The command did what was asked (``run``/``resume``: the flow run succeeded)."""
FAILED = 1
"""The flow run did not succeed, or the command could not do its job."""
USAGE = 2
"""The command line is wrong (also what Typer uses for its own usage errors)."""
INTERRUPTED = 130
"""Stopped with Ctrl-C (128 + SIGINT, as shells report it)."""

EXIT_CODES = (
    "Exit status: 0 done (for run and resume: the flow run succeeded); "
    "1 the flow run did not succeed, or an error such as an unknown run id or an "
    "unreadable database; 2 bad usage, such as an unknown option, a malformed --param "
    "or a missing flow parameter; 130 interrupted."
)


class UsageError(CairnflowError):
    """The command line is malformed (a bad ``--param``, a bad duration): exit 2."""


def exit_status(exc: BaseException) -> int:
    """The exit status for an error reported by ``reporting_errors``."""
    if isinstance(exc, (UsageError, MissingParameterError)):
        return USAGE
    return FAILED


def one_line(message: str) -> str:
    """``message`` on one line, for stderr."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(message: str, status: int = FAILED) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``status``."""
    prefix = typer.style("Error:", fg="red", bold=True) if _stderr_is_terminal() else "Error:"
    typer.echo(f"{prefix} {one_line(message)}", err=True)
    raise typer.Exit(status)


def reporting_errors(command: F) -> F:
    """Wrap a command so cairnflow's errors end it with one line and an exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stdout = sys.stdout
        if not isinstance(stdout, QuietWhenClosed):
            sys.stdout = QuietWhenClosed(stdout)
        try:
            return command(*args, **kwargs)
        except CairnflowError as exc:
            fail(str(exc) or type(exc).__name__, exit_status(exc))
        except OSError as exc:  # a file that cannot be read, a full disk ...
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", FAILED)
        finally:
            sys.stdout = stdout

    return wrapper  # type: ignore[return-value]


class QuietWhenClosed:
    """stdout for a command: once its reader has gone (``cairnflow runs show X | head``),
    output is dropped instead of failing, so the command ends quietly with its own
    status, and a run is never affected by where its output goes."""

    def __init__(self, stream: Any):
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        from cairnflow.cli.output import discard_output

        self._gone = True
        discard_output(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class CommandGroup(typer.Typer):
    """A ``typer.Typer`` whose commands all report errors the same way.

    Every command also gets the exit statuses in its help epilog.
    """

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("epilog", EXIT_CODES)
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(reporting_errors(fn))
            return fn

        return decorator


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
