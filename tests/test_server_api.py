"""The server's JSON API and pages through Starlette's TestClient, on a real SQLite file.

Runs are made by the engine (``flow.run(store=...)``) from small flows; the
JSON the API returns is compared with what the CLI prints for ``--json``.
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from cairnflow import Flow, Parameter, get_run_logger, task
from cairnflow.cli import app as cli_app
from cairnflow.server import pages
from cairnflow.server.app import create_app

JSON = {"Content-Type": "application/json"}


@task
def say_hello(person):
    get_run_logger().info("Hello, %s!", person)
    return f"Hello, {person}!"


@task
def inc(x):
    if x == 2:
        raise ValueError("two is <b>bad</b>")
    return x + 1


def hello_flow() -> Flow:
    with Flow("Say hi!") as flow:
        say_hello(Parameter("name", default="World"))
        inc.map([1, 2, 3])
    return flow


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cairnflow.db'}"


@pytest.fixture
def run_id(db):
    state = hello_flow().run(parameters={"name": "Marvin"}, store=db)
    return state.context["flow_run_id"]


@pytest.fixture
def client(db):
    with TestClient(create_app(db, hosts=["testserver"])) as c:
        yield c


def cli_json(db, *args):
    result = CliRunner().invoke(cli_app, [*args, "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# -- reads share the CLI's shapes --------------------------------------------------------


def test_health(client):
    assert client.get("/api/health").json() == {"status": "ok"}


def test_runs_list_is_runs_ls_json(client, db, run_id):
    assert client.get("/api/runs").json() == cli_json(db, "runs", "ls")


def test_runs_list_filters_by_flow_state_and_limit(client, db, run_id):
    hello_flow().run(parameters={"name": "Ford"}, store=db)
    assert len(client.get("/api/runs").json()) == 2
    assert len(client.get("/api/runs?limit=1").json()) == 1
    assert client.get("/api/runs?flow=nope").json() == []
    assert [r["state"] for r in client.get("/api/runs?state=failed").json()] == ["Failed"] * 2
    assert client.get("/api/runs?state=Success").json() == []


def test_run_detail_is_runs_show_json(client, db, run_id):
    body = client.get(f"/api/runs/{run_id}").json()
    assert body == cli_json(db, "runs", "show", run_id)
    assert {"id", "flow_name", "state", "parameters", "attempt", "tasks"} <= body.keys()
    assert body["parameters"] == {"name": "Marvin"}
    child = next(t for t in body["tasks"] if t["slug"] == "inc-1" and t["map_index"] == 1)
    assert child["state"] == "Failed"


def test_run_detail_accepts_a_prefix_and_last(client, run_id):
    assert client.get(f"/api/runs/{run_id[:8]}").json()["id"] == run_id
    assert client.get("/api/runs/last").json()["id"] == run_id


def test_history_is_runs_history_json(client, db, run_id):
    assert client.get(f"/api/runs/{run_id}/history").json() == \
        cli_json(db, "runs", "history", run_id)
    only = client.get(f"/api/runs/{run_id}/history?task=say_hello-1").json()
    assert [t["state"] for t in only] == ["Pending", "Running", "Success"]
    assert {t["task"] for t in only} == {"say_hello-1"}


def test_logs_are_runs_logs_json(client, db, run_id):
    body = client.get(f"/api/runs/{run_id}/logs").json()
    assert body == cli_json(db, "runs", "logs", run_id)
    assert any(e["message"] == "Hello, Marvin!" for e in body)
    errors = client.get(f"/api/runs/{run_id}/logs?level=error").json()
    assert errors and {e["level"] for e in errors} == {"ERROR"}
    mine = client.get(f"/api/runs/{run_id}/logs?task=say_hello-1").json()
    assert [e["message"] for e in mine] == ["Hello, Marvin!"]


def test_empty_store_lists_no_runs(client):
    assert client.get("/api/runs").json() == []


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/runs/{bad}", "/api/runs/{bad}/history",
                                  "/api/runs/{bad}/logs"])
def test_unknown_run_is_404_with_a_json_message(client, run_id, path):
    resp = client.get(path.format(bad="ffffffff-0000"))
    assert resp.status_code == 404
    assert "no run matches 'ffffffff-0000'" in resp.json()["detail"]


def test_unknown_task_is_404_naming_the_tasks(client, run_id):
    resp = client.get(f"/api/runs/{run_id}/logs?task=nope")
    assert resp.status_code == 404
    assert "has no task 'nope'" in resp.json()["detail"]
    assert "say_hello-1" in resp.json()["detail"]


@pytest.mark.parametrize("query, name", [("limit=ten", "limit"), ("limit=-1", "limit"),
                                         ("state=sideways", "state")])
def test_bad_query_parameter_is_422_naming_it(client, query, name):
    resp = client.get(f"/api/runs?{query}")
    assert resp.status_code == 422
    assert f"'{name}'" in resp.json()["detail"]


def test_bad_log_level_is_422_naming_it(client, run_id):
    resp = client.get(f"/api/runs/{run_id}/logs?level=loud")
    assert resp.status_code == 422
    assert "'level'" in resp.json()["detail"]


def test_unknown_api_path_is_a_json_404(client):
    resp = client.get("/api/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["detail"]


def test_foreign_host_header_is_refused(client, run_id):
    for path in ("/", "/api/runs", f"/flow-run/{run_id}"):
        resp = client.get(path, headers={"Host": "evil.example:8080"})
        assert resp.status_code == 403, path
        assert "not this server's" in resp.json()["detail"]


def test_loopback_host_headers_are_accepted(db, run_id):
    with TestClient(create_app(db)) as c:  # the default: loopback names only
        for host in ("127.0.0.1:8080", "localhost:9999", "[::1]:8080"):
            assert c.get("/api/health", headers={"Host": host}).status_code == 200
        assert c.get("/api/health", headers={"Host": "rebind.example"}).status_code == 403


def test_write_that_is_not_json_is_refused_and_changes_nothing(client, run_id):
    resp = client.request("DELETE", f"/api/runs/{run_id}",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 415
    resp = client.delete(f"/api/runs/{run_id}")  # no content type at all
    assert resp.status_code == 415
    assert client.get(f"/api/runs/{run_id}").status_code == 200


def test_cross_origin_write_is_refused_and_changes_nothing(client, run_id):
    resp = client.request("DELETE", f"/api/runs/{run_id}",
                          headers={**JSON, "Origin": "http://evil.example"})
    assert resp.status_code == 403
    assert "cross-origin" in resp.json()["detail"]
    resp = client.request("DELETE", f"/api/runs/{run_id}",
                          headers={**JSON, "Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 403
    assert client.get(f"/api/runs/{run_id}").status_code == 200


def test_same_origin_json_delete_removes_the_run(client, run_id):
    resp = client.request("DELETE", f"/api/runs/{run_id}",
                          headers={**JSON, "Origin": "http://testserver"}, content="{}")
    assert resp.status_code == 200
    assert client.get(f"/api/runs/{run_id}").status_code == 404


def test_delete_of_unknown_run_is_404(client):
    resp = client.request("DELETE", "/api/runs/ffffffff", headers=JSON, content="{}")
    assert resp.status_code == 404


# -- pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/flows", "/runs", "/runs?state=failed&hours=24",
                                  "/agents", "/flow-run/last"])
def test_pages_render(client, run_id, path):
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")


def test_run_page_shows_tasks_logs_and_escapes_messages(client, run_id):
    html = client.get(f"/flow-run/{run_id}").text
    assert "Hello, Marvin!" in html
    assert "inc-1[1]" in html
    assert "two is &lt;b&gt;bad&lt;/b&gt;" in html
    assert "two is <b>bad</b>" not in html
    assert 'data-action="/api/runs/%s/resume"' % run_id in html  # it failed: resumable
    assert "every 1s" not in html  # finished: the page does not poll


def test_run_page_log_filters(client, run_id):
    html = client.get(f"/flow-run/{run_id}?level=ERROR").text
    logs = html[html.index('id="logs-list"'):html.index('id="history"')]
    assert "Task inc-1[1] failed" in logs and "Hello, Marvin!" not in logs
    html = client.get(f"/flow-run/{run_id}?q=marvin").text
    logs = html[html.index('id="logs-list"'):html.index('id="history"')]
    assert "Hello, Marvin!" in logs and "Task inc-1[1] failed" not in logs


def test_logs_download_is_text(client, run_id):
    resp = client.get(f"/flow-run/{run_id}/logs.txt?task=say_hello-1")
    assert resp.headers["content-disposition"].startswith("attachment")
    assert resp.text.strip().endswith("say_hello-1  Hello, Marvin!")


def test_unknown_run_page_is_a_404_page(client):
    resp = client.get("/flow-run/ffffffff")
    assert resp.status_code == 404
    assert "no run matches" in resp.text


def test_result_is_shown_only_when_asked_and_capped(client, run_id, monkeypatch):
    html = client.get(f"/flow-run/{run_id}/result?task=say_hello-1").text
    assert "&#39;Hello, Marvin!&#39;" in html
    monkeypatch.setattr(pages, "RESULT_BYTES", 4)
    html = client.get(f"/flow-run/{run_id}/result?task=say_hello-1").text
    assert "Hello, Marvin!" not in html and "more than the 4" in html
    resp = client.get(f"/flow-run/{run_id}/result?task=inc-1&map_index=1")
    assert resp.status_code == 404 and "ended Failed" in resp.text


def test_server_sees_a_database_created_after_it_started(tmp_path):
    db = f"sqlite:///{tmp_path / 'later.db'}"
    with TestClient(create_app(db, hosts=["testserver"])) as c:
        assert c.get("/api/runs").json() == []
        hello_flow().run(parameters={"name": "Zaphod"}, store=db)
        runs = c.get("/api/runs").json()
        assert [r["flow_name"] for r in runs] == ["Say hi!"]
    assert not (tmp_path / "never.db").exists()


def test_looking_at_the_server_creates_no_database(tmp_path):
    path = tmp_path / "absent.db"
    with TestClient(create_app(f"sqlite:///{path}", hosts=["testserver"])) as c:
        assert c.get("/").status_code == 200
        assert c.get("/api/runs").json() == []
    assert not path.exists()


def test_runs_pages_follow_one_another_without_gaps(client, db):
    flow = hello_flow()
    ids = [flow.run(parameters={"name": str(i)}, store=db).context["flow_run_id"]
           for i in range(5)]
    newest_first = ids[::-1]
    page1 = client.get("/api/runs?limit=2").json()
    page2 = client.get(f"/api/runs?limit=2&before={page1[-1]['id']}").json()
    page3 = client.get(f"/api/runs?limit=2&before={page2[-1]['id']}").json()
    assert [r["id"] for r in page1 + page2 + page3] == newest_first
    assert client.get("/api/runs?since=2999-01-01T00:00:00Z").json() == []
    assert client.get("/api/runs?since=yesterday").status_code == 422
    html = client.get("/runs").text
    assert 'id="older"' not in html  # 5 runs fit on one page


def test_runs_page_links_to_older_runs(client, db, monkeypatch):
    monkeypatch.setattr(pages, "RUNS_PAGE", 2)
    flow = hello_flow()
    ids = [flow.run(store=db).context["flow_run_id"] for _ in range(3)]
    html = client.get("/runs").text
    assert ids[2] in html and ids[1] in html and ids[0] not in html
    assert f"before={ids[1]}" in html
    older = client.get(f"/runs?before={ids[1]}").text
    assert ids[0] in older and ids[2] not in older
