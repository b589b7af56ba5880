"""The cairnflow CLI through Typer's CliRunner, each test on a fresh database file.

Flows are written to tmp_path as files, run with ``cairnflow run``; records the
engine would take long to produce (crashed runs, ids that share a prefix, a
corrupt result) are written through the store API directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap

import pendulum
import pytest
from typer.testing import CliRunner

from cairnflow.cli import app, options
from cairnflow.cli.progress import Tracker
from cairnflow.statestore.base import FlowRunRecord, Transition
from cairnflow.statestore.serialize import SerializedResult, dump
from cairnflow.statestore.sqlite import SQLiteStore

HOST = socket.gethostname()
T0 = pendulum.datetime(2024, 5, 1, 12, 0, 0, tz="UTC")

ADD_FLOW = """
from cairnflow import Flow, Parameter, task, get_run_logger

@task
def add(x, y=1):
    get_run_logger().info("adding %s and %s", x, y)
    return x + y

with Flow("adder") as flow:
    x = Parameter("x", default=1)
    total = add(x, y=2)
"""

FAILING_FLOW = """
from cairnflow import Flow, task

@task
def boom():
    raise ValueError("it broke")

@task
def after(x):
    return x

with Flow("failing") as flow:
    after(boom())
"""


# -- helpers ------------------------------------------------------------------------


def make_runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # Click < 8.2 mixes stderr in by default
    except TypeError:
        return CliRunner()


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "cli.db")


@pytest.fixture
def cli(db):
    """Invoke ``cairnflow ARGS --db <fresh file>`` and return the result."""
    runner = make_runner()

    def invoke(*args: str, use_db: bool = True):
        argv = [*args, "--db", db] if use_db else list(args)
        return runner.invoke(app, argv)

    return invoke


def write_flow(tmp_path, source: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def err(result) -> str:
    return result.stderr


def assert_one_clear_line(result, status: int, *fragments: str) -> None:
    assert result.exit_code == status, (result.stdout, err(result))
    lines = err(result).strip().splitlines()
    assert len(lines) == 1, err(result)
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in err(result) + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def run_json(cli, *args):
    result = cli(*args, "--json")
    assert result.exit_code == 0, err(result)
    return json.loads(result.stdout)


def record(db: str, run_id: str, *, flow="etl", pid=None, at=T0, state=None,
           tasks=(), results=None) -> None:
    """Write a run straight into the store: ``tasks`` are (slug, map_index, state)."""
    store = SQLiteStore(db)
    try:
        store.record_flow_run(FlowRunRecord(
            id=run_id, flow_name=flow, flow_hash="h", parameters={"n": 1},
            parameters_blob=dump({"n": 1}), source_file=None, source_variable=None,
            flow_blob=None, attempt=1, pid=os.getpid() if pid is None else pid, host=HOST,
            started_at=at))
        transitions = [Transition(run_id, 1, None, flow, None, "Running", "Running flow.", at)]
        for slug, map_index, task_state in tasks:
            transitions.append(Transition(run_id, 1, slug, slug.rsplit("-", 1)[0], map_index,
                                          "Running", "Starting task run.", at))
            if task_state != "Running":
                result = (results or {}).get((slug, map_index))
                transitions.append(Transition(
                    run_id, 1, slug, slug.rsplit("-", 1)[0], map_index, task_state,
                    f"{slug} is {task_state}", at.add(seconds=1), result))
        if state is not None:
            transitions.append(Transition(run_id, 1, None, flow, None, state, f"run {state}",
                                          at.add(seconds=2)))
        store.record_transitions(transitions)
    finally:
        store.close()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def finished_run(tmp_path, cli, db) -> str:
    """A successful run of ADD_FLOW; returns its id."""
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--param", "x=40")
    assert result.exit_code == 0, err(result)
    return run_json(cli, "runs", "ls")[0]["id"]


# -- the app ------------------------------------------------------------------------------


def test_version_prints_the_package_version(cli):
    from cairnflow import __version__

    result = cli("--version", use_db=False)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"cairnflow {__version__}"


@pytest.mark.parametrize("command", [
    ["run"], ["resume"], ["runs", "ls"], ["runs", "show"], ["runs", "history"],
    ["runs", "result"], ["runs", "logs"], ["runs", "rm"], ["runs", "prune"], ["flows", "ls"],
])
def test_every_command_has_help_with_an_example_db_option_and_exit_codes(cli, command):
    result = cli(*command, "--help", use_db=False)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Example: cairnflow " + " ".join(command) in text
    assert "--db" in text
    assert "Exit status: 0" in text


# -- run ---------------------------------------------------------------------------------


def test_run_succeeds_with_plain_progress_and_exit_0(tmp_path, cli):
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--param", "x=40")
    assert result.exit_code == 0, err(result)
    lines = result.stdout.splitlines()
    assert "add-1 Success Task run succeeded." in lines
    [run] = run_json(cli, "runs", "ls")
    assert f"Run {run['id']}: Success - All reference tasks succeeded." in lines
    assert f"cairnflow runs show {run['id']} --db " in result.stdout
    assert "resume" not in result.stdout


def test_run_failure_exits_1_and_lists_failed_tasks_and_the_resume_command(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, FAILING_FLOW))
    assert result.exit_code == 1
    [run] = run_json(cli, "runs", "ls")
    assert run["state"] == "Failed"
    out = result.stdout
    assert "boom-1 Failed Error during execution of task: ValueError('it broke')" in out
    assert "2 task runs failed:" in out
    assert f"cairnflow resume {run['id']} --db {db}" in out
    assert f"cairnflow runs show {run['id']} --db {db}" in out


def test_run_decodes_param_values_as_json_else_keeps_strings(tmp_path, cli):
    flow = write_flow(tmp_path, """
        from cairnflow import Flow, Parameter, task

        @task
        def echo(a, b, c, d, e):
            return [a, b, c, d, e]

        with Flow("params") as flow:
            echo(Parameter("a"), Parameter("b"), Parameter("c"), Parameter("d"),
                 Parameter("e"))
    """)
    result = cli("run", flow, "--param", "a=3", "--param", 'b={"k": [1, 2]}',
                 "--param", "c=hello", "--param", "d=x=y", "--param", "e=")
    assert result.exit_code == 0, err(result)
    assert run_json(cli, "runs", "result", "last", "echo-1") == [
        3, {"k": [1, 2]}, "hello", "x=y", ""]
    assert run_json(cli, "runs", "show", "last")["parameters"] == {
        "a": 3, "b": {"k": [1, 2]}, "c": "hello", "d": "x=y", "e": ""}


def test_run_with_threads_executor_runs_mapped_children(tmp_path, cli):
    flow = write_flow(tmp_path, """
        from cairnflow import Flow, task

        @task
        def double(x):
            return 2 * x

        with Flow("mapper") as flow:
            double.map([1, 2, 3])
    """)
    result = cli("run", flow, "--executor", "threads")
    assert result.exit_code == 0, err(result)
    for i in range(3):
        assert f"double-1[{i}] Success Task run succeeded." in result.stdout
    assert run_json(cli, "runs", "result", "last", "double-1", "--map-index", "2") == 6


def test_run_ignores_an_unguarded_flow_run_call_in_the_file(tmp_path, cli):
    result = cli("run", write_flow(tmp_path, ADD_FLOW + "\nflow.run(x=5)\n"))
    assert result.exit_code == 0, err(result)
    assert err(result) == ""  # the loader's warning is not for CLI users
    assert len(run_json(cli, "runs", "ls")) == 1


def test_run_announces_the_run_id_first(tmp_path, cli):
    result = cli("run", write_flow(tmp_path, ADD_FLOW))
    [run] = run_json(cli, "runs", "ls")
    assert result.stdout.splitlines()[0] == f"Run {run['id']} of flow 'adder' started (attempt 1)."


def test_run_restores_the_engine_console_log_level(tmp_path, cli):
    from cairnflow.runner import logs

    before = logs.console_handler().level
    cli("run", write_flow(tmp_path, ADD_FLOW))
    assert logs.console_handler().level == before


# -- run: bad input ----------------------------------------------------------------------


@pytest.fixture
def existing_db(finished_run, db) -> str:
    """The path of a database that holds one run, for byte-for-byte comparisons."""
    return db


def test_param_without_equals_is_a_usage_error_and_writes_nothing(tmp_path, cli, existing_db):
    before = sha256(existing_db)
    result = cli("run", write_flow(tmp_path, ADD_FLOW, "other.py"), "--param", "x40")
    assert_one_clear_line(result, 2, "--param 'x40'", "KEY=VALUE")
    assert sha256(existing_db) == before


def test_param_without_equals_creates_no_database(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--param", "oops")
    assert result.exit_code == 2
    assert not os.path.exists(db)


def test_missing_required_parameter_is_a_usage_error_and_records_no_run(tmp_path, cli,
                                                                       existing_db):
    flow = write_flow(tmp_path, """
        from cairnflow import Flow, Parameter, task

        @task
        def hello(name):
            print(name)

        with Flow("greeter") as flow:
            hello(Parameter("name"))
    """, "greeter.py")
    before = sha256(existing_db)
    result = cli("run", flow)
    assert_one_clear_line(result, 2, "'name'", "--param name=VALUE")
    assert sha256(existing_db) == before


def test_unknown_parameter_is_a_usage_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--param", "nope=1")
    assert_one_clear_line(result, 2, "no parameter 'nope'", "x")
    assert not os.path.exists(db)


def test_missing_flow_file_is_a_clear_error(tmp_path, cli, db):
    result = cli("run", str(tmp_path / "missing.py"))
    assert_one_clear_line(result, 1, "no such file", "missing.py")
    assert not os.path.exists(db)


def test_file_without_a_flow_is_a_clear_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, "x = 1\n"))
    assert_one_clear_line(result, 1, "defines no Flow")
    assert not os.path.exists(db)


def test_file_that_raises_while_loading_is_a_clear_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, "import nothing_here_at_all\n"))
    assert_one_clear_line(result, 1, "ModuleNotFoundError", "line 1")
    assert not os.path.exists(db)


TWO_FLOWS = """
from cairnflow import Flow, task

@task
def one():
    return 1

with Flow("first") as first:
    one()

with Flow("second") as second:
    one()
"""


def test_several_flows_without_a_variable_is_a_clear_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, TWO_FLOWS))
    assert_one_clear_line(result, 1, "several flows", "first, second", "flow.py:VARIABLE")
    assert not os.path.exists(db)


def test_file_colon_variable_picks_one_of_several_flows(tmp_path, cli):
    result = cli("run", write_flow(tmp_path, TWO_FLOWS) + ":second")
    assert result.exit_code == 0, err(result)
    assert run_json(cli, "runs", "ls")[0]["flow_name"] == "second"


def test_dask_executor_without_dask_is_a_clear_error(tmp_path, cli, db):
    import importlib.util

    if importlib.util.find_spec("distributed") is not None:
        pytest.skip("Dask is installed")
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--executor", "dask")
    assert_one_clear_line(result, 1, "cairnflow[dask]")
    assert not os.path.exists(db)


def test_dask_address_with_another_executor_is_a_usage_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--executor", "threads",
                 "--dask-address", "tcp://127.0.0.1:1")
    assert_one_clear_line(result, 2, "--dask-address needs --executor dask")
    assert not os.path.exists(db)


def test_dask_address_from_the_environment_only_serves_the_dask_executor(
        tmp_path, cli, monkeypatch):
    monkeypatch.setenv("CAIRNFLOW_DASK_ADDRESS", "tcp://127.0.0.1:1")
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--executor", "threads")
    assert result.exit_code == 0, err(result)


def test_unknown_executor_is_a_usage_error(tmp_path, cli, db):
    result = cli("run", write_flow(tmp_path, ADD_FLOW), "--executor", "warp")
    assert result.exit_code == 2
    assert not os.path.exists(db)


# -- resume ----------------------------------------------------------------------------------

ETL = """
import os
from cairnflow import Flow, task

BROKEN = {broken}
CALLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.txt")

def note(name):
    with open(CALLS, "a") as fh:
        fh.write(name + "\\n")

@task
def extract():
    note("extract")
    return [1, 2, 3]

@task
def transform(xs):
    note("transform")
    if BROKEN:
        raise ValueError("bug in transform")
    return [10 * x for x in xs]

@task
def load(xs):
    note("load")
    return sum(xs)

with Flow("etl") as flow:
    load(transform(extract()))
"""


def calls(tmp_path) -> list[str]:
    return (tmp_path / "calls.txt").read_text().split()


def test_resume_after_fixing_the_flow_file_reruns_only_what_did_not_succeed(tmp_path, cli):
    path = write_flow(tmp_path, ETL.format(broken=True))
    first = cli("run", path)
    assert first.exit_code == 1
    assert calls(tmp_path) == ["extract", "transform"]
    run_id = run_json(cli, "runs", "ls")[0]["id"]

    write_flow(tmp_path, ETL.format(broken=False))
    resumed = cli("resume", run_id[:8])
    assert resumed.exit_code == 0, (resumed.stdout, err(resumed))
    assert calls(tmp_path) == ["extract", "transform", "transform", "load"]
    assert f"Resuming run {run_id} of flow 'etl' (attempt 2)" in resumed.stdout
    assert "transform-1 Success" in resumed.stdout
    assert "extract-1" not in resumed.stdout  # not run again, so not reported
    assert f"Run {run_id}: Success" in resumed.stdout
    shown = run_json(cli, "runs", "show", run_id)
    assert (shown["state"], shown["attempt"]) == ("Success", 2)
    assert run_json(cli, "runs", "result", run_id, "load-1") == 60


def test_resume_uses_the_saved_copy_of_the_flow_when_its_file_is_gone(tmp_path, cli):
    flag = tmp_path / "ready.flag"
    path = write_flow(tmp_path, f"""
        import os
        from cairnflow import Flow, task

        @task
        def wait_for_flag():
            if not os.path.exists({str(flag)!r}):
                raise RuntimeError("not ready")
            return "ready"

        with Flow("waiter") as flow:
            wait_for_flag()
    """)
    assert cli("run", path).exit_code == 1
    os.remove(path)
    flag.touch()
    result = cli("resume", "last")
    assert result.exit_code == 0, (result.stdout, err(result))
    assert "saved at its first run" in err(result)
    assert run_json(cli, "runs", "result", "last", "wait_for_flag-1") == "ready"


def test_resume_of_a_failed_run_that_still_fails_exits_1(tmp_path, cli):
    cli("run", write_flow(tmp_path, ETL.format(broken=True)))
    result = cli("resume", "last")
    assert result.exit_code == 1
    assert "transform-1 Failed" in result.stdout
    assert "Resume it with: cairnflow resume" in result.stdout


def test_resume_of_a_run_that_succeeded_says_so_and_exits_0(cli, finished_run):
    result = cli("resume", "last")
    assert result.exit_code == 0, err(result)
    assert f"Run {finished_run} already succeeded; there is nothing to resume." in result.stdout
    assert run_json(cli, "runs", "show", finished_run)["attempt"] == 1


def test_resume_of_a_live_run_is_refused(cli, db):
    record(db, "live-run")  # this process, fresh heartbeat: alive
    before = sha256(db)
    result = cli("resume", "live-run")
    assert_one_clear_line(result, 1, "still running", "live-run")
    assert sha256(db) == before


def test_resume_of_an_unknown_run_is_a_clear_error(cli, db):
    result = cli("resume", "nope")
    assert_one_clear_line(result, 1, "no run matches 'nope'")
    assert not os.path.exists(db)


# -- runs ls ---------------------------------------------------------------------------------


def test_runs_ls_json_on_a_missing_database_is_an_empty_list_and_creates_nothing(cli, db):
    result = cli("runs", "ls", "--json")
    assert result.exit_code == 0, err(result)
    assert result.stdout.strip() == "[]"
    assert not os.path.exists(db)


def test_runs_ls_table_on_a_missing_database_is_empty(cli, db, cairnflow_home):
    result = cli("runs", "ls")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split()[:3] == ["id", "flow", "state"]
    assert "(no runs)" in result.stdout
    assert not os.path.exists(db)
    assert cli("runs", "ls", use_db=False).exit_code == 0
    assert not cairnflow_home.exists()  # the default home is not created by a read


def test_runs_ls_json_shape(cli, finished_run):
    [run] = run_json(cli, "runs", "ls")
    assert {"id", "flow_name", "state", "started_at", "ended_at"} <= set(run)
    assert (run["id"], run["flow_name"], run["state"]) == (finished_run, "adder", "Success")
    for key in ("started_at", "ended_at"):
        assert pendulum.parse(run[key]).utcoffset() is not None
        assert run[key].endswith("+00:00")


def test_runs_ls_table_shows_short_id_flow_state_and_attempt(cli, finished_run):
    result = cli("runs", "ls")
    row = result.stdout.splitlines()[1].split()
    assert row[:3] == [finished_run[:8], "adder", "Success"]
    assert row[-1] == "1"


def test_runs_ls_is_newest_first_with_filters_and_limit(cli, db):
    record(db, "a-old", flow="etl", at=T0, state="Success")
    record(db, "b-mid", flow="etl", at=T0.add(minutes=1), state="Failed")
    record(db, "c-new", flow="report", at=T0.add(minutes=2), state="Success")
    assert [r["id"] for r in run_json(cli, "runs", "ls")] == ["c-new", "b-mid", "a-old"]
    assert [r["id"] for r in run_json(cli, "runs", "ls", "--flow", "etl")] == ["b-mid", "a-old"]
    assert [r["id"] for r in run_json(cli, "runs", "ls", "--state", "failed")] == ["b-mid"]
    assert [r["id"] for r in run_json(cli, "runs", "ls", "--limit", "1")] == ["c-new"]
    assert len(run_json(cli, "runs", "ls", "--limit", "0")) == 3


def test_runs_ls_unknown_state_is_a_usage_error(cli, db):
    result = cli("runs", "ls", "--state", "happy")
    assert_one_clear_line(result, 2, "'happy' is not a state", "Success")


# -- runs show -------------------------------------------------------------------------------


def test_runs_show_json_shape(cli, finished_run):
    shown = run_json(cli, "runs", "show", finished_run[:6])
    assert {"id", "flow_name", "state", "parameters", "attempt", "tasks"} <= set(shown)
    assert (shown["id"], shown["flow_name"], shown["state"], shown["attempt"]) == (
        finished_run, "adder", "Success", 1)
    assert shown["parameters"] == {"x": 40}
    tasks = {t["slug"]: t for t in shown["tasks"]}
    assert set(tasks) == {"x", "add-1"}
    add = tasks["add-1"]
    assert {"slug", "name", "state", "map_index", "attempts", "started_at", "ended_at",
            "message"} <= set(add)
    assert (add["name"], add["state"], add["map_index"], add["attempts"]) == (
        "add", "Success", None, 1)
    assert add["started_at"].endswith("+00:00") and add["ended_at"].endswith("+00:00")


def test_runs_show_table_lists_task_runs(cli, finished_run):
    result = cli("runs", "show", "last")
    assert result.exit_code == 0
    out = result.stdout
    assert f"run         {finished_run}" in out
    assert "parameters  {\"x\": 40}" in out
    header = next(line for line in out.splitlines() if line.startswith("slug "))
    assert header.split()[:4] == ["slug", "state", "attempts", "start"]
    assert any(line.split()[:3] == ["add-1", "Success", "1"] for line in out.splitlines())


def test_runs_show_unknown_run_is_a_clear_error_and_changes_nothing(cli, existing_db):
    before = sha256(existing_db)
    result = cli("runs", "show", "zzzz")
    assert_one_clear_line(result, 1, "no run matches 'zzzz'")
    assert sha256(existing_db) == before


def test_runs_show_on_a_missing_database_says_no_such_run(cli, db):
    result = cli("runs", "show", "abc")
    assert_one_clear_line(result, 1, "no run matches 'abc'")
    assert not os.path.exists(db)


def test_ambiguous_prefix_is_a_clear_error(cli, db):
    record(db, "abc123-one", state="Success")
    record(db, "abc456-two", state="Success")
    before = sha256(db)
    result = cli("runs", "show", "abc")
    assert_one_clear_line(result, 1, "'abc' is ambiguous")
    assert sha256(db) == before
    assert run_json(cli, "runs", "show", "abc4")["id"] == "abc456-two"


def test_runs_show_summarises_many_mapped_children_but_json_has_them_all(cli, db):
    children = [("work-1", i, "Failed" if i == 7 else "Success") for i in range(50)]
    record(db, "mapped-run", tasks=[("work-1", None, "Success"), *children], state="Failed")
    table = cli("runs", "show", "mapped-run").stdout
    assert "[50 mapped children]" in table
    assert "49 Success, 1 Failed (--all lists every child)" in table
    assert "work-1[7]" in table  # unsuccessful children are listed
    assert "work-1[8]" not in table
    full = cli("runs", "show", "mapped-run", "--all").stdout
    assert "work-1[8]" in full
    tasks = run_json(cli, "runs", "show", "mapped-run")["tasks"]
    assert len(tasks) == 51
    assert [t["map_index"] for t in tasks[1:]] == list(range(50))


def test_runs_show_presents_a_dead_runs_running_tasks_as_crashed(cli, db, dead_pid):
    record(db, "dead-run", pid=dead_pid, tasks=[("a-1", None, "Success"),
                                                 ("b-1", None, "Running")])
    shown = run_json(cli, "runs", "show", "dead-run")
    assert shown["state"] == "Crashed"
    assert [(t["slug"], t["state"]) for t in shown["tasks"]] == [
        ("a-1", "Success"), ("b-1", "Crashed")]
    assert "cairnflow resume dead-run" in cli("runs", "show", "dead-run").stdout


# -- runs history ----------------------------------------------------------------------------


def test_runs_history_json_shape(cli, finished_run):
    history = run_json(cli, "runs", "history", finished_run)
    for entry in history:
        assert {"task", "map_index", "state", "timestamp", "message"} <= set(entry)
        assert entry["timestamp"].endswith("+00:00")
    assert (history[0]["task"], history[0]["state"]) == (None, "Running")
    assert (history[-1]["task"], history[-1]["state"]) == (None, "Success")
    assert [e["state"] for e in history if e["task"] == "add-1"] == [
        "Pending", "Running", "Success"]


def test_runs_history_of_one_task(cli, finished_run):
    history = run_json(cli, "runs", "history", "last", "--task", "add-1")
    assert {e["task"] for e in history} == {"add-1"}
    table = cli("runs", "history", "last", "--task", "add-1").stdout
    assert "add-1" in table and "Success" in table


def test_runs_history_of_an_unknown_task_is_a_clear_error(cli, finished_run):
    result = cli("runs", "history", "last", "--task", "nope-1")
    assert_one_clear_line(result, 1, "has no task 'nope-1'", "add-1")


# -- runs result -----------------------------------------------------------------------------


def test_runs_result_prints_repr_or_json(cli, finished_run):
    assert cli("runs", "result", "last", "add-1").stdout == "42\n"
    assert run_json(cli, "runs", "result", "last", "add-1") == 42


def test_runs_result_of_a_value_json_cannot_represent(tmp_path, cli):
    cli("run", write_flow(tmp_path, """
        from cairnflow import Flow, task

        @task
        def make():
            return {1, 2}

        with Flow("sets") as flow:
            make()
    """))
    assert cli("runs", "result", "last", "make-1").stdout == "{1, 2}\n"
    result = cli("runs", "result", "last", "make-1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == "{1, 2}"  # SPEC: shown as a string


def test_runs_result_of_a_task_not_checkpointed_is_a_clear_error(tmp_path, cli, db):
    cli("run", write_flow(tmp_path, """
        from cairnflow import Flow, task

        @task(checkpoint=False)
        def secret():
            return "s3cret"

        with Flow("private") as flow:
            secret()
    """))
    before = sha256(db)
    result = cli("runs", "result", "last", "secret-1")
    assert_one_clear_line(result, 1, "'secret-1'", "no checkpointed result", "checkpoint=False")
    assert sha256(db) == before


def test_runs_result_of_an_unknown_slug_names_the_tasks(cli, finished_run):
    result = cli("runs", "result", "last", "nope-1")
    assert_one_clear_line(result, 1, "has no task 'nope-1'", "add-1")


def test_runs_result_of_a_failed_task_says_how_it_ended(tmp_path, cli):
    cli("run", write_flow(tmp_path, FAILING_FLOW))
    result = cli("runs", "result", "last", "boom-1")
    assert_one_clear_line(result, 1, "ended Failed")


def test_runs_result_of_a_mapped_parent_asks_for_map_index(cli, db):
    record(db, "m", tasks=[("work-1", None, "Mapped"), ("work-1", 0, "Success")],
           results={("work-1", 0): dump("zero")}, state="Success")
    assert_one_clear_line(cli("runs", "result", "m", "work-1"), 1, "--map-index")
    assert run_json(cli, "runs", "result", "m", "work-1", "--map-index", "0") == "zero"
    assert_one_clear_line(cli("runs", "result", "m", "work-1", "--map-index", "5"), 1,
                          "no mapped child 5")


def test_corrupt_result_is_a_clear_error_and_changes_nothing(cli, db):
    garbage = SerializedResult(b"\x80\x05this is not a pickle")
    record(db, "corrupt", tasks=[("load-1", None, "Success")],
           results={("load-1", None): garbage}, state="Success")
    before = sha256(db)
    for args in (["runs", "result", "corrupt", "load-1"],
                 ["runs", "result", "corrupt", "load-1", "--json"]):
        result = cli(*args)
        assert_one_clear_line(result, 1, "cannot load the result of task 'load-1'")
    assert sha256(db) == before


# -- runs logs -------------------------------------------------------------------------------


def test_runs_logs_prints_time_level_task_message(cli, finished_run):
    result = cli("runs", "logs", "last")
    assert result.exit_code == 0
    [line] = [line for line in result.stdout.splitlines() if "adding" in line]
    assert line.split()[3:] == ["INFO", "add-1", "adding", "40", "and", "2"]
    only = cli("runs", "logs", "last", "--task", "add-1").stdout.strip().splitlines()
    assert len(only) == 1 and "adding 40 and 2" in only[0]
    [entry] = run_json(cli, "runs", "logs", "last", "--task", "add-1")
    assert (entry["level"], entry["task"], entry["message"]) == ("INFO", "add-1",
                                                               "adding 40 and 2")


# -- runs rm and prune -----------------------------------------------------------------------


def test_runs_rm_deletes_runs_and_says_how_many(cli, db):
    record(db, "one", state="Success")
    record(db, "two", state="Failed", at=T0.add(minutes=1))
    result = cli("runs", "rm", "one", "two")
    assert result.exit_code == 0, err(result)
    assert result.stdout.strip() == "Removed 2 runs."
    assert run_json(cli, "runs", "ls") == []


def test_runs_rm_of_an_unknown_run_deletes_nothing(cli, db):
    record(db, "one", state="Success")
    before = sha256(db)
    assert_one_clear_line(cli("runs", "rm", "one", "nope"), 1, "no run matches 'nope'")
    assert sha256(db) == before


def test_runs_rm_refuses_a_live_run_without_force(cli, db):
    record(db, "live")
    assert_one_clear_line(cli("runs", "rm", "live"), 2, "still running", "--force")
    assert cli("runs", "rm", "live", "--force").stdout.strip() == "Removed 1 run."


def test_runs_prune_removes_finished_runs_older_than_the_duration(cli, db):
    old = pendulum.now("UTC").subtract(days=40)
    record(db, "old-done", at=old, state="Success")
    record(db, "old-live", at=old)
    record(db, "new-done", state="Success", at=pendulum.now("UTC").subtract(hours=1))
    result = cli("runs", "prune", "--older-than", "30d")
    assert result.exit_code == 0, err(result)
    assert result.stdout.startswith("Removed 1 finished run started before ")
    assert sorted(r["id"] for r in run_json(cli, "runs", "ls")) == ["new-done", "old-live"]
    assert cli("runs", "prune", "--older-than", "30m").stdout.startswith("Removed 1 ")


@pytest.mark.parametrize("bad", ["30", "d", "30 days", "-1d", "1.5h", "30y"])
def test_runs_prune_with_a_bad_duration_is_a_usage_error(cli, existing_db, bad):
    before = sha256(existing_db)
    assert_one_clear_line(cli("runs", "prune", "--older-than", bad), 2, "not a duration")
    assert sha256(existing_db) == before


def test_runs_prune_on_a_missing_database_creates_nothing(cli, db):
    assert cli("runs", "prune", "--older-than", "12h").stdout.startswith("Removed 0 ")
    assert not os.path.exists(db)


# -- flows ls --------------------------------------------------------------------------------


def test_flows_ls_json_and_table(cli, db):
    record(db, "r1", flow="etl", state="Success")
    record(db, "r2", flow="etl", state="Failed", at=T0.add(minutes=1))
    record(db, "r3", flow="report", state="Success")
    flows = run_json(cli, "flows", "ls")
    assert [(f["name"], f["runs"], f["last_run_id"], f["last_state"]) for f in flows] == [
        ("etl", 2, "r2", "Failed"), ("report", 1, "r3", "Success")]
    assert flows[0]["last_run_at"].endswith("+00:00")
    table = cli("flows", "ls").stdout.splitlines()
    assert table[1].split()[:4] == ["etl", "2", "r2", "Failed"]


def test_flows_ls_on_a_missing_database_is_empty(cli, db):
    assert run_json(cli, "flows", "ls") == []
    assert not os.path.exists(db)


# -- the database: reads never write, and bad databases -------------------------------------

READS = [
    ["runs", "ls"], ["runs", "ls", "--json"], ["runs", "show", "last"],
    ["runs", "show", "last", "--json"], ["runs", "history", "last"],
    ["runs", "history", "last", "--json"], ["runs", "result", "last", "add-1"],
    ["runs", "logs", "last"], ["flows", "ls"], ["flows", "ls", "--json"],
    ["resume", "last"],
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_reads_do_not_change_a_byte_of_the_database(cli, existing_db, args):
    before = sha256(existing_db)
    result = cli(*args)
    assert result.exit_code == 0, err(result)
    assert sha256(existing_db) == before


def newer_schema(db: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE schema_version SET version = version + 100")
    conn.close()


@pytest.mark.parametrize("args", [["runs", "ls"], ["runs", "show", "last"],
                                  ["flows", "ls"], ["runs", "prune", "--older-than", "1d"],
                                  ["runs", "rm", "last"], ["resume", "last"]], ids=" ".join)
def test_a_database_from_a_newer_cairnflow_is_refused_unchanged(cli, existing_db, args):
    newer_schema(existing_db)
    before = sha256(existing_db)
    assert_one_clear_line(cli(*args), 1, "newer cairnflow")
    assert sha256(existing_db) == before


def test_running_a_flow_against_a_newer_database_is_refused_unchanged(tmp_path, cli,
                                                                     existing_db):
    newer_schema(existing_db)
    before = sha256(existing_db)
    result = cli("run", write_flow(tmp_path, ADD_FLOW, "again.py"))
    assert_one_clear_line(result, 1, "newer cairnflow")
    assert sha256(existing_db) == before


@pytest.mark.parametrize("args", [["runs", "ls"], ["runs", "show", "x"],
                                  ["runs", "rm", "x"], ["runs", "prune", "--older-than", "1d"]],
                         ids=" ".join)
def test_a_directory_given_as_database_is_a_clear_error(tmp_path, args):
    result = make_runner().invoke(app, [*args, "--db", str(tmp_path)])
    assert_one_clear_line(result, 1, "is a directory")


def test_run_with_a_directory_as_database_is_a_clear_error(tmp_path):
    flow = write_flow(tmp_path, ADD_FLOW)
    result = make_runner().invoke(app, ["run", flow, "--db", str(tmp_path)])
    assert_one_clear_line(result, 1, "is a directory")


def test_a_file_that_is_not_a_database_is_a_clear_error_and_unchanged(tmp_path, cli, db):
    with open(db, "wb") as fh:
        fh.write(b"not a database, just some bytes" * 100)
    before = sha256(db)
    assert_one_clear_line(cli("runs", "ls"), 1, db)
    assert sha256(db) == before


def test_a_sqlite_file_of_another_application_is_refused(cli, db):
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.close()
    before = sha256(db)
    assert_one_clear_line(cli("runs", "ls"), 1, "not a cairnflow store")
    assert sha256(db) == before


def test_a_locked_database_is_a_clear_error(cli, existing_db, monkeypatch):
    from cairnflow.cli import opening  # where the read path takes it from

    monkeypatch.setattr(opening, "READ_LOCK_SECONDS", 0.2)
    holder = sqlite3.connect(existing_db, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli("runs", "ls")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_clear_line(result, 1, "locked")


def test_an_unknown_url_scheme_is_a_clear_error(cli):
    result = make_runner().invoke(app, ["runs", "ls", "--db", "mysql://host/db"])
    assert_one_clear_line(result, 1, "unknown store URL scheme 'mysql'")


def test_an_unreachable_postgres_server_is_a_clear_error(cli):
    result = make_runner().invoke(
        app, ["runs", "ls", "--db", "postgresql+psycopg://me:secret@127.0.0.1:1/db"])
    assert_one_clear_line(result, 1, "cannot connect to the cairnflow database")
    assert "secret" not in result.stdout + err(result)


def test_the_default_database_is_under_cairnflow_home(tmp_path, cairnflow_home):
    runner = make_runner()
    result = runner.invoke(app, ["run", write_flow(tmp_path, ADD_FLOW)])
    assert result.exit_code == 0, err(result)
    assert (cairnflow_home / "cairnflow.db").exists()
    assert "--db" not in result.stdout  # the commands to copy need no --db
    [run] = json.loads(runner.invoke(app, ["runs", "ls", "--json"]).stdout)
    assert run["flow_name"] == "adder"


# -- progress -------------------------------------------------------------------------------


class RecordingView:
    def __init__(self):
        self.finished_runs = []
        self.said = []
        self.last = None

    def say(self, text):
        self.said.append(text)

    def finished(self, label, state, message, child):
        self.finished_runs.append((label, state))

    def update(self, counts, done, total):
        self.last = (counts, done, total)


def transition(slug, state, map_index=None):
    name = slug.split("-")[0] if slug else "my flow"
    return Transition("run-1", 1, slug, name, map_index, state, None, T0)


def test_tracker_counts_states_and_grows_the_total_with_mapped_children():
    view = RecordingView()
    tracker = Tracker(view, tasks=2)
    tracker(transition(None, "Running"))
    tracker(transition("work-1", "Mapped"))
    tracker(transition("work-1", "Running", 0))
    tracker(transition("work-1", "Success", 0))
    tracker(transition("work-1", "Running", 1))
    tracker(transition("work-1", "Failed", 1))
    assert tracker.run_id == "run-1"
    assert view.said == ["Run run-1 of flow 'my flow' started (attempt 1)."]
    assert view.last == ({"Mapped": 1, "Success": 1, "Failed": 1}, 3, 4)
    assert view.finished_runs == [("work-1", "Mapped"), ("work-1[0]", "Success"),
                                  ("work-1[1]", "Failed")]
    assert tracker.failures() == [("work-1[1]", "Failed", None)]


def test_tracker_counts_task_runs_a_resume_reuses_as_done():
    view = RecordingView()
    tracker = Tracker(view, tasks=3, reused={("extract-1", None): "Success"}, announce=False)
    tracker(transition("transform-1", "Running"))
    assert view.last == ({"reused": 1, "Running": 1}, 1, 3)
    tracker(transition("extract-1", "Running"))  # a reused task run that runs after all
    assert view.last == ({"Running": 2}, 0, 3)
    assert tracker.ran() == 2
    assert view.said == []
