"""Reliability with real processes: a live run is never taken over, a run taken over
(on another host) stops its old process at once, Ctrl-C stops a run within a
second and closes what it interrupted, and the CLI never shows a traceback.

Each test runs ``python -m cairnflow.cli`` as a real process on a fresh
database, with tasks that append ``name attempt what`` to an executions file
(fsynced), and checks what ran against what the store says, its histories
(``crashkit.history_problems``) and ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import crashkit
from cairnflow.statestore import open_store

TAKEOVER = """
    import os
    import time
    from pathlib import Path

    from cairnflow import Flow, context, task

    EXECUTIONS = os.environ["REL_EXECUTIONS"]
    GATE = Path(os.environ["REL_GATE"])  # attempt 1's `hold` waits for it
    GATE2 = Path(os.environ["REL_GATE2"])  # a later attempt's `then` waits for it


    def executed(name, what="ran"):
        with open(EXECUTIONS, "a") as f:
            f.write(f"{name} {context.flow_run_attempt} {what}\\n")
            f.flush()
            os.fsync(f.fileno())


    def wait_for(gate):
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)


    @task
    def first():
        executed("first")
        return 1


    @task
    def hold(x):
        executed("hold")
        if context.flow_run_attempt == 1:
            wait_for(GATE)
        executed("hold", "done")
        return x + 1


    @task
    def then(x):
        executed("then")
        if context.flow_run_attempt > 1:
            wait_for(GATE2)
        return x + 1


    @task
    def last(x):
        executed("last")
        return x * 2


    with Flow("takeover") as flow:
        last(then(hold(first())))
"""


@dataclass
class Proc:
    """A ``cairnflow`` CLI process with its output in files."""

    popen: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout: float = 60) -> int:
        return self.popen.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.err.read_text()

    def stdout(self) -> str:
        return self.out.read_text()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)


class World:
    """One test's directory, database and environment for CLI processes."""

    def __init__(self, tmp_path: Path, home: Path):
        self.dir = tmp_path
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.db = home / "cairnflow.db"
        self.executions = tmp_path / "executions.txt"
        self.gate = tmp_path / "gate"
        self.gate2 = tmp_path / "gate2"
        self._n = 0
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = crashkit.child_env(self.home, REL_EXECUTIONS=str(self.executions),
                                 REL_GATE=str(self.gate), REL_GATE2=str(self.gate2))
        env.pop("FORCE_COLOR", None)
        env.pop("CAIRNFLOW_HOSTNAME", None)
        env.pop("CAIRNFLOW_STALE_SECONDS", None)
        env.update(extra)
        return env

    def start(self, *args: str, new_session: bool = False, **env: str) -> Proc:
        self._n += 1
        out, err = self.dir / f"cli-{self._n}.out", self.dir / f"cli-{self._n}.err"
        with open(out, "w") as o, open(err, "w") as e:
            popen = subprocess.Popen([sys.executable, "-m", "cairnflow.cli", *args],
                                     stdout=o, stderr=e, cwd=self.dir, env=self.env(**env),
                                     start_new_session=new_session)
        proc = Proc(popen, out, err)
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cairnflow.cli", *args],
                              capture_output=True, text=True, cwd=self.dir,
                              env=self.env(**env), timeout=120)

    def flow(self, source: str, name: str = "flow.py") -> Path:
        path = self.dir / name
        path.write_text(textwrap.dedent(source))
        return path

    def executed(self) -> list[tuple[str, int, str]]:
        if not self.executions.exists():
            return []
        return [(n, int(a), w) for n, a, w in
                (line.split() for line in self.executions.read_text().splitlines())]

    def wait_executed(self, entry: tuple[str, int, str], timeout: float = 60) -> None:
        crashkit.wait_until(lambda: entry in self.executed() or self._ended_early(),
                            timeout, f"{entry} to be executed")
        assert entry in self.executed(), self._outputs()

    def _ended_early(self) -> bool:
        return any(p.popen.poll() is not None for p in self.procs[-1:])

    def _outputs(self) -> str:
        return "\n".join(f"--- {p.popen.args}\n{p.stdout()}{p.stderr()}" for p in self.procs)

    def store(self):
        return open_store(f"sqlite:///{self.db}", readonly=True)

    def check_store(self, run_id: str) -> None:
        """The database is sound and every history of the run reads without gaps."""
        assert crashkit.integrity(self.db) == "ok"
        store = self.store()
        try:
            assert crashkit.history_problems(run_id, store) == []
        finally:
            store.close()

    def reported_state(self, run_id: str) -> str:
        store = self.store()
        try:
            return store.get_flow_run(run_id).state
        finally:
            store.close()

    def only_run(self) -> str:
        store = self.store()
        try:
            [run] = store.list_runs()
            return run.id
        finally:
            store.close()


@pytest.fixture
def world(tmp_path, cairnflow_home):
    made = World(tmp_path, cairnflow_home)
    yield made
    for proc in made.procs:
        try:
            os.kill(proc.popen.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        proc.stop()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error:")]


def attempt_transitions(world: World, run_id: str, attempt: int) -> int:
    store = world.store()
    try:
        return sum(1 for t in store.get_history(run_id) if t.attempt == attempt)
    finally:
        store.close()


# -- item 1: a live run is never taken over --------------------------------------------------


def test_a_stopped_run_is_alive_and_cannot_be_resumed_however_old_its_heartbeat(world):
    world.flow(TAKEOVER)
    first = world.start("run", "flow.py")
    world.wait_executed(("hold", 1, "ran"))
    os.kill(first.popen.pid, signal.SIGSTOP)
    run_id = world.only_run()
    # As after `kill -STOP` for an hour, or a clock that jumped an hour forward.
    with sqlite3.connect(world.db) as conn:
        conn.execute("UPDATE flow_run SET updated_at = '2000-01-01T00:00:00.000000+00:00'")
    assert world.reported_state(run_id) == "Running"
    refused = world.cli("resume", "last")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert error_lines(refused.stderr) == [
        f"Error: run {run_id} is still running (pid {first.popen.pid} on "
        f"{__import__('socket').gethostname()}): wait for it to end, or stop that process, "
        "before resuming it"]
    os.kill(first.popen.pid, signal.SIGCONT)
    world.gate.touch()
    assert first.wait() == 0, first.stderr()
    assert world.executed() == [("first", 1, "ran"), ("hold", 1, "ran"), ("hold", 1, "done"),
                                ("then", 1, "ran"), ("last", 1, "ran")]
    store = world.store()
    try:
        run = store.get_flow_run(run_id)
        assert (run.state, run.attempt) == ("Success", 1)
    finally:
        store.close()
    world.check_store(run_id)


def test_a_run_taken_over_from_another_host_stops_at_once_and_records_nothing_more(
        world, monkeypatch):
    """Two simulated hosts: the old process is stopped past the stale-heartbeat limit,
    another host resumes the run, then the old process continues: it stops at
    once (its task code too), says so in one line, and writes nothing more."""
    world.flow(TAKEOVER)
    first = world.start("run", "flow.py", CAIRNFLOW_HOSTNAME="host-a")
    world.wait_executed(("hold", 1, "ran"))
    os.kill(first.popen.pid, signal.SIGSTOP)
    run_id = world.only_run()
    other_host = {"CAIRNFLOW_HOSTNAME": "host-b", "CAIRNFLOW_STALE_SECONDS": "1"}
    for key, value in other_host.items():
        monkeypatch.setenv(key, value)  # what host-b sees, read in this process
    crashkit.wait_until(lambda: world.reported_state(run_id) == "Crashed", 30,
                        "host-b to see the run as crashed", interval=0.1)
    second = world.start("resume", "last", **other_host)
    world.wait_executed(("then", 2, "ran"))
    before = attempt_transitions(world, run_id, 1)
    os.kill(first.popen.pid, signal.SIGCONT)
    assert first.wait(timeout=30) == 1
    assert "Traceback" not in first.stderr()
    assert error_lines(first.stderr()) == [
        f"Error: run {run_id} was taken over by attempt 2 (another process resumed it); "
        "this attempt (1) stops and records nothing more"]
    assert attempt_transitions(world, run_id, 1) == before
    world.gate2.touch()
    assert second.wait() == 0, second.stderr()
    # The old process never finished `hold` nor started anything after it.
    assert world.executed() == [("first", 1, "ran"), ("hold", 1, "ran"), ("hold", 2, "ran"),
                                ("hold", 2, "done"), ("then", 2, "ran"), ("last", 2, "ran")]
    store = world.store()
    try:
        assert [(t.state, t.attempt) for t in store.get_history(run_id, "hold-1")] == [
            ("Pending", 1), ("Running", 1), ("Crashed", 1), ("Running", 2), ("Success", 2)]
        run = store.get_flow_run(run_id)
        assert (run.state, run.attempt, run.host) == ("Success", 2, "host-b")
    finally:
        store.close()
    world.check_store(run_id)


# -- items 5 and 6: Ctrl-C stops at once and closes what it interrupted -------------------

SLEEPERS = """
    import os
    import time

    from cairnflow import Flow, context, task

    EXECUTIONS = os.environ["REL_EXECUTIONS"]


    def executed(name, what="ran"):
        with open(EXECUTIONS, "a") as f:
            f.write(f"{name} {context.flow_run_attempt} {what}\\n")
            f.flush()
            os.fsync(f.fileno())


    @task
    def first():
        executed("first")
        return 1


    @task
    def slow(x):
        executed(context.task_slug)
        if context.flow_run_attempt == 1:
            time.sleep(120)
        return x + 1


    @task
    def join(a, b):
        executed("join")
        return a + b


    with Flow("sleepers") as flow:
        x = first()
        join(slow(x), slow(x))
"""


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_ctrl_c_stops_the_run_at_once_and_records_running_task_runs_cancelled(
        world, executor, monkeypatch):
    from cairnflow.runner.api import resume_run

    monkeypatch.setenv("REL_EXECUTIONS", str(world.executions))

    world.flow(SLEEPERS)
    proc = world.start("run", "flow.py", "--executor", executor, new_session=True)
    sleeping = ["slow-1"] if executor == "local" else ["slow-1", "slow-2"]
    for slug in sleeping:
        world.wait_executed((slug, 1, "ran"))
    os.killpg(proc.popen.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    assert proc.wait(timeout=30) == 130  # the tasks would sleep for two minutes
    run_id = world.only_run()
    assert "Traceback" not in proc.stderr()
    assert error_lines(proc.stderr()) == [
        f"Error: interrupted: run {run_id} was recorded as Cancelled; resume it with "
        f"cairnflow resume {run_id}"]
    store = world.store()
    try:
        assert store.get_flow_run(run_id).stored_state == "Cancelled"
        states = {t.task_slug: t.state for t in store.get_task_runs(run_id)}
        for slug in sleeping:
            assert states[slug] == "Cancelled"
            assert [(t.state, t.attempt) for t in store.get_history(run_id, slug)][-2:] == [
                ("Running", 1), ("Cancelled", 1)]
        assert states["first-1"] == "Success"
    finally:
        store.close()
    world.check_store(run_id)
    assert resume_run(run_id, store=f"sqlite:///{world.db}").is_successful()
    assert sorted(e for e in world.executed() if e[1] == 2) == sorted(
        [("join", 2, "ran"), ("slow-1", 2, "ran"), ("slow-2", 2, "ran")])
    assert [e for e in world.executed() if e[0] == "first"] == [("first", 1, "ran")]
    world.check_store(run_id)


# -- items 4 and 5: a write that fails ends the run Failed, with the reason ----------------

BIG_RESULT = """
    from cairnflow import Flow, task


    @task
    def small():
        return 1


    @task
    def big(x):
        return bytes(6 << 20)  # 6 MiB: a result file


    @task
    def after(data):
        return len(data)


    with Flow("big") as flow:
        after(big(small()))
"""


def assert_closed(store, run_id: str, reason: str) -> None:
    """The run is Failed for ``reason`` and no task run of it is left unfinished."""
    run = store.get_flow_run(run_id)
    assert (run.state, run.stored_state) == ("Failed", "Failed")
    assert reason in run.message
    tasks = {t.task_slug: t for t in store.get_task_runs(run_id)}
    assert [(t.state, t.attempt) for t in store.get_history(run_id, "big-1")][-2:] == [
        ("Running", 1), ("Failed", 1)]
    assert reason in tasks["big-1"].message
    assert tasks["small-1"].state == "Success"
    assert not [t for t in tasks.values() if t.state in ("Running", "Retrying", "Looped")]
    assert crashkit.history_problems(run_id, store) == []


def test_a_result_that_cannot_be_written_fails_the_run_and_closes_its_task_run(tmp_path):
    from cairnflow.exceptions import StoreError
    from cairnflow.runner.loading import load_flow_from_file

    path = tmp_path / "big.py"
    path.write_text(textwrap.dedent(BIG_RESULT))
    db = tmp_path / "db" / "cairnflow.db"
    db.parent.mkdir()
    (db.parent / "results").write_text("not a directory")  # a bad results directory
    flow = load_flow_from_file(str(path))
    with pytest.raises(StoreError, match="cannot write a result file"):
        flow.run(store=f"sqlite:///{db}")
    store = open_store(f"sqlite:///{db}", readonly=True)
    try:
        [run] = store.list_runs()
        assert_closed(store, run.id, "cannot write a result file")
    finally:
        store.close()
    assert crashkit.integrity(db) == "ok"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_writing_a_result_file_is_failed_not_crashed(world, small_disk):
    world.flow(BIG_RESULT)
    world.home = small_disk / "home"
    world.db = world.home / "cairnflow.db"
    result = world.cli("run", "flow.py")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert "cannot write a result file" in line and "No space left on device" in line
    assert list(small_disk.rglob("*.tmp")) == []  # the partial file did not stay
    store = world.store()
    try:
        [run] = store.list_runs()
        assert_closed(store, run.id, "No space left on device")
    finally:
        store.close()
    assert crashkit.integrity(world.db) == "ok"
