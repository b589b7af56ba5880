"""The server's orchestration API (registered flows, Run, Cancel, Resume, Delete, agents)
through Starlette's TestClient on a real SQLite file and on PostgreSQL. No agent runs
here: runs stay ``Scheduled`` until the test moves them; the browser tests use a real
agent."""

from __future__ import annotations

import pytest

pytest.importorskip("cairnflow.statestore.actions",
                    reason="orchestration (register, actions, agents) is not in this tree yet")

from starlette.testclient import TestClient  # noqa: E402

from cairnflow import Flow, Parameter, task  # noqa: E402
from cairnflow.server.app import create_app  # noqa: E402
from cairnflow.statestore import open_store  # noqa: E402
from cairnflow.statestore.base import AgentRecord  # noqa: E402

JSON = {"Content-Type": "application/json"}


@task
def greet(name, times):
    return name * times


def greeting_flow() -> Flow:
    with Flow("greeting") as flow:
        greet(Parameter("name"), Parameter("times", default=2))
    return flow


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    """A store on a real SQLite file, and one on a PostgreSQL server (skipped without
    ``CAIRNFLOW_TEST_PG_URL``): the server reads both through the query API."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_fresh_url")()
    return f"sqlite:///{tmp_path / 'cairnflow.db'}"


@pytest.fixture
def flow_id(db):
    return greeting_flow().register(labels=["web-test"], no_url=True, store=db)


@pytest.fixture
def client(db):
    with TestClient(create_app(db, hosts=["testserver"])) as c:
        yield c


def start_run(client, flow_id, **body):
    body.setdefault("parameters", {"name": "Marvin"})
    return client.post(f"/api/flows/{flow_id}/runs", json=body)


def test_flows_list_and_detail(client, flow_id):
    flows = client.get("/api/flows").json()
    assert [f["id"] for f in flows] == [flow_id]
    flow = client.get(f"/api/flows/{flow_id}").json()
    assert flow == flows[0]
    assert {"id", "name", "version", "labels", "parameters", "schedule_active",
            "archived"} <= flow.keys()
    assert flow["name"] == "greeting" and flow["version"] == 1
    assert flow["labels"] == ["web-test"]
    assert {p["name"]: (p["default"], p["required"]) for p in flow["parameters"]} == {
        "name": (None, True), "times": (2, False)}


def test_unknown_flow_is_404(client, flow_id):
    assert client.get("/api/flows/nope").status_code == 404
    resp = client.post("/api/flows/nope/runs", json={"parameters": {"name": "x"}})
    assert resp.status_code == 404
    assert "no registered flow" in resp.json()["detail"]


def test_run_is_created_scheduled_with_its_defaults(client, flow_id):
    resp = start_run(client, flow_id)
    assert resp.status_code == 201
    body = resp.json()
    assert body["state"] == "Scheduled"
    assert body["url"] == f"http://testserver/flow-run/{body['id']}"
    run = client.get(f"/api/runs/{body['id']}").json()
    assert run["state"] == "Scheduled"
    assert run["parameters"] == {"name": "Marvin", "times": 2}
    assert run["labels"] == ["web-test"]


def test_missing_required_parameter_is_422_naming_it(client, flow_id):
    resp = start_run(client, flow_id, parameters={"times": 3})
    assert resp.status_code == 422
    assert "'name'" in resp.json()["detail"]
    assert resp.json()["parameters"] == ["name"]
    assert client.get("/api/runs").json() == []


def test_unknown_parameter_is_422_naming_it(client, flow_id):
    resp = start_run(client, flow_id, parameters={"name": "x", "colour": "red"})
    assert resp.status_code == 422
    assert "'colour'" in resp.json()["detail"]


@pytest.mark.parametrize("body, word", [
    ({"parameters": [1]}, "'parameters'"), ({"labels": "a"}, "'labels'"),
    ({"scheduled_start": "tomorrow"}, "'scheduled_start'"), ({"when": 1}, "'when'"),
])
def test_bad_run_body_is_422_naming_the_field(client, flow_id, body, word):
    resp = client.post(f"/api/flows/{flow_id}/runs", json={"parameters": {"name": "x"}, **body})
    assert resp.status_code == 422
    assert word in resp.json()["detail"]


def test_body_that_is_not_json_is_422(client, flow_id):
    resp = client.post(f"/api/flows/{flow_id}/runs", content="{nope", headers=JSON)
    assert resp.status_code == 422


def test_run_write_refusals_create_nothing(client, flow_id):
    form = client.post(f"/api/flows/{flow_id}/runs", data={"parameters": "x"})
    assert form.status_code == 415
    foreign = client.post(f"/api/flows/{flow_id}/runs", json={"parameters": {"name": "x"}},
                          headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    rebound = client.post(f"/api/flows/{flow_id}/runs", json={"parameters": {"name": "x"}},
                          headers={"Host": "evil.example"})
    assert rebound.status_code == 403
    assert client.get("/api/runs").json() == []


def test_cancel_a_scheduled_run_at_once(client, flow_id):
    run_id = start_run(client, flow_id).json()["id"]
    resp = client.post(f"/api/runs/{run_id}/cancel", json={})
    assert resp.json() == {"id": run_id, "state": "Cancelled"}
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "Cancelled"
    assert client.post("/api/runs/ffffffff/cancel", json={}).status_code == 404


def test_resume_of_a_run_that_has_not_run_is_409(client, flow_id):
    run_id = start_run(client, flow_id).json()["id"]
    resp = client.post(f"/api/runs/{run_id}/resume", json={})
    assert resp.status_code == 409
    assert "has not run yet" in resp.json()["detail"]
    assert client.post("/api/runs/ffffffff/resume", json={}).status_code == 404


def test_resume_of_a_failed_run_queues_it(client, db):
    with Flow("breaks") as flow:
        greet(Parameter("name", default=None), 2)  # None * 2 raises
    state = flow.run(store=db)
    run_id = state.context["flow_run_id"]
    resp = client.post(f"/api/runs/{run_id}/resume", json={})
    assert resp.status_code == 200
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "Scheduled"


def test_delete_a_run(client, flow_id):
    run_id = start_run(client, flow_id).json()["id"]
    assert client.request("DELETE", f"/api/runs/{run_id}", json={}).status_code == 200
    assert client.get(f"/api/runs/{run_id}").status_code == 404


def test_schedule_toggle_validates_its_body(client, flow_id):
    assert client.post(f"/api/flows/{flow_id}/schedule", json={"active": "yes"}).status_code \
        == 422
    resp = client.post(f"/api/flows/{flow_id}/schedule", json={"active": False})
    assert resp.status_code == 200 and resp.json()["schedule_active"] is False
    assert client.post("/api/flows/nope/schedule", json={"active": True}).status_code == 404


def test_agents_list(client, db):
    import os
    import socket

    import pendulum

    assert client.get("/api/agents").json() == []
    store = open_store(db)
    store.record_agent(AgentRecord(id="a-1", name="agent@here", labels=["etl"],
                                   host=socket.gethostname(), pid=os.getpid(),
                                   started_at=pendulum.now("UTC")))
    store.close()
    agents = client.get("/api/agents").json()
    assert [(a["id"], a["name"], a["labels"]) for a in agents] == [("a-1", "agent@here",
                                                                     ["etl"])]
    assert {"id", "name", "labels", "host", "last_seen"} <= agents[0].keys()
    assert "agent@here" in client.get("/agents").text


def test_flow_page_has_a_typed_run_form(client, flow_id):
    html = client.get(f"/flow/{flow_id}").text
    assert 'data-run-form="/api/flows/%s/runs"' % flow_id in html
    assert 'name="times" value="2" data-param data-type="integer"' in html
    assert 'name="name" value="" data-param data-type="auto"' in html
    assert 'class="req"' in html  # the required one is marked
    assert "Parameters as JSON" in html
    assert 'data-slug="greet-1"' in html  # the schematic
    assert client.get("/flow/nope").status_code == 404


def test_dashboard_warns_of_a_run_no_agent_can_take(client, flow_id):
    start_run(client, flow_id)
    html = client.get("/").text
    assert "no live agent has them" in html
    assert "cairnflow agent local start --label web-test" in html
    assert "greeting" in client.get("/flows").text
