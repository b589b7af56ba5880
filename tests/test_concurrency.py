"""Several processes share one SQLite checkpoint store: they all finish, every
history is complete, nobody sees "database is locked", and the file stays sound.
Also a foreign writer holding the write lock for a second does not break a run."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import crashkit
from cairnflow.statestore import open_store

SHARED = crashkit.LayeredFlow("shared", chain=60, fan=60, items=40, glue=73, max_sleep=0)

BAD_OUTPUT = ("database is locked", "Traceback", "StoreLockedError", "StoreError")


def clean_output(child: crashkit.Child) -> list[str]:
    text = child.output()
    return [bad for bad in BAD_OUTPUT if bad in text]


def test_four_processes_share_one_database(tmp_path, cairnflow_home):
    db = tmp_path / "shared.db"  # created by whichever process gets there first
    four_processes_share(f"sqlite:///{db}", tmp_path, cairnflow_home)
    assert crashkit.integrity(db) == "ok"


def four_processes_share(url: str, tmp_path: Path, cairnflow_home: Path) -> None:
    """Four processes run the SHARED flow at once on the store ``url``; each run
    succeeds with every task run once and gapless histories."""
    flow_file = SHARED.write(tmp_path / "shared.py")
    executions = tmp_path / "executions.txt"
    barrier = tmp_path / "barrier"  # no task runs until all four runs are under way
    barrier.mkdir()
    children = [
        crashkit.spawn("run", flow_file, url, tmp_path, crashkit.child_env(
            cairnflow_home, CRASHKIT_EXECUTIONS=str(executions), CRASHKIT_EXECUTOR=executor,
            CRASHKIT_BARRIER=f"{barrier}:4"))
        for executor in ("local", "threads", "local", "threads")]
    try:
        codes = [child.wait(timeout=300) for child in children]
    finally:
        for child in children:
            child.kill()

    assert codes == [0, 0, 0, 0], "\n\n".join(c.output() for c in children)
    assert [clean_output(c) for c in children] == [[]] * 4, \
        "\n\n".join(c.output() for c in children)

    store = open_store(url, readonly=True)
    runs = store.list_runs()
    assert len(runs) == 4
    for run in runs:
        assert (run.flow_name, run.state, run.attempt) == ("shared", "Success", 1)
        task_runs = store.get_task_runs(run.id)
        assert len(task_runs) == SHARED.task_runs
        assert [(t.task_slug, t.map_index) for t in task_runs
                if (t.state, t.attempts) not in (("Success", 1), ("Mapped", 0))] == []
        assert all(t.ended_at is not None for t in task_runs)
        assert crashkit.history_problems(run.id, store) == []
        by_task: dict = {}
        for t in store.get_history(run.id):
            by_task.setdefault((t.task_slug, t.map_index), []).append(t.state)
        assert by_task.pop((None, None)) == ["Running", "Success"]
        assert {tuple(states) for states in by_task.values()} == {
            ("Pending", "Running", "Success"), ("Pending", "Mapped")}
    # every task's code ran once per run: 4 runs x (task runs - mapped parents - the List)
    lines = crashkit.read_executions(executions)
    assert len(lines) == 4 * (SHARED.task_runs - 3)
    assert {attempt for _, _, attempt in lines} == {1}
    store.close()


GATED = """
    import os
    import time
    from pathlib import Path

    from cairnflow import Flow, task
    from cairnflow.executors import LocalDaskExecutor

    LOCKED = Path({locked!r})  # exists once another process holds the write lock
    TIMES = {times!r}


    def note(what):
        with open(TIMES, "a") as f:
            f.write(f"{{what}} {{time.time()!r}}\\n")


    @task
    def first():
        return 1


    @task
    def gate(x):
        deadline = time.monotonic() + 120
        while not LOCKED.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("nobody took the lock")
            time.sleep(0.01)
        note("gate-opened")
        return x + 1


    @task
    def after(x):
        note("after-started")
        return x + 1


    @task
    def square(x):
        return x * x


    @task
    def total(values):
        return sum(values)


    threads = os.environ.get("CRASHKIT_EXECUTOR") == "threads"
    executor = LocalDaskExecutor(scheduler="threads", num_workers=3) if threads else None

    with Flow("gated", executor=executor) as flow:
        value = after(gate(first()))
        for _ in range(10):
            value = after(value)
        total(square.map([value] * 5))
"""

HOLDER = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
pathlib.Path(sys.argv[2]).touch()
time.sleep(float(sys.argv[3]))
conn.execute("COMMIT")
conn.close()
"""


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_run_waits_out_another_process_holding_the_write_lock(
        tmp_path, cairnflow_home, executor):
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    locked = tmp_path / "locked"
    times = tmp_path / "times.txt"
    flow_file = tmp_path / "gated.py"
    flow_file.write_text(textwrap.dedent(GATED.format(locked=str(locked), times=str(times))))
    child = crashkit.spawn("run", flow_file, url, tmp_path,
                           crashkit.child_env(cairnflow_home, CRASHKIT_EXECUTOR=executor))
    holder = None
    try:
        def gate_is_running() -> bool:
            assert child.poll() is None, f"the run ended early:\n{child.output()}"
            run_id = crashkit.find_run_id(url)
            if run_id is None:
                return False
            store = open_store(url, readonly=True)
            try:
                return any(t.task_slug == "gate-1" and t.state == "Running"
                           for t in store.get_task_runs(run_id))
            finally:
                store.close()

        crashkit.wait_until(gate_is_running, timeout=60, what="the gate task to run")
        hold = 1.0
        holder = crashkit.Child(*_spawn_holder(tmp_path, db, locked, hold))
        assert holder.wait(timeout=120) == 0, holder.output()
        code = child.wait(timeout=120)
    finally:
        child.kill()
        if holder is not None:
            holder.kill()

    assert code == 0, child.output()
    assert clean_output(child) == [], child.output()
    # the task after the gate could not start before the lock was released
    noted = dict(line.split() for line in times.read_text().splitlines()[:2])
    assert float(noted["after-started"]) - float(noted["gate-opened"]) >= hold * 0.9

    store = open_store(url, readonly=True)
    run = store.list_runs()[0]
    assert (run.state, run.attempt) == ("Success", 1)
    assert {t.state for t in store.get_task_runs(run.id)} <= {"Success", "Mapped"}
    assert crashkit.history_problems(run.id, store) == []
    assert crashkit.integrity(db) == "ok"


def _spawn_holder(workdir: Path, db: Path, locked: Path, hold: float):
    import subprocess

    out, err = workdir / "holder.out", workdir / "holder.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(locked), str(hold)],
                                stdout=stdout, stderr=stderr)
    return proc, out, err


NAPPING = """
    import os
    import time
    from pathlib import Path

    from cairnflow import Flow, context, task

    EXECUTIONS = {executions!r}
    SHORT = Path({short!r})  # once it exists, `nap` sleeps 2 s instead of 60


    def executed(name):
        with open(EXECUTIONS, "a") as f:
            f.write(f"{{name}} {{context.flow_run_attempt}} {{os.getpid()}}\\n")
            f.flush()
            os.fsync(f.fileno())


    @task
    def prepare():
        executed("prepare")
        return 1


    @task
    def nap(x):
        executed("nap")
        time.sleep(2 if SHORT.exists() else 60)
        return x + 1


    @task
    def finish(x):
        executed("finish")
        return x + 1


    with Flow("napping") as flow:
        finish(nap(prepare()))
"""


def test_a_second_resume_while_the_first_is_starting_does_not_run_the_flow_again(
        tmp_path, cairnflow_home):
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    executions = tmp_path / "executions.txt"
    short = tmp_path / "short"
    flow_file = tmp_path / "napping.py"
    flow_file.write_text(textwrap.dedent(NAPPING.format(executions=str(executions),
                                                        short=str(short))))
    env = crashkit.child_env(cairnflow_home)
    first = crashkit.spawn("run", flow_file, url, tmp_path, env)
    try:
        def napping() -> bool:
            assert first.poll() is None, first.output()
            return executions.exists() and "nap 1" in executions.read_text()
        crashkit.wait_until(napping, timeout=60, what="nap to start")
    finally:
        first.kill()
    run_id = crashkit.find_run_id(url)
    short.touch()

    # resume A stops just before recording its attempt (after its liveness check and
    # after recording the crash); resume B starts meanwhile, then A goes on
    paused, release = tmp_path / "paused", tmp_path / "release"
    a = crashkit.spawn("resume", run_id, url, tmp_path, {
        **env, "CRASHKIT_KILL_AT": "pause:record_flow_run:1",
        "CRASHKIT_PAUSED": str(paused), "CRASHKIT_RELEASE": str(release)})
    b = None
    try:
        crashkit.wait_until(lambda: paused.exists() or a.poll() is not None, timeout=60,
                            what="resume A to reach its run record")
        b = crashkit.spawn("resume", run_id, url, tmp_path, env)
        store = open_store(url, readonly=True)
        crashkit.wait_until(lambda: b.poll() is not None or (
            store.get_flow_run(run_id).attempt == 2 and store.get_flow_run(run_id).pid == b.pid),
            timeout=60, what="resume B to start its attempt or to end")
        release.touch()
        codes = sorted([a.wait(timeout=120), b.wait(timeout=120)])
    finally:
        release.touch()
        a.kill()
        if b is not None:
            b.kill()

    naps = [line for line in executions.read_text().splitlines() if line.startswith("nap")]
    outputs = "\n\n".join(child.output() for child in (a, b))
    assert len(naps) == 2, f"nap ran in more than one resume: {naps}\n{outputs}"
    assert codes[0] == 0 and codes[1] != 0, outputs
    refused = next(child for child in (a, b) if child.poll() != 0)
    # the child calls the Python API: the loser gets the clear exception
    assert "RunStillAliveError" in refused.err() and "still running" in refused.err()
    info = store.get_flow_run(run_id)
    assert (info.state, info.attempt) == ("Success", 2)
    assert crashkit.history_problems(run_id, store) == []
