"""How long-running commands (``run``, ``resume``, ``agent local start``) take
their stop signals, however they were started."""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["stop_on_sigint", "stop_on_sigterm"]


def stop_on_sigint() -> None:
    """Stop on SIGINT even when started by a shell that ignores it (a background
    job, ``nohup``, a CI runner): Ctrl-C and the engine's own stop when another
    process took the run over both arrive as SIGINT, and must not be lost."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_on_sigterm() -> None:
    """Take SIGTERM (``kill``, systemd, a container stop) as Ctrl-C: the command
    stops as it does on Ctrl-C, saying so, instead of dying mid-step."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
