"""The Python client reads what the CLI reads, through the same query API, and
writes only the runs Prefect 1's ``create_flow_run`` asks for; the README's client
examples run as written. (An agent running a run asked for through the client:
tests/test_agent.py.)"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pendulum
import pytest
from typer.testing import CliRunner

from cairnflow import Flow, Parameter, get_run_logger, task
from cairnflow.cli import app
from cairnflow.client import Client
from cairnflow.exceptions import (InvalidParametersError, ResultNotFoundError, UnknownFlowError,
                                  UnknownRunError)

ROOT = Path(__file__).resolve().parent.parent


@task
def fetch(region):
    get_run_logger().info("fetched %s", region)
    return {"region": region, "amount": 10}


@task
def total(batch):
    if batch["region"] == "eu":
        raise KeyError("amount")
    return batch["amount"]


@task
def hello():
    return "hi"


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'client.db'}"
    with Flow("greet") as greet:
        hello()
    greet.run(store=url)
    with Flow("nightly") as nightly:
        total.map(fetch.map(["us", "eu", "ap"]))
    nightly.run(store=url)
    return url


def cli_json(db, *args):
    result = CliRunner().invoke(app, [*args, "--json", "--db", db])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_are_newest_first_and_filter_as_the_cli_does(db):
    client = Client(db)
    assert [r.flow_name for r in client.runs()] == ["nightly", "greet"]
    assert [r.id for r in client.runs()] == [r["id"] for r in cli_json(db, "runs", "ls")]
    assert [r.flow_name for r in client.runs(state="failed")] == ["nightly"]
    assert [r.flow_name for r in client.runs(flow_name="greet")] == ["greet"]
    assert len(client.runs(limit=1)) == 1
    with pytest.raises(ValueError, match="is not a state"):
        client.runs(state="meh")


def test_a_run_by_last_or_prefix_with_its_tasks_history_logs_and_results(db):
    client = Client(db)
    run = client.run("last")
    assert client.run(run.id[:8]) == run
    shown = cli_json(db, "runs", "show", "last")
    assert (run.id, run.flow_name, run.state, run.parameters, run.attempt) == (
        shown["id"], shown["flow_name"], shown["state"], shown["parameters"],
        shown["attempt"])
    assert [(t.task_slug, t.map_index, t.state) for t in run.tasks] == [
        (t["slug"], t["map_index"], t["state"]) for t in shown["tasks"]]
    assert run.result("fetch-1[2]") == {"region": "ap", "amount": 10}
    assert run.result("fetch-1", map_index=0) == {"region": "us", "amount": 10}
    assert [t.state for t in run.history("total-1[1]")][-1] == "Failed"
    assert len(run.history()) == len(cli_json(db, "runs", "history", "last"))
    assert [e.message for e in run.logs("fetch-1[1]")] == ["fetched eu"]
    assert [e.level for e in run.logs(level="ERROR")] == [40]
    with pytest.raises(ResultNotFoundError, match="ended Failed"):
        run.result("total-1[1]")


def test_bad_references_are_clear_errors(db):
    client = Client(db)
    with pytest.raises(UnknownRunError, match="no run matches 'zzz'"):
        client.run("zzz")
    with pytest.raises(UnknownRunError, match="no task 'nope-1'"):
        client.run("last").history("nope-1")
    with pytest.raises(ValueError, match="not a log level"):
        client.run("last").logs(level="LOUD")


def test_the_client_never_writes_and_an_absent_store_has_no_runs(tmp_path, db):
    path = Path(db.removeprefix("sqlite:///"))
    before = path.read_bytes()
    client = Client(db)
    client.run("last").result("fetch-1[0]")
    client.flows()
    assert path.read_bytes() == before
    missing = tmp_path / "nothing-here.db"
    assert Client(str(missing)).runs() == [] and not missing.exists()


def test_flows_and_the_default_store(tmp_path, cairnflow_home):
    with Flow("greet") as greet:
        hello()
    greet.run()
    assert [f.name for f in Client().flows()] == ["greet"]
    assert Client().run("last").result("hello-1") == "hi"


def readme_client_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Reading runs from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_client_examples_run_as_written(tmp_path, cairnflow_home, monkeypatch):
    """The README's examples run against a store holding the 3 a.m. story's run."""
    import subprocess
    import sys

    source = (ROOT / "examples" / "nightly_report.py").read_text()
    (tmp_path / "nightly.py").write_text(  # last night's run, with the story's fix
        source.replace('order["amount"]', 'order.get("amount", 0)'))
    done = subprocess.run([sys.executable, "-m", "cairnflow.cli", "run", "nightly.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    registered = subprocess.run([sys.executable, "-m", "cairnflow.cli", "register",
                                 "nightly.py"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)  # for the create_flow_run example
    assert registered.returncode == 0, registered.stdout + registered.stderr
    blocks = readme_client_blocks()
    assert blocks, "the README has no client examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(textwrap.dedent(block), "README.md", "exec"), namespace)


@task
def greet(name, punctuation):
    return f"Hello, {name}{punctuation}"


def test_create_flow_run_asks_for_a_scheduled_run_of_a_registered_flow(tmp_path):
    db = f"sqlite:///{tmp_path / 'orch.db'}"
    with Flow("greeter") as flow:
        greet(Parameter("name"), Parameter("punctuation", default="!"))
    flow_id = flow.register(store=db, labels=["here"], no_url=True)
    client = Client(db)
    run_id = client.create_flow_run(flow_id=flow_id, parameters={"name": "Marvin"})
    by_name = client.create_flow_run(version_group_id="greeter", parameters={"name": "Ford"},
                                     labels=["there"])
    info = client.get_flow_run_info(run_id)
    assert info.id == run_id and info.flow_id == flow_id and info.flow_name == "greeter"
    assert info.parameters == {"name": "Marvin", "punctuation": "!"}  # the default filled in
    assert info.labels == ["here"]
    assert isinstance(info.scheduled_start_time, pendulum.DateTime)  # as Prefect 1's
    assert info.state.is_scheduled() and info.state.message == "Run requested"
    assert info.task_runs == []
    other = client.get_flow_run_info(by_name)
    assert other.flow_id == flow_id and other.labels == ["there"]
    assert {r.id for r in client.runs(state="Scheduled")} == {run_id, by_name}


def test_create_flow_run_refuses_bad_requests_and_creates_nothing(tmp_path):
    db = f"sqlite:///{tmp_path / 'orch.db'}"
    with Flow("greeter") as flow:
        greet(Parameter("name"), Parameter("punctuation", default="!"))
    flow_id = flow.register(store=db, no_url=True)
    client = Client(db)
    with pytest.raises(InvalidParametersError, match="needs parameter 'name'"):
        client.create_flow_run(flow_id=flow_id)
    with pytest.raises(InvalidParametersError, match="no parameter 'nmae'"):
        client.create_flow_run(flow_id=flow_id, parameters={"nmae": "Marvin"})
    with pytest.raises(UnknownFlowError):
        client.create_flow_run(flow_id="no-such-flow")
    with pytest.raises(ValueError, match="exactly one of flow_id and version_group_id"):
        client.create_flow_run()
    assert client.runs() == []


def test_get_flow_run_info_gives_state_objects_judged_as_the_cli_judges(db):
    client = Client(db)
    [nightly] = client.runs(flow_name="nightly")
    info = client.get_flow_run_info(nightly.id[:8])  # a prefix, as every face takes
    assert info.id == nightly.id and info.flow_id is None  # never registered
    assert info.state.is_failed() and info.state.message == nightly.message
    children = {(t.task_slug, t.map_index): t.state for t in info.task_runs
                if t.map_index is not None}
    assert children[("total-1", 1)].is_failed()  # the "eu" batch
    assert children[("total-1", 0)].is_successful()
    assert len(children) == 6
    with pytest.raises(UnknownRunError):
        client.get_flow_run_info("no-such-run")
