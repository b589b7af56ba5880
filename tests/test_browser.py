"""The web UI in a real headless Chromium against a real server (and agent) in subprocesses.

See ``browserkit`` for how the browser and the processes are started. Each
flow waits on a gate file the test creates, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import textwrap
import urllib.request
from pathlib import Path

import pytest

from browserkit import Process, browser_page, child_env, start_server, wait_until

SCREENSHOTS = os.environ.get("CAIRNFLOW_SCREENSHOTS")
"""A directory to save the README's screenshots in (``docs/images``), if set."""

GATED_FLOW = """
import os, time
from cairnflow import Flow, task, get_run_logger

GATE = {gate!r}

@task
def prepare():
    return 20

@task
def wait_for_gate(x):
    while not os.path.exists(GATE):
        time.sleep(0.05)
    get_run_logger().info("gate opened")
    return x + 1

@task
def report(x):
    get_run_logger().info("total is %s", x)
    return x

with Flow("gated") as flow:
    report(wait_for_gate(prepare()))
"""


@pytest.fixture
def workdir(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return tmp_path, home, f"sqlite:///{tmp_path / 'cairnflow.db'}"


@pytest.fixture
def server(workdir):
    tmp_path, home, db = workdir
    proc, base = start_server(db, home, tmp_path)
    yield base
    proc.stop()


def api(base: str, path: str) -> object:
    with urllib.request.urlopen(base + path, timeout=5) as resp:
        return json.loads(resp.read())


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_run_page_follows_a_live_run_to_success_without_a_reload(workdir, server):
    tmp_path, home, db = workdir
    gate = tmp_path / "gate"
    flow_file = tmp_path / "gated.py"
    flow_file.write_text(textwrap.dedent(GATED_FLOW.format(gate=str(gate))))
    run = Process(["run", str(flow_file), "--db", db], child_env(home), tmp_path / "run.log",
                  tmp_path)
    try:
        runs = wait_until(lambda: api(server, "/api/runs"), what="the run to be recorded")
        run_id = runs[0]["id"]
        with browser_page() as page:
            page.goto(f"{server}/flow-run/{run_id}")
            page.wait_for_selector('#live[data-state="Running"]')
            page.evaluate("window.__same_page = true")
            gate.touch()
            page.wait_for_selector('#live[data-state="Success"]', timeout=20_000)
            assert page.evaluate("window.__same_page === true")  # updated, not reloaded
            assert page.locator('#live[data-live="off"]').count() == 1  # polling stopped
            assert page.locator('tr[data-slug="report-1"] .badge').inner_text() == "Success"
            assert "total is 21" in page.locator("#logs-list").inner_text()
        assert run.proc.wait(20) == 0
    finally:
        run.stop()
