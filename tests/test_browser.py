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


@pytest.mark.slow  # a browser and processes: CI runs it with -m slow
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


# -- the orchestration story: register, server, agent, Run ------------------------------------

HELLO_FLOW = """
from cairnflow import Flow, Parameter, task, get_run_logger

@task
def say_hello(person):
    get_run_logger().info("Hello, {}!".format(person))

with Flow("Say hi!") as flow:
    name = Parameter("name")
    say_hello(name)
"""

FLAKY_FLOW = """
from cairnflow import Flow, task

COUNTS = {counts!r}

def count(name):
    with open(COUNTS, "a") as f:
        f.write(name + "\\n")

@task
def extract():
    count("extract")
    return [1, 2, 3]

@task
def load(rows):
    count("load")
    raise ValueError("the loader is broken")

with Flow("flaky") as flow:
    load(extract())
"""

LONG_FLOW = """
import time
from cairnflow import Flow, task

@task
def forever():
    for _ in range(6000):
        time.sleep(0.05)

with Flow("long") as flow:
    forever()
"""


@pytest.fixture(scope="module")
def orchestra(tmp_path_factory):
    """A real server and a real local agent over one store, for the module's tests."""
    pytest.importorskip("cairnflow.statestore.actions",
                        reason="orchestration (register, agents) is not in this tree yet")
    tmp_path = tmp_path_factory.mktemp("orchestra")
    home = tmp_path / "home"
    home.mkdir()
    db = f"sqlite:///{tmp_path / 'cairnflow.db'}"
    server, base = start_server(db, home, tmp_path)
    env = child_env(home)
    env["CAIRNFLOW_UI_URL"] = base
    agent = Process(["agent", "local", "start", "--db", db], env, tmp_path / "agent.log",
                    tmp_path)
    try:
        wait_until(lambda: api(base, "/api/agents"), 30, "the agent to announce itself")
        yield {"base": base, "db": db, "env": env, "dir": tmp_path, "agent": agent}
    finally:
        agent.stop()
        server.stop()


def register(o: dict, name: str, source: str) -> str:
    """Write a flow file and ``cairnflow register`` it; return the Flow URL it printed."""
    import subprocess
    import sys

    path = o["dir"] / name
    path.write_text(textwrap.dedent(source))
    done = subprocess.run([sys.executable, "-m", "cairnflow.cli", "register", str(path),
                           "--db", o["db"]], env=o["env"], cwd=o["dir"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("Flow URL: "))
    return line.removeprefix("Flow URL: ").strip()


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_seeds_story_register_open_the_url_run_with_marvin(orchestra):
    base = orchestra["base"]
    url = register(orchestra, "hello.py", HELLO_FLOW)
    assert url.startswith(f"{base}/flow/")
    with browser_page() as page:
        page.goto(url)
        assert page.locator("h1").inner_text().startswith("Say hi!")
        assert page.locator('label:has-text("name") .req').count() == 1  # required, marked
        page.evaluate("window.__same_page = true")
        page.fill('input[name="name"]', "Marvin")
        page.click("#run-button")
        row = page.locator("#live tr[data-run-id]").first
        row.wait_for()
        row.locator('.badge[data-state="Success"]').wait_for(timeout=30_000)
        assert page.evaluate("window.__same_page === true")  # no reload
        shoot(page, "flow.png")
        run_id = row.get_attribute("data-run-id")
        row.locator("a").first.click()
        page.wait_for_url(f"**/flow-run/{run_id}")
        page.wait_for_selector('#live[data-state="Success"]')
        assert "Hello, Marvin!" in page.locator("#logs-list").inner_text()
        shoot(page, "run.png")
    assert api(base, f"/api/runs/{run_id}")["parameters"] == {"name": "Marvin"}


@pytest.mark.slow  # a browser and processes: CI runs it with -m slow
def test_resume_from_the_ui_after_fixing_the_file_does_not_rerun_finished_tasks(orchestra):
    base = orchestra["base"]
    counts = orchestra["dir"] / "counts.txt"
    source = FLAKY_FLOW.format(counts=str(counts))
    url = register(orchestra, "flaky.py", source)
    flow_id = url.rsplit("/", 1)[1]
    run_id = post(base, f"/api/flows/{flow_id}/runs", {"parameters": {}})["id"]
    wait_until(lambda: api(base, f"/api/runs/{run_id}")["state"] == "Failed", 60,
               "the run to fail")
    (orchestra["dir"] / "flaky.py").write_text(textwrap.dedent(
        source.replace('    raise ValueError("the loader is broken")\n', "    return len(rows)\n")))
    with browser_page() as page:
        page.goto(f"{base}/flow-run/{run_id}")
        page.wait_for_selector('#live[data-state="Failed"]')
        page.click('button:has-text("Resume")')
        page.wait_for_selector('#live[data-state="Success"]', timeout=60_000)
    assert counts.read_text().split() == ["extract", "load", "load"]  # extract ran once
    detail = api(base, f"/api/runs/{run_id}")
    assert detail["attempt"] == 2
    assert {t["slug"]: t["state"] for t in detail["tasks"]} == {
        "extract-1": "Success", "load-1": "Success"}


@pytest.mark.slow  # a browser and processes: CI runs it with -m slow
def test_cancel_a_long_run_from_the_ui(orchestra):
    base = orchestra["base"]
    flow_id = register(orchestra, "long.py", LONG_FLOW).rsplit("/", 1)[1]
    run_id = post(base, f"/api/flows/{flow_id}/runs", {"parameters": {}})["id"]
    wait_until(lambda: any(t["state"] == "Running"
                           for t in api(base, f"/api/runs/{run_id}")["tasks"]), 60,
               "the task to be running")
    with browser_page() as page:
        page.goto(f"{base}/flow-run/{run_id}")
        page.wait_for_selector('#live[data-state="Running"]')
        page.on("dialog", lambda d: d.accept())
        page.click('button:has-text("Cancel")')
        page.wait_for_selector('#live[data-state="Cancelled"]', timeout=10_000)
        page.goto(base + "/")
        shoot(page, "dashboard.png")  # after the story, a failure, a resume and a cancel
    detail = api(base, f"/api/runs/{run_id}")
    assert detail["state"] == "Cancelled"
    assert [t for t in detail["tasks"] if t["state"] == "Running"] == []
