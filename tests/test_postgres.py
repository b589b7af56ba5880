"""The PostgreSQL store against a real server: its schema, the CLI and the client on
it, real processes killed with SIGKILL, four processes at once, and two simulated
hosts (``CAIRNFLOW_HOSTNAME``) sharing one store.

The contract suite (``test_store_contract.py``) and the resume tests
(``test_resume.py``) run on PostgreSQL too; these are what only PostgreSQL has.
Every test is skipped without ``CAIRNFLOW_TEST_PG_URL`` (and fails under CI).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import crashkit
from cairnflow import Flow, task
from cairnflow.cli.app import app
from cairnflow.exceptions import SchemaVersionError, StoreError
from cairnflow.statestore import open_store
from cairnflow.statestore import sqlite_policy
from cairnflow.statestore.postgres import PostgresStore
from cairnflow.statestore.serialize import load


def sql(url: str, query: str, params=()) -> list[tuple]:
    """Rows of ``query`` on the store's database (its schema), through plain psycopg."""
    with psycopg.connect("postgresql://" + url.partition("://")[2]) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description is not None else []


@task
def add(x, y):
    return x + y


@task
def big():
    return b"x" * (3 << 20)


def small_flow() -> Flow:
    with Flow("pg-small") as flow:
        add(add(1, 2), 3)
    return flow


# -- the schema -----------------------------------------------------------------------


def test_a_new_database_gets_the_schema_with_bigint_keys(pg_empty_url):
    PostgresStore(pg_empty_url).close()
    assert sql(pg_empty_url, "SELECT version FROM schema_version") == [
        (sqlite_policy.SCHEMA_VERSION,)]
    kinds = dict(sql(pg_empty_url, """
        SELECT table_name || '.' || column_name, data_type FROM information_schema.columns
        WHERE table_schema = current_schema()"""))
    for column in ("flow_run.pk", "task_run.id", "state_transition.id",
                   "state_transition.task_run_id", "task_result.task_run_id", "log_record.id",
                   "flow_run.process_start"):
        assert kinds[column] == "bigint", column


def test_row_ids_need_and_get_64_bits(pg_url):
    # Row ids are pk << 32 | seq: past 32 bits from the first run on; a pk near 2**31
    # (the most a signed 64-bit id leaves it) uses all 63.
    sql(pg_url, "SELECT setval(pg_get_serial_sequence('flow_run', 'pk'), 2000000000)")
    state = small_flow().run(store=pg_url)
    assert state.is_successful()
    run_id = state.context["flow_run_id"]
    [(pk,)] = sql(pg_url, "SELECT pk FROM flow_run WHERE id = %s", (run_id,))
    assert pk == 2000000001
    ids = [row[0] for row in sql(pg_url, "SELECT id FROM state_transition ORDER BY id")]
    assert all(i >> 32 == pk for i in ids) and len(ids) == 8  # 2 per run, 3 per task
    with _reader(pg_url) as store:
        assert [t.state for t in store.get_task_runs(run_id)] == ["Success", "Success"]
        assert load(store.load_result(run_id, "add-2")) == 6


class _reader:
    def __init__(self, url):
        self.store = open_store(url, readonly=True)

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        self.store.close()


def test_a_newer_schema_is_refused_and_left_alone(pg_url):
    sql(pg_url, "UPDATE schema_version SET version = 99")
    try:
        with pytest.raises(SchemaVersionError, match="newer cairnflow"):
            PostgresStore(pg_url)
        with pytest.raises(SchemaVersionError):
            PostgresStore(pg_url, readonly=True)
        assert sql(pg_url, "SELECT version FROM schema_version") == [(99,)]
    finally:
        sql(pg_url, "UPDATE schema_version SET version = %s", (sqlite_policy.SCHEMA_VERSION,))


def test_a_schema_1_database_is_upgraded_to_2(pg_empty_url):
    PostgresStore(pg_empty_url).close()
    with psycopg.connect("postgresql://" + pg_empty_url.partition("://")[2]) as conn:
        conn.execute("ALTER TABLE flow_run DROP COLUMN process_start")
        conn.execute("UPDATE schema_version SET version = 1")
    assert small_flow().run(store=pg_empty_url).is_successful()
    assert sql(pg_empty_url, "SELECT version FROM schema_version") == [(2,)]
    assert sql(pg_empty_url, "SELECT count(*) FROM flow_run WHERE process_start IS NOT NULL") \
        == [(1,)]


def test_someone_elses_tables_are_refused(pg_empty_url):
    sql(pg_empty_url, "CREATE TABLE flow (id int)")
    with pytest.raises(StoreError, match="not a cairnflow store"):
        PostgresStore(pg_empty_url)


def test_a_reader_looking_while_another_process_commits_the_schema_sees_all_or_none(
        pg_empty_url):
    # The crash loop's defect: a reader asked "is there a schema_version?" (no),
    # then the first child committed the schema, then the reader asked "are there
    # tables like cairnflow's?" (yes) and refused the store as someone else's.
    from cairnflow.statestore import postgres_policy as policy

    conninfo = "postgresql://" + pg_empty_url.partition("://")[2]
    creator = psycopg.connect(conninfo)
    with creator.cursor() as cur:
        policy._create_schema(cur)
        cur.execute("INSERT INTO schema_version (id, version) VALUES (1, 2)")

    class CommitsAfterFirstStatement:
        def __init__(self, cur):
            self.cur, self.first = cur, True

        def execute(self, *args):
            self.cur.execute(*args)
            if self.first:
                self.first = False
                creator.commit()  # the other process commits right now

        def __getattr__(self, name):
            return getattr(self.cur, name)

    with psycopg.connect(conninfo) as reader, reader.cursor() as cur:
        assert policy.stored_version(CommitsAfterFirstStatement(cur), "db") is None
        reader.rollback()
        assert policy.stored_version(cur, "db") == 2
    creator.close()


KILLED_CREATING = """
import sys, time
from pathlib import Path
from cairnflow.statestore import postgres_policy as policy
from cairnflow.statestore.postgres import PostgresStore

created = policy._create_schema

def create_then_hang(cur):
    created(cur)
    Path(sys.argv[2]).write_text("tables created")
    time.sleep(600)

policy._create_schema = create_then_hang
PostgresStore(sys.argv[1])
"""


def test_a_process_killed_while_creating_the_schema_leaves_nothing(pg_empty_url, tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "created"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CREATING, pg_empty_url, str(marker)])
    try:
        crashkit.wait_until(marker.exists, timeout=60, what="the child to create the tables")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        store = PostgresStore(pg_empty_url)  # not refused, and does not wait for a lock
        store.close()
    finally:
        child.kill()
    assert sql(pg_empty_url, "SELECT version FROM schema_version") == [
        (sqlite_policy.SCHEMA_VERSION,)]


def test_a_reader_of_a_database_without_schema_sees_an_empty_store(pg_empty_url):
    store = PostgresStore(pg_empty_url, readonly=True)
    assert store.list_runs() == [] and store.list_flows() == []
    with pytest.raises(StoreError, match="read-only"):
        store.heartbeat("x")
    store.close()
    assert sql(pg_empty_url, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                             "current_schema()") == [(0,)]


def test_large_results_live_in_the_database(pg_url, cairnflow_home):
    with Flow("pg-big") as flow:
        big()
    state = flow.run(store=pg_url)
    assert state.is_successful()
    [(size, has_path)] = sql(pg_url, "SELECT size, path IS NOT NULL FROM task_result")
    assert size > 3 << 20 and not has_path
    assert not (cairnflow_home / "results").exists()
    with _reader(pg_url) as store:
        assert load(store.load_result(state.context["flow_run_id"], "big-1")) == b"x" * (3 << 20)


def test_a_store_survives_a_server_side_disconnect(pg_url):
    store = PostgresStore(pg_url)
    assert store.list_runs() == []
    [(pid,)] = sql(pg_url, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                           "'cairnflow' AND pid <> pg_backend_pid() ORDER BY backend_start DESC "
                           "LIMIT 1")
    sql(pg_url, "SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError):
        store.list_runs()  # that call's connection was cut: a clear error
    assert store.list_runs() == []  # the next one reconnects
    store.close()


# -- the CLI and the client -----------------------------------------------------------

FLOW_FILE = """
    import os
    from cairnflow import Flow, Parameter, task, unmapped

    @task
    def double(x):
        with open(os.environ["PG_CLI_CALLS"], "a") as f:
            f.write(f"double {x}\\n")
        return 2 * x

    @task
    def fail_on(x, bad):
        if x == bad and not os.environ.get("PG_CLI_FIXED"):
            raise ValueError("bad value")
        return x

    with Flow("pg-cli") as flow:
        bad = Parameter("bad", default=-1)
        fail_on.map(double.map([1, 2, 3]), unmapped(bad))
"""


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_the_cli_runs_lists_shows_and_resumes_on_postgres(tmp_path, pg_url, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PG_CLI_CALLS", str(calls))
    flow_file = tmp_path / "pgflow.py"
    flow_file.write_text(textwrap.dedent(FLOW_FILE))
    failed = cli("run", str(flow_file), "--param", "bad=4", "--db", pg_url)
    assert failed.exit_code == 1, failed.output
    listed = cli("runs", "ls", "--json", "--db", pg_url)
    assert listed.exit_code == 0, listed.output
    [run] = json.loads(listed.stdout)
    assert (run["flow_name"], run["state"]) == ("pg-cli", "Failed")
    shown = json.loads(cli("runs", "show", "last", "--json", "--db", pg_url).stdout)
    assert {(t["slug"], t["map_index"]): t["state"] for t in shown["tasks"]}[
        ("fail_on-1", 1)] == "Failed"
    result = cli("runs", "result", run["id"][:8], "double-1", "--map-index", "2", "--json",
                 "--db", pg_url)
    assert (result.exit_code, json.loads(result.stdout)) == (0, 6)
    flows = cli("flows", "ls", "--db", pg_url)
    assert flows.exit_code == 0 and "pg-cli" in flows.stdout
    history = json.loads(cli("runs", "history", "last", "--json", "--db", pg_url).stdout)
    assert history[0] == {**history[0], "task": None, "state": "Running"}
    monkeypatch.setenv("PG_CLI_FIXED", "1")
    resumed = cli("resume", "last", "--db", pg_url)
    assert resumed.exit_code == 0, resumed.output
    shown = json.loads(cli("runs", "show", "last", "--json", "--db", pg_url).stdout)
    assert (shown["state"], shown["attempt"]) == ("Success", 2)
    assert calls.read_text().split("\n") == ["double 1", "double 2", "double 3", ""]


def test_the_client_reads_a_postgres_store(pg_url):
    client_module = pytest.importorskip("cairnflow.client")  # the cli helper's, as it lands
    state = small_flow().run(store=pg_url)
    client = client_module.Client(db=pg_url)
    [run] = client.runs()
    assert (run.id, run.state) == (state.context["flow_run_id"], "Success")
    assert client.run("last").result("add-2") == 6


def test_cairnflow_db_url_names_the_postgres_store(pg_url, monkeypatch):
    monkeypatch.setenv("CAIRNFLOW_DB_URL", pg_url)
    assert small_flow().run().is_successful()
    with _reader(pg_url) as store:
        assert [r.flow_name for r in store.list_runs()] == ["pg-small"]


# -- real processes -------------------------------------------------------------------


@pytest.mark.slow  # the default run has SQLite's loop (test_crash) and the schema kill below
def test_random_sigkills_on_postgres_never_lose_or_repeat_committed_work(
        tmp_path, cairnflow_home, pg_fresh_url):
    from test_crash import kill_resume_and_check

    # Small, to keep the default run short; the 30-kill loop below is the thorough one.
    spec = crashkit.LayeredFlow("pgcrash20", chain=6, fan=4, items=4, glue=4, big=2)
    kill_resume_and_check(tmp_path, cairnflow_home, spec, min_kills=4,
                          new_url=lambda workdir: pg_fresh_url())


@pytest.mark.slow
def test_thirty_random_sigkills_across_a_200_task_flow_on_postgres(
        tmp_path, cairnflow_home, pg_fresh_url):
    from test_crash import kill_resume_and_check

    spec = crashkit.LayeredFlow("pgcrash200", chain=60, fan=60, items=40, glue=67, big=2)
    [loop] = kill_resume_and_check(tmp_path, cairnflow_home, spec, min_kills=30,
                                   new_url=lambda workdir: pg_fresh_url())
    assert loop.kills >= 30


def test_four_processes_share_one_postgres_database(tmp_path, cairnflow_home, pg_empty_url):
    from test_concurrency import four_processes_share

    four_processes_share(pg_empty_url, tmp_path, cairnflow_home)


# -- two hosts --------------------------------------------------------------------------

TWO_HOSTS = """
    import os
    import time
    from pathlib import Path

    from cairnflow import Flow, task

    EXECUTIONS = Path({executions!r})

    def executed(what):
        with open(EXECUTIONS, "a") as f:
            f.write(f"{{what}} {{os.environ['CAIRNFLOW_HOSTNAME']}}\\n")

    @task
    def prepare():
        executed("prepare")
        return 20

    @task
    def slow(x):
        executed("slow")
        if os.environ["CAIRNFLOW_HOSTNAME"] == "host-a":
            time.sleep(600)  # killed here
        return x + 1

    @task
    def finish(x):
        executed("finish")
        return x * 2

    with Flow("two-hosts") as flow:
        finish(slow(prepare()))
"""


def test_a_run_killed_on_host_a_is_crashed_on_host_b_once_stale_and_b_resumes_it(
        tmp_path, cairnflow_home, pg_url, monkeypatch):
    executions = tmp_path / "executions.txt"
    flow_file = tmp_path / "two_hosts.py"
    flow_file.write_text(textwrap.dedent(TWO_HOSTS.format(executions=str(executions))))
    stale = 3.0
    env = {"CAIRNFLOW_STALE_SECONDS": str(stale)}
    host_a = crashkit.child_env(cairnflow_home, CAIRNFLOW_HOSTNAME="host-a", **env)
    host_b = crashkit.child_env(cairnflow_home, CAIRNFLOW_HOSTNAME="host-b", **env)
    # This process looks from host B.
    monkeypatch.setenv("CAIRNFLOW_HOSTNAME", "host-b")
    monkeypatch.setenv("CAIRNFLOW_STALE_SECONDS", str(stale))

    child = crashkit.spawn("run", flow_file, pg_url, tmp_path, host_a)
    store = open_store(pg_url, readonly=True)
    try:
        def slow_running():
            runs = store.list_runs()
            if runs and any(t.task_slug == "slow-1" and t.state == "Running"
                            for t in store.get_task_runs(runs[0].id)):
                return runs[0].id
            return None

        run_id = crashkit.wait_until(slow_running, timeout=60, what="slow-1 Running on host A")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        seen = store.get_flow_run(run_id)
        assert seen.host == "host-a" and seen.stored_state == "Running"
        age = (crashkit_now() - seen.updated_at).total_seconds()
        if age < stale - 0.5:  # its heartbeat is still fresh: from here it looks alive
            assert seen.state == "Running"
        crashkit.wait_until(lambda: store.get_flow_run(run_id).state == "Crashed",
                            timeout=60, what="host B to see the run Crashed")

        resumed = crashkit.spawn("resume", run_id, pg_url, tmp_path, host_b)
        assert resumed.wait() == 0, resumed.output()
        run = store.get_flow_run(run_id)
        assert (run.state, run.attempt, run.host) == ("Success", 2, "host-b")
        assert executions.read_text().split("\n") == [
            "prepare host-a", "slow host-a", "slow host-b", "finish host-b", ""]
        assert load(store.load_result(run_id, "finish-1")) == 42
    finally:
        child.kill()
        store.close()


def crashkit_now():
    import pendulum

    return pendulum.now("UTC")


def test_the_server_reads_a_postgres_store_created_after_it_started(pg_empty_url):
    from starlette.testclient import TestClient

    from cairnflow.server.app import create_app

    with TestClient(create_app(pg_empty_url, hosts=["testserver"])) as client:
        assert client.get("/api/runs").json() == []  # no schema yet: an empty store
        state = small_flow().run(store=pg_empty_url)
        [run] = client.get("/api/runs").json()
        assert (run["id"], run["state"]) == (state.context["flow_run_id"], "Success")
        shown = client.get(f"/api/runs/{run['id']}").json()
        assert {t["slug"]: t["state"] for t in shown["tasks"]} == {
            "add-1": "Success", "add-2": "Success"}


# -- claims ------------------------------------------------------------------------------


def test_a_claim_skips_runs_a_peer_holds_and_takes_them_once_the_peer_lets_go(pg_url):
    # SKIP LOCKED: rows a peer holds mid-claim are skipped, not waited for, so one
    # empty claim does not mean an empty queue (the agent looks again).
    import pendulum

    from cairnflow.statestore.base import AgentRecord, FlowVersionRecord, NewFlowRun
    from cairnflow.statestore.serialize import dump

    store = PostgresStore(pg_url)
    now = pendulum.now("UTC")
    vid, _ = store.record_flow_version(FlowVersionRecord(
        flow_name="claims", flow_hash="h", parameters=[], labels=["here"], graph={},
        created_at=now, flow_blob=dump("flow")))
    store.create_flow_runs([NewFlowRun(id=rid, flow_version_id=vid, parameters={},
                                       parameters_blob=None, labels=["here"],
                                       scheduled_start=now) for rid in ("r1", "r2")])
    store.record_agent(AgentRecord("a1", "a1", ["here"], "h", os.getpid(), now))
    peer = psycopg.connect("postgresql://" + pg_url.partition("://")[2])
    try:
        peer.execute("SELECT pk FROM flow_run WHERE id IN ('r1', 'r2') FOR UPDATE")
        assert store.claim_flow_runs("a1", ["here"], 10, now) == []  # did not wait
        peer.rollback()  # the peer's claim did not happen (an agent killed mid-claim)
        assert [r.id for r in store.claim_flow_runs("a1", ["here"], 10, now)] == ["r1", "r2"]
    finally:
        peer.close()
        store.close()


HELLO = """
from cairnflow import Flow, Parameter, task

@task(log_stdout=True)
def say_hello(name):
    print(f"Hello, {name}!")

with Flow("pg-hello") as flow:
    say_hello(Parameter("name", default="world"))
"""


def test_the_server_and_an_agent_run_a_registered_flow_on_postgres(tmp_path, pg_empty_url):
    # The orchestration story with real processes on PostgreSQL: register, then
    # `cairnflow server start --db URL` and `cairnflow agent local start --db URL`,
    # Run through the JSON API, and the run's page and logs read back from the server.
    import urllib.request

    import browserkit

    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "hello.py").write_text(HELLO)
    env = browserkit.child_env(home)
    registered = browserkit.subprocess.run(
        [browserkit.sys.executable, "-m", "cairnflow.cli", "register", "hello.py",
         "--db", pg_empty_url], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    server, base = browserkit.start_server(pg_empty_url, home, tmp_path)
    agent = browserkit.Process(["agent", "local", "start", "--db", pg_empty_url], env,
                               tmp_path / "agent.log", tmp_path)
    try:
        def get(path):
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                body = resp.read().decode()
                return json.loads(body) if path.startswith("/api/") else body

        [flow] = get("/api/flows")
        request = urllib.request.Request(
            f"{base}/api/flows/{flow['id']}/runs", method="POST",
            data=json.dumps({"parameters": {"name": "Marvin"}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            run_id = json.loads(resp.read())["id"]
        browserkit.wait_until(lambda: get(f"/api/runs/{run_id}")["state"] == "Success",
                              60, "the agent to run it")
        assert "Hello, Marvin!" in json.dumps(get(f"/api/runs/{run_id}/logs"))
        assert run_id in get(f"/flow-run/{run_id}")
        [seen] = get("/api/agents")
        assert seen["host"]
        assert f"Deploying flow run {run_id}" in agent.output()
    finally:
        agent.stop()
        server.stop()
