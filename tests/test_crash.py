"""Crash safety: a real process running a flow is killed with SIGKILL (no chance to
clean up), and resuming the run finishes it without losing or repeating committed
work, with every history reading without gaps.

Tasks append ``slug map_index attempt`` to an executions file (fsynced) so the
tests can compare what ran with what the store says. ``tests/crashkit.py`` has
the children, the kill loop and the checks.
"""

from __future__ import annotations

import os
import random
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import crashkit
from cairnflow.runner.api import resume_run
from cairnflow.statestore import open_store

SLEEPY = """
    import os
    import time
    from pathlib import Path

    from cairnflow import Flow, context, task

    EXECUTIONS = {executions!r}
    AWAKE = Path({awake!r})  # once it exists, `slow` does not sleep


    def executed(name):
        with open(EXECUTIONS, "a") as f:
            f.write(f"{{name}} {{context.flow_run_attempt}}\\n")
            f.flush()
            os.fsync(f.fileno())


    @task
    def prepare():
        executed("prepare")
        return 20


    @task
    def slow(x):
        executed("slow")
        if not AWAKE.exists():
            time.sleep(30)
        return x + 1


    @task
    def finish(x):
        executed("finish")
        return x * 2


    with Flow("sleepy") as flow:
        finish(slow(prepare()))
"""


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "runs.db"


def url_of(db: Path) -> str:
    return f"sqlite:///{db}"


def task_state(store, run_id: str, slug: str) -> str | None:
    return next((t.state for t in store.get_task_runs(run_id) if t.task_slug == slug), None)


def alive_or_fail(child: crashkit.Child):
    """For wait_until predicates: a child that ended early is a failure, with its output."""
    if child.poll() is not None:
        raise AssertionError(f"the child exited {child.poll()} early:\n{child.output()}")


# -- the checks themselves ------------------------------------------------------------------


def test_the_crash_checks_catch_gaps_repeated_work_and_code_run_before_its_running(db):
    import socket

    import pendulum

    from cairnflow.statestore.base import FlowRunRecord, Transition

    store = open_store(url_of(db))
    now = pendulum.now("UTC")

    def t(slug, index, state, attempt):
        return Transition("r", attempt, slug, slug, index, state, None, now)

    # Written through the claim (not fenced), as no real attempt could write it.
    store.record_flow_run(FlowRunRecord("r", "f", "h", {}, None, None, None, None, 2,
                                        os.getpid(), socket.gethostname(), now), [
        t(None, None, "Running", 1), t("a", None, "Pending", 1), t("a", None, "Running", 1),
        t("a", None, "Success", 1), t("b", 0, "Pending", 1),
        t("b", 0, "Running", 1),  # attempt 1 dies; its Crashed is never recorded
        t(None, None, "Running", 2), t("b", 0, "Running", 2), t("b", 0, "Success", 2),
        # e's history lacks its first Pending
        t("e", None, "Running", 2), t("e", None, "Success", 2), t(None, None, "Success", 2)])

    assert sorted(crashkit.history_problems("r", store)) == [
        "flow run: Running -> Running in [('Running', 1), ('Running', 2), ('Success', 2)]",
        "task run ('b', 0): Running -> Running in [('Pending', 1), ('Running', 1), "
        "('Running', 2), ('Success', 2)]",
        "task run ('e', None): start -> Running in [('Running', 2), ('Success', 2)]"]
    executions = [("a", None, 1), ("a", None, 2), ("b", 0, 1), ("b", 0, 2), ("b", 0, 2),
                  ("c", None, 1), ("e", None, 1)]
    assert crashkit.execution_problems("r", store, executions) == [
        "('a', None) ran again in attempt 2 after its Success was committed in attempt 1",
        "('a', None) ran in attempt 2 without a Running recorded for that attempt "
        "(recorded: [1])",
        "('c', None) ran in attempt 1 without a Running recorded for that attempt "
        "(recorded: [])",
        "('e', None) ran in attempt 1 without a Running recorded for that attempt "
        "(recorded: [2])",
        "('b', 0) ran 2 times in attempt 2",
        "('e', None) has a Success recorded in attempt 2 but did not run in it"]


# -- one kill at a known moment -----------------------------------------------------------


def test_sigkill_while_a_task_sleeps_shows_crashed_and_resume_finishes(
        tmp_path, cairnflow_home, db):
    executions = tmp_path / "executions.txt"
    awake = tmp_path / "awake"
    flow_file = tmp_path / "sleepy.py"
    flow_file.write_text(textwrap.dedent(SLEEPY.format(executions=str(executions),
                                                       awake=str(awake))))
    url = url_of(db)
    child = crashkit.spawn("run", flow_file, url, tmp_path, crashkit.child_env(cairnflow_home))
    try:
        def slow_is_running() -> str | None:
            alive_or_fail(child)
            run_id = crashkit.find_run_id(url)
            if run_id is None:
                return None
            reader = open_store(url, readonly=True)
            try:
                return run_id if task_state(reader, run_id, "slow-1") == "Running" else None
            finally:
                reader.close()

        run_id = crashkit.wait_until(slow_is_running, timeout=60, what="slow-1 to be Running")
    finally:
        child.kill()
    assert child.poll() == -9

    store = open_store(url, readonly=True)
    info = store.get_flow_run(run_id)
    assert (info.state, info.stored_state, info.attempt) == ("Crashed", "Running", 1)

    awake.touch()
    state = resume_run(run_id, store=url)

    assert state.is_successful()
    assert executions.read_text().split("\n") == [
        "prepare 1", "slow 1", "slow 2", "finish 2", ""]  # prepare did not run again
    assert [(t.state, t.attempt) for t in store.get_history(run_id, "slow-1")] == [
        ("Pending", 1), ("Running", 1), ("Crashed", 1), ("Running", 2), ("Success", 2)]
    assert [(t.state, t.attempt) for t in store.get_history(run_id, "prepare-1")] == [
        ("Pending", 1), ("Running", 1), ("Success", 1)]
    # known since attempt 1 (its Pending), it ran in attempt 2 only
    assert [(t.state, t.attempt) for t in store.get_history(run_id, "finish-1")] == [
        ("Pending", 1), ("Running", 2), ("Success", 2)]
    assert [(t.task_slug, t.state, t.attempt) for t in store.get_history(run_id)
            if t.task_slug is None] == [
        (None, "Running", 1), (None, "Crashed", 1), (None, "Running", 2), (None, "Success", 2)]
    info = store.get_flow_run(run_id)
    assert (info.state, info.attempt) == ("Success", 2)
    assert {t.task_slug: t.state for t in store.get_task_runs(run_id)} == {
        "prepare-1": "Success", "slow-1": "Success", "finish-1": "Success"}
    assert crashkit.final_results(url, run_id)[("finish-1", None)] == 42
    assert crashkit.history_problems(run_id, store) == []


# -- kills on chosen commit boundaries ------------------------------------------------------

SMALL = crashkit.LayeredFlow("small", chain=3, fan=2, items=2, glue=2, max_sleep=0)

FLOW_GAP = pytest.mark.xfail(
    crashkit.KNOWN_FLOW_GAP_BUG, strict=True,
    reason="engine bug: starting an attempt takes several commits (the crash record, the "
           "run record, the flow's Running); a kill between them leaves the flow run's "
           "history with a gap or a second Crashed (see crashkit.KNOWN_FLOW_GAP_BUG)")

BOUNDARIES = [
    # the first run: its record exists, its Running is not committed yet
    pytest.param(["after:record_flow_run:1"], id="run: after its run record",
                 marks=FLOW_GAP),
    pytest.param(["after:record_transitions:1"], id="run: after the flow's Running"),
    pytest.param(["before:record_transitions:4"], id="run: before a Success is committed"),
    pytest.param(["after:record_transitions:4"], id="run: after a Success is committed"),
    # a resume killed after it recorded the previous attempt's crash, before its own run
    # record: the next resume finds the run stored as Crashed
    pytest.param(["after:record_transitions:6", "after:record_transitions:1"],
                 id="resume: after recording the crash", marks=FLOW_GAP),
    # a resume killed after its run record (attempt 2 started), before its Running
    pytest.param(["after:record_transitions:6", "after:record_flow_run:1"],
                 id="resume: after its run record", marks=FLOW_GAP),
    pytest.param(["after:record_transitions:6", "before:record_transitions:5",
                  "after:record_transitions:3"], id="resume: in the middle, twice"),
]


@pytest.mark.parametrize("kills", BOUNDARIES)
def test_sigkill_on_a_commit_boundary_then_resume_leaves_gapless_histories(
        tmp_path, cairnflow_home, db, kills):
    url = url_of(db)
    flow_file = SMALL.write(tmp_path / "small.py")
    executions = tmp_path / "executions.txt"
    env = crashkit.child_env(cairnflow_home, CRASHKIT_EXECUTIONS=str(executions))
    run_id = None
    for kill_at in kills:
        child = crashkit.spawn("run" if run_id is None else "resume",
                               flow_file if run_id is None else run_id, url, tmp_path,
                               {**env, "CRASHKIT_KILL_AT": kill_at})
        assert child.wait() == -9, f"the kill point {kill_at} was not reached:\n{child.output()}"
        run_id = run_id or crashkit.find_run_id(url)
        assert run_id is not None
    last = crashkit.spawn("resume", run_id, url, tmp_path, env)
    assert last.wait() == 0, last.output()

    store = open_store(url, readonly=True)
    assert store.get_flow_run(run_id).state == "Success"
    runs = store.get_task_runs(run_id)
    assert len(runs) == SMALL.task_runs
    assert {t.state for t in runs} <= {"Success", "Mapped"}
    assert crashkit.history_problems(run_id, store) == []
    assert crashkit.execution_problems(
        run_id, store, crashkit.read_executions(executions)) == []
    assert crashkit.integrity(db) == "ok"


# -- random kills -----------------------------------------------------------------------------


def kill_resume_and_check(tmp_path: Path, home: Path, spec: crashkit.LayeredFlow,
                          min_kills: int, rounds: int = 1,
                          new_url: Callable[[Path], str] | None = None
                          ) -> list[crashkit.KillLoop]:
    """Kill a run of ``spec`` at random moments until a resume finishes it, then check
    it against an uninterrupted run of the same flow; ``rounds`` times, each a new run
    in a new database (``new_url(workdir)``; default: a SQLite file there)."""
    flow_file = spec.write(tmp_path / f"{spec.name}.py")
    reference_db = tmp_path / "reference.db"
    reference = crashkit.spawn("run", flow_file, url_of(reference_db), tmp_path,
                               crashkit.child_env(home, CRASHKIT_EXECUTIONS=str(
                                   tmp_path / "reference-executions.txt")))
    assert reference.wait() == 0, reference.output()
    reference_id = crashkit.find_run_id(url_of(reference_db))
    expected = crashkit.final_results(url_of(reference_db), reference_id)
    assert len(expected) == spec.task_runs - 2  # every task run but the mapped parents
    return [kill_round(tmp_path / f"round-{i}", home, flow_file, spec, min_kills, expected,
                       new_url)
            for i in range(1, rounds + 1)]


def kill_round(workdir: Path, home: Path, flow_file: Path, spec: crashkit.LayeredFlow,
               min_kills: int, expected: dict,
               new_url: Callable[[Path], str] | None = None) -> crashkit.KillLoop:
    workdir.mkdir()
    seed = int(os.environ.get("CRASHKIT_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    db = workdir / "crashed.db"
    url = url_of(db) if new_url is None else new_url(workdir)
    executions = workdir / "executions.txt"
    started = time.monotonic()
    loop = crashkit.kill_until_done(
        flow_file, url, workdir, crashkit.child_env(home, CRASHKIT_EXECUTIONS=str(executions)),
        executions, spec.task_runs, min_kills, rng)
    summary = (f"{workdir.name}: seed {seed} (rerun with CRASHKIT_SEED={seed}): "
               f"{loop.kills} kills, {loop.children} children in "
               f"{time.monotonic() - started:.1f} s")
    print(summary)
    (workdir / "kills.txt").write_text("\n".join(loop.events))
    assert loop.kills >= min_kills, summary

    store = open_store(url, readonly=True)
    info = store.get_flow_run(loop.run_id)
    assert info.state == "Success", summary
    runs = store.get_task_runs(loop.run_id)
    assert len(runs) == spec.task_runs, summary
    assert {t.state for t in runs} <= {"Success", "Mapped"}, summary
    # (1) the same results as an uninterrupted run
    assert crashkit.final_results(url, loop.run_id) == expected, summary
    # (2) no committed Success ran again; nothing ran before its Running was committed
    executions_seen = crashkit.read_executions(executions)
    assert crashkit.execution_problems(loop.run_id, store, executions_seen) == [], summary
    # (3) every history (task runs and the flow run) is gapless; a kill may land in the
    # windows of the known flow-history bug, which the boundary tests pin
    known: list[str] = []
    assert crashkit.history_problems(loop.run_id, store, tolerate_known=True,
                                     tolerated=known) == [], summary
    if known:
        print(f"known flow-history bug hit (tolerated here): {known}")
    # (4) the file is sound
    if new_url is None:
        assert crashkit.integrity(db) == "ok", summary
    store.close()
    return loop


def test_random_sigkills_across_a_40_task_flow_never_lose_or_repeat_committed_work(
        tmp_path, cairnflow_home):
    spec = crashkit.LayeredFlow("crash40", chain=12, fan=8, items=8, glue=7, big=2)
    assert spec.tasks == 40
    kill_resume_and_check(tmp_path, cairnflow_home, spec, min_kills=8)


@pytest.mark.slow
def test_random_sigkills_across_a_200_task_flow_never_lose_or_repeat_committed_work(
        tmp_path, cairnflow_home):
    spec = crashkit.LayeredFlow("crash200", chain=60, fan=60, items=40, glue=67, big=2)
    assert spec.tasks == 200
    loops = kill_resume_and_check(tmp_path, cairnflow_home, spec, min_kills=30, rounds=4)
    print(f"{sum(loop.kills for loop in loops)} kills in all")


# -- processes left behind ----------------------------------------------------------------

POOLED = """
    import os
    import time

    from cairnflow import Flow, task
    from cairnflow.executors import LocalDaskExecutor

    STARTED = {started!r}


    @task
    def work(i):
        open(os.path.join(STARTED, f"{{i}}-{{os.getpid()}}"), "w").close()
        time.sleep(0.5)
        return i


    with Flow("pooled", executor=LocalDaskExecutor(scheduler="processes", num_workers=2)) as flow:
        work.map(list(range(4)))
"""


def test_sigkill_of_a_run_on_the_processes_executor_leaves_no_worker_behind(
        tmp_path, cairnflow_home, db):
    started = tmp_path / "started"
    started.mkdir()
    flow_file = tmp_path / "pooled.py"
    flow_file.write_text(textwrap.dedent(POOLED.format(started=str(started))))
    child = crashkit.spawn("run", flow_file, url_of(db), tmp_path,
                           crashkit.child_env(cairnflow_home))
    left: list[int] = []
    try:
        crashkit.wait_until(lambda: alive_or_fail(child) or any(started.iterdir()),
                            timeout=60, what="a task to start in a worker process")
        workers = crashkit.descendants(child.pid)
        child.kill()
        deadline = time.monotonic() + 5  # the task in flight needs 0.5 s
        while time.monotonic() < deadline:
            left = [pid for pid in workers if crashkit.is_running(pid)]
            if not left:
                break
            time.sleep(0.1)
        assert workers and left == [], f"still running after the flow process died: {left}"
    finally:
        child.kill()
        for pid in crashkit.descendants(child.pid) + left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
