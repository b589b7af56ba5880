"""The local agent with real processes: agents, deployed runs, kills, labels, cancel.

Every test runs on a SQLite file and on a fresh PostgreSQL schema (``db`` is
parametrized; the PostgreSQL half is skipped without ``CAIRNFLOW_TEST_PG_URL``, and
is in ``-m slow``), and on PostgreSQL two simulated hosts (``CAIRNFLOW_HOSTNAME``)
share the runs of four agents: that test is PostgreSQL's in the default run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from cairnflow.client import Client
from cairnflow.registration import host_name
from cairnflow.statestore import actions, open_store

REPO = Path(__file__).resolve().parent.parent
HOST = host_name()

COUNTING_FLOW = textwrap.dedent("""
    import os
    from cairnflow import Flow, Parameter, context, task

    @task
    def touch(n):
        with open(os.environ["SIDE_EFFECTS"], "a") as f:
            f.write(context.get("flow_run_id") + "\\n")
        return n

    with Flow("count") as flow:
        touch(Parameter("n", default=0))
""")

SLOW_FLOW = textwrap.dedent("""
    import time
    from cairnflow import Flow, task

    @task
    def first():
        return 1

    @task(log_stdout=True)
    def hang(x):
        print("about to hang", flush=True)
        time.sleep(120)

    with Flow("slow") as flow:
        hang(first())
""")

FLAKY_FLOW = textwrap.dedent("""
    import os
    from cairnflow import Flow, task

    @task
    def step_one():
        with open(os.environ["SIDE_EFFECTS"], "a") as f:
            f.write("one\\n")
        return 1

    @task
    def step_two(x):
        if not os.path.exists(os.environ["FIXED"]):
            raise ValueError("not fixed yet")
        return x + 1

    with Flow("flaky") as flow:
        step_two(step_one())
""")


@pytest.fixture
def env(tmp_path):
    values = {**os.environ, "PYTHONPATH": str(REPO), "SIDE_EFFECTS": str(tmp_path / "side"),
              "FIXED": str(tmp_path / "fixed"), "CAIRNFLOW_HOME": str(tmp_path / "home"),
              "NO_COLOR": "1"}
    return values


def _store_url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_fresh_url")()
    return f"sqlite:///{tmp_path / 'cairnflow.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def db(request, tmp_path):
    return _store_url(request, tmp_path)


@pytest.fixture
def pg_db(pg_fresh_url):
    return pg_fresh_url()


def register(tmp_path, db, source, name, labels=None):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    from cairnflow.runner.loading import load_flow_from_file

    flow = load_flow_from_file(str(path))
    return flow.register(store=db, labels=labels, no_url=True)


class Agents:
    """Agent processes started for a test; stopped (and their output kept) at the end."""

    def __init__(self, tmp_path, db, env):
        self.tmp_path, self.db, self.env = tmp_path, db, env
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *labels, limit=10, fork=False, host=None):
        out = self.tmp_path / f"agent-{len(self.procs)}.log"
        command = [sys.executable, "-m", "cairnflow.cli", "agent", "local", "start",
                   "--db", self.db, "--limit", str(limit)]
        for label in labels:
            command += ["--label", label]
        env = {**self.env, "CAIRNFLOW_AGENT_FORK": "1" if fork else "0"}
        if host is not None:  # a simulated host: its agent and the runs it deploys
            env["CAIRNFLOW_HOSTNAME"] = host
        with open(out, "wb") as f:
            proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env)
        self.procs.append((proc, out))
        return proc

    def output(self) -> str:
        return "".join(path.read_text() for _, path in self.procs)

    def stop(self):
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _ in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def agents(tmp_path, db, env):
    made = Agents(tmp_path, db, env)
    yield made
    made.stop()


def wait_for(predicate, timeout=60.0, what="the condition", every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def states(db, ids):
    store = open_store(db)
    try:
        wanted = set(ids)  # one query, not one a run: 1,000 runs' agents must not wait on us
        return {r.id: r.state for r in store.list_runs() if r.id in wanted}
    finally:
        store.close()


def all_finished(db, ids):
    return all(s in ("Success", "Failed", "Crashed", "Cancelled")
               for s in states(db, ids).values())


def create_runs(db, flow_id, count, **kwargs):
    store = open_store(db)
    try:
        return [actions.create_flow_run(store, flow_id, {"n": i}, **kwargs)
                for i in range(count)]
    finally:
        store.close()


def side_effects(tmp_path) -> Counter:
    path = tmp_path / "side"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_the_seed_story_an_agent_runs_a_run_asked_for_and_logs_the_seed_lines(
        tmp_path, db, env, agents, monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    flow_id = register(tmp_path, db, COUNTING_FLOW, "count")
    agents.start()
    client = Client(db)  # Prefect 1's way for a script to ask for a run
    run_id = client.create_flow_run(flow_id=flow_id, parameters={"n": 7})
    wait_for(lambda: all_finished(db, [run_id]), what="the run to end")
    info = client.get_flow_run_info(run_id)
    assert info.state.is_successful() and info.flow_id == flow_id
    assert info.parameters == {"n": 7}
    assert {t.task_slug: t.state.is_successful() for t in info.task_runs} == {
        "n": True, "touch-1": True}
    store = open_store(db)
    assert [t.state for t in store.get_history(run_id) if t.task_slug is None] == [
        "Scheduled", "Submitted", "Running", "Success"]
    store.close()
    assert side_effects(tmp_path) == {run_id: 1}
    out = agents.output()
    assert "Found 1 flow run(s) to submit for execution." in out
    assert f"Deploying flow run {run_id}" in out


def four_agents_run_each_once(tmp_path, db, agents, count, hosts=(None,), timeout=180):
    """``count`` runs created, then 4 agents (spread over ``hosts``) run them: each
    exactly once (counted by the flow's side effect), all Success; the hosts that
    ran them."""
    flow_id = register(tmp_path, db, COUNTING_FLOW, "count", labels=["shared"])
    ids = create_runs(db, flow_id, count)
    for i in range(4):
        # forked run processes: many runs in seconds
        agents.start("shared", fork=True, host=hosts[i % len(hosts)])
    wait_for(lambda: all_finished(db, ids), timeout=timeout, what=f"{count} runs to end",
             every=1.0)
    assert set(states(db, ids).values()) == {"Success"}
    assert side_effects(tmp_path) == {rid: 1 for rid in ids}
    assert "database is locked" not in agents.output()
    assert "Traceback" not in agents.output()
    store = open_store(db)
    try:
        return Counter(store.get_flow_run(rid).host for rid in ids)
    finally:
        store.close()


def test_four_agents_run_each_of_many_runs_exactly_once(tmp_path, db, env,
                                                       monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    made = Agents(tmp_path, db, env)
    try:
        four_agents_run_each_once(tmp_path, db, made, 40)
    finally:
        made.stop()


@pytest.mark.slow  # on SQLite; PostgreSQL's 1,000 runs: the two-hosts test below
def test_four_agents_and_a_thousand_runs_each_exactly_once(tmp_path, env, monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    db = f"sqlite:///{tmp_path / 'cairnflow.db'}"
    made = Agents(tmp_path, db, env)
    try:
        four_agents_run_each_once(tmp_path, db, made, 1000, timeout=900)
    finally:
        made.stop()


def test_agents_on_two_hosts_split_the_runs_of_one_postgres_store(
        tmp_path, pg_db, env, monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    made = Agents(tmp_path, pg_db, env)
    try:
        hosts = four_agents_run_each_once(tmp_path, pg_db, made, 40, hosts=("host-a", "host-b"))
    finally:
        made.stop()
    assert set(hosts) == {"host-a", "host-b"}, hosts


@pytest.mark.slow  # four agents, 1,000 runs, one PostgreSQL store, two hosts
def test_agents_on_two_hosts_split_a_thousand_runs_none_twice(
        tmp_path, pg_db, env, monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    made = Agents(tmp_path, pg_db, env)
    try:
        hosts = four_agents_run_each_once(tmp_path, pg_db, made, 1000,
                                          hosts=("host-a", "host-b"), timeout=900)
    finally:
        made.stop()
    assert set(hosts) == {"host-a", "host-b"} and sum(hosts.values()) == 1000, hosts


def test_a_run_waits_for_an_agent_with_all_its_labels(tmp_path, db, env, agents,
                                                     monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    flow_id = register(tmp_path, db, COUNTING_FLOW, "count")
    [plain] = create_runs(db, flow_id, 1)
    [gpu] = create_runs(db, flow_id, 1, labels=[HOST, "gpu"])
    agents.start()
    wait_for(lambda: all_finished(db, [plain]), what="the unlabelled run")
    time.sleep(1.5)  # several claim rounds: the gpu run must still wait
    assert states(db, [gpu]) == {gpu: "Scheduled"}
    agents.start("gpu")
    wait_for(lambda: all_finished(db, [gpu]), what="the gpu run")
    assert side_effects(tmp_path) == {plain: 1, gpu: 1}


# Forked: run processes forked from the agent itself lost their records (SQLite's
# lock bookkeeping does not survive a fork) and their tasks ran again; now they
# are forked from a fork server that never opens the store.
@pytest.mark.parametrize("fork", [False, True], ids=["spawned", "forked"])
def test_a_killed_agent_loses_nothing_and_runs_nothing_twice(tmp_path, db, env, agents,
                                                            monkeypatch, fork):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    flow_id = register(tmp_path, db, COUNTING_FLOW, "count")
    ids = create_runs(db, flow_id, 12)
    victim = agents.start(limit=3, fork=fork)
    wait_for(lambda: side_effects(tmp_path), what="the first run")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    agents.start(fork=fork)
    wait_for(lambda: all_finished(db, ids), timeout=180, what="12 runs to end")
    assert set(states(db, ids).values()) == {"Success"}
    assert side_effects(tmp_path) == {rid: 1 for rid in ids}


def running_pid(db, run_id):
    store = open_store(db)
    try:
        info = store.get_flow_run(run_id)
        hanging = any(t.task_slug.startswith("hang") and t.state == "Running"
                      for t in store.get_task_runs(run_id))
        return info.pid if info.state == "Running" and hanging else None
    finally:
        store.close()


def test_a_deployed_process_killed_leaves_its_run_crashed_with_its_output(
        tmp_path, db, env, agents):
    flow_id = register(tmp_path, db, SLOW_FLOW, "slow")
    agents.start()
    run_id = actions_create(db, flow_id)
    pid = wait_for(lambda: running_pid(db, run_id), what="the run to hang")
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: states(db, [run_id])[run_id] == "Crashed" and stored(db, run_id),
             what="the run to be closed as Crashed")
    store = open_store(db)
    messages = "\n".join(e.message for e in store.get_logs(run_id))
    assert "killed by signal 9" in messages and "about to hang" in messages
    assert {t.task_slug: t.state for t in store.get_task_runs(run_id)} == {
        "first-1": "Success", "hang-1": "Crashed"}
    store.close()


def actions_create(db, flow_id, parameters=None):
    store = open_store(db)
    try:
        return actions.create_flow_run(store, flow_id, parameters or {})
    finally:
        store.close()


def stored(db, run_id):
    store = open_store(db)
    try:
        return store.get_flow_run(run_id).stored_state == "Crashed"
    finally:
        store.close()


def test_cancel_stops_a_running_run_and_its_running_task_runs(tmp_path, db, env, agents):
    flow_id = register(tmp_path, db, SLOW_FLOW, "slow")
    agents.start()
    run_id = actions_create(db, flow_id)
    wait_for(lambda: running_pid(db, run_id), what="the run to hang")
    store = open_store(db)
    assert actions.cancel_run(store, run_id) == "Running"
    store.close()
    wait_for(lambda: states(db, [run_id])[run_id] == "Cancelled", timeout=30,
             what="the run to be Cancelled")
    store = open_store(db)
    assert "Running" not in {t.state for t in store.get_task_runs(run_id)}
    assert store.get_flow_run(run_id).ended_at is not None
    store.close()


def test_resume_through_an_agent_reruns_only_what_did_not_succeed(tmp_path, db, env,
                                                                  agents, monkeypatch):
    monkeypatch.setenv("SIDE_EFFECTS", env["SIDE_EFFECTS"])
    flow_id = register(tmp_path, db, FLAKY_FLOW, "flaky")
    agents.start()
    run_id = actions_create(db, flow_id)
    wait_for(lambda: all_finished(db, [run_id]), what="the first attempt")
    assert states(db, [run_id]) == {run_id: "Failed"}
    (tmp_path / "fixed").write_text("yes")
    store = open_store(db)
    actions.request_resume(store, run_id)
    store.close()
    wait_for(lambda: states(db, [run_id])[run_id] == "Success", what="the resumed run")
    assert (tmp_path / "side").read_text() == "one\n"  # step_one did not run again
    store = open_store(db)
    assert store.get_flow_run(run_id).attempt == 2
    store.close()


CHILD = textwrap.dedent("""
    from cairnflow import Flow, Parameter, task

    @task
    def double(n):
        return 2 * n

    with Flow("child") as flow:
        double(Parameter("n"))
""")


def test_a_parent_flow_runs_a_registered_child_through_the_agent(tmp_path, db, env,
                                                                 agents, monkeypatch):
    from cairnflow import Flow
    from cairnflow.statestore import open_store
    from cairnflow.tasks.prefect import (
        StartFlowRun, create_flow_run, get_task_run_result, wait_for_flow_run,
    )

    register(tmp_path, db, CHILD, "child")
    monkeypatch.setenv("CAIRNFLOW_DB_URL", db)
    agents.start()
    with Flow("parent") as parent:
        child_id = create_flow_run(flow_name="child", parameters={"n": 21})
        done = wait_for_flow_run(child_id, raise_final_state=True)
        value = get_task_run_result(child_id, "double-1", upstream_tasks=[done])
        started = StartFlowRun(flow_name="child", parameters={"n": 1}, wait=True)()
    state = parent.run()
    assert state.is_successful(), state
    assert state.result[value].result == 42
    store = open_store(db)
    child = store.get_flow_run(state.result[child_id].result)
    assert (child.flow_name, child.state, child.parameters) == ("child", "Success", {"n": 21})
    assert store.get_flow_run(state.result[started].result).state == "Success"
    store.close()


@pytest.mark.parametrize("how", ["sigint-ignored-by-the-shell", "sigterm"])
def test_an_agent_started_in_the_background_stops_on_sigint_and_on_sigterm(
        tmp_path, env, how):
    """`nohup cairnflow agent local start &` starts it with SIGINT ignored; systemd
    and `kill` send SIGTERM: either way it stops at once, saying so."""
    db = f"sqlite:///{tmp_path / 'cairnflow.db'}"
    out = tmp_path / "agent.log"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairnflow.cli", "agent", "local", "start", "--db", db],
            stdout=f, stderr=subprocess.STDOUT, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        wait_for(lambda: "waiting for flow runs" in out.read_text(), what="the agent to start")
        proc.send_signal(signal.SIGINT if how.startswith("sigint") else signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping (runs it started keep running)" in out.read_text()
    assert "Traceback" not in out.read_text()
