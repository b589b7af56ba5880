"""Browser-test kit: a real ``cairnflow server start`` (and agent) as subprocesses on a
free port, and Debian's headless Chromium driven by Playwright.

Chromium is the system's ``chromium-headless-shell`` (``.ci/run`` installs it with
apt-get when it is missing); Playwright never downloads a browser. Without the
binary the browser tests skip on a developer's machine and fail in CI
(``CI=true``), where a skip would hide that nothing was tested.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent

CHROMIUM = "chromium-headless-shell"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    """The headless Chromium binary; skip (fail in CI) when it is not installed."""
    path = shutil.which(CHROMIUM)
    if path is None:
        reason = f"{CHROMIUM} is not installed (apt-get install -y {CHROMIUM})"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    return path


@contextmanager
def browser_page(screenshot_dir: Path | None = None) -> Iterator[Any]:
    """A fresh Playwright page in headless Chromium, 1280x860."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(home: Path) -> dict[str, str]:
    """The environment of a cairnflow subprocess: this checkout importable, its own home."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["CAIRNFLOW_HOME"] = str(home)
    env.pop("CAIRNFLOW_DB_URL", None)
    return env


class Process:
    """A cairnflow subprocess whose output goes to a file, stopped on exit."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "cairnflow.cli", *args], env=env,
                                     cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT, then SIGKILL of its process group after a few seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()


def wait_until(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def start_server(db: str, home: Path, cwd: Path) -> tuple[Process, str]:
    """``cairnflow server start`` on a free port; returns it and its base URL once up."""
    port = free_port()
    server = Process(["server", "start", "--port", str(port), "--db", db], child_env(home),
                     home.parent / "server.log", cwd)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"the server exited:\n{server.output()}")
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_until(healthy, 30, "the server to answer")
    return server, base
