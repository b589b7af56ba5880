"""The Python client reads what the CLI reads, through the same query API, and
never writes; the README's client examples run as written."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cairnflow import Flow, get_run_logger, task
from cairnflow.cli import app
from cairnflow.client import Client
from cairnflow.exceptions import ResultNotFoundError, UnknownRunError

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
    import shutil
    import subprocess
    import sys

    source = (ROOT / "examples" / "nightly_report.py").read_text()
    (tmp_path / "nightly.py").write_text(  # last night's run, with the story's fix
        source.replace('order["amount"]', 'order.get("amount", 0)'))
    done = subprocess.run([sys.executable, "-m", "cairnflow.cli", "run", "nightly.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    blocks = readme_client_blocks()
    assert blocks, "the README has no client examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(textwrap.dedent(block), "README.md", "exec"), namespace)
