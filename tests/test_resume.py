"""Resume: a failed run continues where it stopped, with the bug fixed, without
redoing what succeeded. Tasks log each execution to a file so tests can count
what ran; flows live in files under tmp_path so they can be "fixed" on disk."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from cairnflow import Flow, task
from cairnflow.exceptions import FlowLoadError, RunStillAliveError, UnknownRunError
from cairnflow.runner.api import resume_run
from cairnflow.runner.loading import load_flow_from_file
from cairnflow.statestore import open_store

CHAIN = """
    import os
    from cairnflow import Flow, task

    BROKEN = {broken}

    @task
    def step(total, i):
        with open(os.environ["CALLS"], "a") as f:
            f.write(f"step{{i}}\\n")
        if i == 7 and BROKEN:
            raise ValueError("bug in step 7")
        return total + i

    with Flow("chain10") as flow:
        value = 0
        for i in range(1, 11):
            value = step(value, i, task_args=dict(name=f"step{{i}}"))
"""

MAP = """
    import os
    from cairnflow import Flow, task

    BROKEN = {broken}
    BAD = {{3, 50, 97}}

    def called(what):
        with open(os.environ["CALLS"], "a") as f:
            f.write(what + "\\n")

    @task
    def numbers():
        called("numbers")
        return list(range(100))

    @task
    def square(x):
        called(f"square {{x}}")
        if BROKEN and x in BAD:
            raise ValueError(f"cannot square {{x}}")
        return x * x

    @task
    def plus_one(y):
        called(f"plus_one {{y}}")
        return y + 1

    @task
    def total(values):
        called("total")
        return sum(values)

    with Flow("map100") as flow:
        result = total(plus_one.map(square.map(numbers())))
"""


@pytest.fixture
def calls(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("CALLS", str(path))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'runs.db'}"


def write_flow(path: Path, source: str, **values) -> Path:
    path.write_text(textwrap.dedent(source.format(**values)))
    return path


def take_calls(calls: Path) -> list[str]:
    """The executions logged since the last call, oldest first."""
    lines = calls.read_text().split() if calls.exists() else []
    calls.write_text("")
    return lines


def test_chain_failing_at_task_7_resumes_after_the_fix_without_rerunning_1_to_6(
        tmp_path, calls, db_url):
    source = write_flow(tmp_path / "chain.py", CHAIN, broken=True)
    state = load_flow_from_file(str(source)).run(store=db_url)
    assert state.is_failed()
    assert take_calls(calls) == [f"step{i}" for i in range(1, 8)]

    write_flow(source, CHAIN, broken=False)  # the fix, on disk
    resumed = resume_run(state.context["flow_run_id"], store=db_url)

    assert resumed.is_successful()
    assert take_calls(calls) == [f"step{i}" for i in range(7, 11)]
    final = {t.name: s.result for t, s in resumed.result.items()}
    assert final["step10"] == sum(range(1, 11))


def test_resumed_run_keeps_its_id_and_counts_attempts(tmp_path, calls, db_url):
    source = write_flow(tmp_path / "chain.py", CHAIN, broken=True)
    run_id = load_flow_from_file(str(source)).run(store=db_url).context["flow_run_id"]
    write_flow(source, CHAIN, broken=False)
    resume_run(run_id, store=db_url)

    store = open_store(db_url)
    info = store.get_flow_run(run_id)
    assert (info.state, info.attempt) == ("Success", 2)
    assert len(store.list_runs()) == 1
    step7 = next(t for t in store.get_task_runs(run_id) if t.task_slug == "step7-1")
    assert (step7.state, step7.attempts) == ("Success", 2)
    assert [t.state for t in store.get_history(run_id, "step7-1")] == [
        "Pending", "Running", "Failed", "Running", "Success"]


def test_map_with_failed_children_reruns_only_them_and_their_dependents(
        tmp_path, calls, db_url):
    source = write_flow(tmp_path / "mapflow.py", MAP, broken=True)
    state = load_flow_from_file(str(source)).run(store=db_url)
    assert state.is_failed()
    first = take_calls(calls)
    assert first.count("numbers") == 1 and len([c for c in first if c == "square"]) == 100
    assert "total" not in first

    write_flow(source, MAP, broken=False)
    resumed = resume_run(state.context["flow_run_id"], store=db_url)

    assert resumed.is_successful()
    lines = calls.read_text().splitlines()
    assert sorted(lines) == sorted(["square 3", "square 50", "square 97", "plus_one 9",
                                    "plus_one 2500", "plus_one 9409", "total"])
    total = next(s for t, s in resumed.result.items() if t.name == "total")
    assert total.result == sum(x * x + 1 for x in range(100))


def test_resuming_a_successful_run_runs_nothing(tmp_path, calls, db_url):
    source = write_flow(tmp_path / "chain.py", CHAIN, broken=False)
    run_id = load_flow_from_file(str(source)).run(store=db_url).context["flow_run_id"]
    take_calls(calls)

    state = resume_run(run_id, store=db_url)

    assert state.is_successful()
    assert "already succeeded" in state.message
    assert take_calls(calls) == []
    assert open_store(db_url).get_flow_run(run_id).attempt == 1


def test_flow_resume_without_id_picks_the_latest_failed_run_of_that_flow(
        tmp_path, calls, db_url):
    broken = write_flow(tmp_path / "chain.py", CHAIN, broken=True)
    load_flow_from_file(str(broken)).run(store=db_url)
    failed_id = load_flow_from_file(str(broken)).run(store=db_url).context["flow_run_id"]
    take_calls(calls)

    fixed = load_flow_from_file(str(write_flow(broken, CHAIN, broken=False)))
    state = fixed.resume(store=db_url)

    assert state.is_successful()
    assert state.context["flow_run_id"] == failed_id
    assert take_calls(calls) == [f"step{i}" for i in range(7, 11)]


def test_resume_uses_the_parameters_of_the_original_run(db_url):
    from cairnflow import Parameter

    seen = []

    @task
    def record(x, fail):
        seen.append(x)
        if fail and len(seen) == 1:
            raise RuntimeError("first time fails")
        return x

    with Flow("params") as flow:
        record(Parameter("x"), Parameter("fail", default=True))

    run_id = flow.run(x=42, store=db_url).context["flow_run_id"]
    state = flow.resume(run_id, store=db_url)

    assert state.is_successful()
    assert seen == [42, 42]


def test_a_task_without_checkpoint_runs_again_on_resume(db_url):
    runs = {"source": 0, "sink": 0}

    @task(checkpoint=False)
    def source():
        runs["source"] += 1
        return 5

    @task
    def sink(x):
        runs["sink"] += 1
        if runs["sink"] == 1:
            raise RuntimeError("transient")
        return x * 2

    with Flow("no-checkpoint") as flow:
        out = sink(source())

    run_id = flow.run(store=db_url).context["flow_run_id"]
    state = flow.resume(run_id, store=db_url)

    assert state.result[out].result == 10
    assert runs == {"source": 2, "sink": 2}


def test_source_gone_falls_back_to_the_flow_saved_at_the_first_run(tmp_path, db_url):
    marker = tmp_path / "service-up"
    source = write_flow(tmp_path / "flaky.py", """
        from pathlib import Path
        from cairnflow import Flow, task

        @task
        def call_service():
            marker = Path({marker!r})
            if not marker.exists():
                marker.touch()
                raise ConnectionError("service down")
            return "ok"

        with Flow("flaky") as flow:
            call_service()
    """, marker=str(marker))
    run_id = load_flow_from_file(str(source)).run(store=db_url).context["flow_run_id"]
    os.remove(source)

    state = resume_run(run_id, store=db_url)

    assert state.is_successful()
    assert list(state.result.values())[0].result == "ok"


def test_source_that_no_longer_loads_is_a_clear_error(tmp_path, calls, db_url):
    source = write_flow(tmp_path / "chain.py", CHAIN, broken=True)
    run_id = load_flow_from_file(str(source)).run(store=db_url).context["flow_run_id"]
    source.write_text("this is not python(\n")

    with pytest.raises(FlowLoadError, match="chain.py"):
        resume_run(run_id, store=db_url)


def test_resuming_a_live_run_is_refused(tmp_path, db_url):
    import socket

    import pendulum

    from cairnflow.statestore.base import FlowRunRecord, Transition

    store = open_store(db_url)
    now = pendulum.now("UTC")
    store.record_flow_run(FlowRunRecord("live-run", "f", "h", {}, None, None, None, None, 1,
                                        os.getpid(), socket.gethostname(), now))
    store.record_transitions([Transition("live-run", 1, None, "f", None, "Running", None, now)])

    with pytest.raises(RunStillAliveError, match="still running"):
        resume_run("live-run", store=store)


def test_resume_of_an_unknown_run_is_a_clear_error(db_url):
    with pytest.raises(UnknownRunError):
        resume_run("no-such-run", store=db_url)


def test_structure_changes_are_reported_in_the_run_logs(tmp_path, calls, db_url):
    source = write_flow(tmp_path / "chain.py", CHAIN, broken=True)
    run_id = load_flow_from_file(str(source)).run(store=db_url).context["flow_run_id"]
    changed = CHAIN.replace("range(1, 11)", "range(1, 12)").replace(
        "BROKEN = {broken}", "BROKEN = False")
    write_flow(source, changed, broken=False)

    resume_run(run_id, store=db_url)

    messages = [e.message for e in open_store(db_url).get_logs(run_id)]
    assert any("structure changed" in m for m in messages)
    assert any("step11-1" in m for m in messages)
