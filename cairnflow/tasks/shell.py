"""``ShellTask``: run a shell command as a task (the real home, at Prefect 1's path)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

from cairnflow import signals
from cairnflow.core.functional import defaults_from_attrs
from cairnflow.core.task import Task

__all__ = ["ShellTask"]

_TAIL = 5  # lines of output quoted in the failure message


class ShellTask(Task):
    """Runs ``command`` with ``shell`` and returns the last line of its output.

    Args:
        command: the command; can also be given when the task is called.
        env: environment variables added to the current environment.
        helper_script: shell code run before the command, in the same shell.
        shell: the shell (``bash`` by default).
        return_all: return every line of output as a list instead of the last.
        log_stderr: log what the command wrote to stderr when it fails.
        stream_output: log each line of output as it comes (``True`` or a level name).
        **kwargs: ``Task`` settings.

    A non-zero exit status fails the task with ``Command failed with exit code N``
    followed by the end of the command's output.

    Example:
        >>> from cairnflow.tasks.shell import ShellTask
        >>> ShellTask(command="echo hello").run()
        'hello'
    """

    def __init__(self, command: str | None = None, env: dict[str, str] | None = None,
                 helper_script: str | None = None, shell: str = "bash",
                 return_all: bool = False, log_stderr: bool = False,
                 stream_output: bool | str = False, **kwargs: Any):
        self.command = command
        self.env = env
        self.helper_script = helper_script
        self.shell = shell
        self.return_all = return_all
        self.log_stderr = log_stderr
        self.stream_output = stream_output
        super().__init__(**kwargs)

    @defaults_from_attrs("command", "env", "helper_script")
    def run(self, command: str | None = None, env: dict[str, str] | None = None,
            helper_script: str | None = None) -> Any:
        """Run the command; returns its last line of stdout (or all lines)."""
        if not command:
            raise TypeError("run() missing required argument: 'command'")
        script = f"{helper_script}\n{command}" if helper_script else command
        with tempfile.NamedTemporaryFile("w", prefix="cairnflow-", suffix=".sh") as tmp:
            tmp.write(script)
            tmp.flush()
            proc = subprocess.run([self.shell, tmp.name], capture_output=True, text=True,
                                  env={**os.environ, **(env or {})})
        lines = proc.stdout.splitlines()
        if self.stream_output:
            for line in lines:
                self.logger.info(line)
        if proc.returncode:
            msg = f"Command failed with exit code {proc.returncode}"
            self.logger.error(msg)
            if self.log_stderr and proc.stderr:
                self.logger.error(proc.stderr.rstrip())
            tail = [*lines[-_TAIL:], *proc.stderr.splitlines()[-_TAIL:]]
            raise signals.FAIL(": ".join([msg, "\n".join(tail)]) if tail else msg,
                               result=lines if self.return_all else (lines[-1] if lines else None))
        if self.return_all:
            return lines
        return lines[-1] if lines else None
