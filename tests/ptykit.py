"""Run a command on a pseudo-terminal, as a person at a terminal would.

``run_in_pty(argv, columns=60)`` starts the command with its stdin, stdout and
stderr on a pty of that width, optionally types ``answer`` when ``prompt``
appears, and returns the exit status and everything written, with ANSI escape
sequences removed (``plain``) or kept (``raw``).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class PtyResult:
    returncode: int
    raw: str

    @property
    def plain(self) -> str:
        """What a person saw, escape sequences removed, carriage returns as new lines."""
        return ANSI.sub("", self.raw).replace("\r\n", "\n").replace("\r", "\n")


def run_in_pty(argv: list[str], *, columns: int = 80, env: dict[str, str] | None = None,
               cwd: str | None = None, prompt: str | None = None, answer: str = "",
               timeout: float = 120.0) -> PtyResult:
    """Run ``argv`` on a pty ``columns`` wide; type ``answer`` when ``prompt`` is shown."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {**(env or os.environ), "COLUMNS": str(columns), "LINES": "40",
                   "TERM": "xterm-256color"}
    environment.pop("NO_COLOR", None)
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                               env=environment, close_fds=True, start_new_session=True)
    os.close(slave)
    output = b""
    answered = prompt is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and prompt.encode() in output:
                    os.write(master, answer.encode())
                    answered = True
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise TimeoutError(f"{argv} did not finish in {timeout}s: {output!r}")
    finally:
        os.close(master)
    return PtyResult(process.wait(timeout=30), output.decode(errors="replace"))


def cairnflow_argv(*args: str) -> list[str]:
    """``python -m cairnflow.cli ARGS`` with this test's Python."""
    return [sys.executable, "-m", "cairnflow.cli", *args]
