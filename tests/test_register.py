"""Registering flows and the write actions every face calls (no agent here)."""

from __future__ import annotations

import socket
import textwrap
from datetime import timedelta

import pendulum
import pytest
from typer.testing import CliRunner

from cairnflow import Flow, Parameter, task
from cairnflow.cli import app
from cairnflow.exceptions import InvalidParametersError, UnknownFlowError
from cairnflow.schedules import IntervalSchedule
from cairnflow.statestore import actions, open_store, queries

HELLO = textwrap.dedent("""
    from cairnflow import Flow, Parameter, task

    @task
    def say_hello(person, greeting):
        print(f"{greeting}, {person}!")

    with Flow("Say hi!") as flow:
        say_hello.map(Parameter("name"), greeting=Parameter("greeting", default="Hello"))

    flow.register()  # as the seed's file does: skipped while cairnflow loads it
""")


@pytest.fixture
def hello_file(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text(HELLO)
    return path


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cairnflow.db'}"


def test_register_from_the_cli_prints_the_flow_url_and_stores_plain_data(hello_file, db,
                                                                        monkeypatch):
    monkeypatch.setenv("CAIRNFLOW_UI_URL", "http://127.0.0.1:9999/")
    result = CliRunner().invoke(app, ["register", str(hello_file), "--label", "etl",
                                      "--db", db])
    assert result.exit_code == 0, result.output
    store = open_store(db)
    [version] = queries.registered_flows(store)
    assert f"Flow URL: http://127.0.0.1:9999/flow/{version.id}\n" in result.output
    shape = queries.flow_version_json(version)
    assert (shape["name"], shape["version"], shape["labels"]) == ("Say hi!", 1, ["etl"])
    assert shape["parameters"] == [
        {"name": "greeting", "default": "Hello", "required": False},
        {"name": "name", "default": None, "required": True}]
    assert (version.source_file, version.source_variable) == (str(hello_file), "flow")
    slugs = {t["slug"]: t for t in version.graph["tasks"]}
    assert slugs["say_hello-1"]["mapped"] and slugs["name"]["parameter"]
    assert {"upstream": "name", "downstream": "say_hello-1", "key": "person", "mapped": True,
            "flattened": False} in version.graph["edges"]
    store.close()


def test_each_register_is_a_new_version_unless_the_idempotency_key_matches(db):
    flow = Flow("f")
    flow.add_task(Parameter("x", default=1))
    first = flow.register(store=db, no_url=True)
    second = flow.register(store=db, no_url=True, idempotency_key="k")
    assert flow.register(store=db, no_url=True, idempotency_key="k") == second
    store = open_store(db)
    assert store.get_flow_version(first).archived
    assert [v.version for v in queries.registered_flows(store)] == [2]
    assert store.get_flow_version(second).labels == [socket.gethostname()]
    store.close()


def test_a_run_of_a_registered_flow_validates_its_parameters(db):
    flow = Flow("p")
    flow.add_task(Parameter("name"))
    flow.add_task(Parameter("n", default=3))
    flow_id = flow.register(store=db, no_url=True)
    store = open_store(db)
    with pytest.raises(InvalidParametersError, match="needs parameter 'name'") as missing:
        actions.create_flow_run(store, flow_id, {"n": 1})
    assert missing.value.names == ["name"]
    with pytest.raises(InvalidParametersError, match="has no parameter 'nmae'"):
        actions.create_flow_run(store, flow_id, {"nmae": "x"})
    with pytest.raises(UnknownFlowError):
        actions.create_flow_run(store, "no-such-id", {})
    assert store.list_runs() == []
    run_id = actions.create_flow_run(store, "p", {"name": "Marvin"})  # by name: the latest
    info = store.get_flow_run(run_id)
    assert (info.state, info.parameters, info.flow_version_id) == (
        "Scheduled", {"name": "Marvin", "n": 3}, flow_id)
    store.close()


def test_cancel_of_a_queued_run_is_at_once_from_the_cli(db):
    flow = Flow("c")
    flow.add_task(Parameter("x", default=1))
    flow_id = flow.register(store=db, no_url=True)
    store = open_store(db)
    run_id = actions.create_flow_run(store, flow_id)
    store.close()
    result = CliRunner().invoke(app, ["runs", "cancel", run_id[:8], "--db", db])
    assert result.exit_code == 0, result.output
    assert result.output == f"Run {run_id} was cancelled.\n"
    store = open_store(db)
    assert [t.state for t in store.get_history(run_id)] == ["Scheduled", "Cancelled"]
    store.close()


def test_a_registered_schedule_makes_its_next_runs_once_and_off_removes_them(db):
    @task
    def tick():
        return 1

    schedule = IntervalSchedule(start_date=pendulum.now("UTC") + timedelta(hours=1),
                                interval=timedelta(hours=1))
    with Flow("ticker", schedule=schedule) as flow:
        tick()
    flow_id = flow.register(store=db, no_url=True)
    store = open_store(db)
    runs = store.list_runs()
    assert len(runs) == 10 and {r.state for r in runs} == {"Scheduled"}
    from cairnflow.agent.scheduling import top_up_schedules

    assert top_up_schedules(store) == 0  # already there: never twice
    assert actions.set_schedule_active(store, flow_id, False) == 10
    assert store.list_runs() == []
    assert not store.get_flow_version(flow_id).schedule_active
    store.close()
