"""Following a live run from another shell: ``runs logs -f`` and ``runs show --watch``.

The run goes on in a real process of its own, held at a gate (a task waits for
a file) so the follower is certainly running before the run's later records
are committed; the follower is a real process too, read line by line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from cairnflow.statestore.queries import follow
from cairnflow.statestore.sqlite import SQLiteStore

GATED = """
import os, time
from cairnflow import Flow, task, get_run_logger

GATE = {gate!r}

@task
def wait_for_gate():
    get_run_logger().info("before the gate")
    while not os.path.exists(GATE):
        time.sleep(0.05)
    get_run_logger().warning("after the gate")
    return 1

@task
def last(x):
    get_run_logger().info("the last record")
    return x + 1

with Flow("gated") as flow:
    last(wait_for_gate())
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cairnflow.cli", *args]


@pytest.fixture
def live_run(tmp_path):
    """A run going on in another process, held at a gate: (db path, open the gate)."""
    db = str(tmp_path / "live.db")
    gate = tmp_path / "gate"
    flow = tmp_path / "gated.py"
    flow.write_text(textwrap.dedent(GATED.format(gate=str(gate))))
    runner = subprocess.Popen(cli("run", str(flow), "--db", db), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _logged(db, "before the gate"))
        yield db, gate.touch
    finally:
        gate.touch()
        runner.wait(timeout=60)


def _logged(db: str, message: str) -> bool:
    if not os.path.exists(db):
        return False
    store = SQLiteStore(db, readonly=True)
    try:
        runs = store.list_runs(limit=1)
        return bool(runs) and any(e.message == message for e in store.get_logs(runs[0].id))
    finally:
        store.close()


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never held")
        time.sleep(0.05)


def read_until(stream, fragment: str) -> list[str]:
    lines = []
    for line in stream:
        lines.append(line)
        if fragment in line:
            return lines
    raise AssertionError(f"{fragment!r} never came: {lines}")


@pytest.mark.slow  # waits for the live run's heartbeat flush (5 s)
def test_logs_follow_prints_later_records_and_exits_when_the_run_ends(live_run):
    db, open_gate = live_run
    follower = subprocess.Popen(cli("runs", "logs", "last", "-f", "--db", db),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = read_until(follower.stdout, "before the gate")
    assert not any("after the gate" in line for line in before)
    open_gate()
    rest, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    later = rest.splitlines()
    assert [line.split("  ")[-1] for line in later
            if "gate" in line or "last record" in line] == ["after the gate",
                                                            "the last record"]
    assert "WARNING  wait_for_gate-1  after the gate" in rest
    assert later[-1].endswith("Flow run SUCCESS: All reference tasks succeeded.")


@pytest.mark.slow  # waits for the live run's heartbeat flush (5 s)
def test_show_watch_redraws_until_the_run_ends(live_run):
    db, open_gate = live_run
    watcher = subprocess.Popen(cli("runs", "show", "last", "--watch", "--db", db),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = read_until(watcher.stdout, "wait_for_gate-1")
    assert "Running" in first[-1]
    open_gate()
    rest, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    final = rest.split("\n\n")[-2:]  # the last frame: its header, then its table
    table = final[-1].splitlines()
    assert any(row.startswith("wait_for_gate-1") and "Success" in row for row in table)
    assert any(row.startswith("last-1") and "Success" in row for row in table)
    assert "state       Success" in rest


def test_following_a_run_that_already_ended_prints_it_and_returns(tmp_path):
    db = str(tmp_path / "done.db")
    flow = tmp_path / "gated.py"
    gate = tmp_path / "gate"
    gate.touch()
    flow.write_text(textwrap.dedent(GATED.format(gate=str(gate))))
    from typer.testing import CliRunner

    from cairnflow.cli import app
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(flow), "--db", db]).exit_code == 0
    logs = runner.invoke(app, ["runs", "logs", "last", "-f", "--json", "--db", db])
    assert logs.exit_code == 0
    records = [json.loads(line) for line in logs.stdout.splitlines()]  # JSON lines
    assert [r["message"] for r in records if r["task"]] == [
        "before the gate", "after the gate", "the last record"]
    shown = runner.invoke(app, ["runs", "show", "last", "--watch", "--json", "--db", db])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["state"] == "Success"
    warned = runner.invoke(app, ["runs", "logs", "last", "--level", "warning", "--db", db])
    assert [line.split("  ")[-1] for line in warned.stdout.splitlines()] == ["after the gate"]


def test_follow_reads_only_the_data_version_while_nothing_changes(tmp_path):
    """Idle is cheap: between commits, a follower reads no run until a recheck is due."""
    db = str(tmp_path / "idle.db")

    class CountingStore(SQLiteStore):
        reads = 0

        def get_flow_run(self, run_id):
            CountingStore.reads += 1
            return super().get_flow_run(run_id)

    from cairnflow.statestore import open_store
    from test_cli import record
    record(db, "idle-run", pid=os.getpid())  # a live run (this process) that never changes
    store = CountingStore(db, readonly=True)
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 50:
            writer = open_store(db)
            writer.delete_runs(["idle-run"])  # a commit from another connection
            writer.close()

    with pytest.raises(Exception, match="idle-run"):
        for _ in follow(store, "idle-run", poll=0.01, recheck=3600, sleep=sleep):
            pass
    assert CountingStore.reads == 2  # once at the start, once after the commit
    assert len(sleeps) == 50
