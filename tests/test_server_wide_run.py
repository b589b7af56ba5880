"""The run page and JSON of a very wide run (issue 7, must-show 5): what is shown stays true.

A run of 2,500 task runs (more than the page lists or draws), written through
the store API into a real SQLite file, a few of them failed late in the run
and one mapped task with 60 children: the page lists the failed ones whatever
their position, counts what it does not list, draws the earliest task runs and
counts the rest; the JSON lists every task run with its times as stored.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pendulum
import pytest
from starlette.testclient import TestClient

from cairnflow.server import views
from cairnflow.server.app import create_app
from cairnflow.statestore import open_store
from cairnflow.statestore.base import FlowRunRecord, Transition

RUN = "cccccccc-0000-4000-8000-000000000003"
T0 = pendulum.datetime(2024, 5, 1, 12, tz="UTC")
WIDE = 2500
FAILED = {1800, 2100, 2499}  # beyond the groups the page lists
CHILDREN = 60  # more than the page lists of one task's children


def _record() -> FlowRunRecord:
    return FlowRunRecord(
        id=RUN, flow_name="wide", flow_hash="h", parameters={}, parameters_blob=None,
        source_file=None, source_variable=None, flow_blob=None, attempt=1, pid=1,
        host="elsewhere", started_at=T0)


def _at(i: int):
    return T0 + timedelta(milliseconds=10 * i)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('wide') / 'cairnflow.db'}"
    store = open_store(url)
    batch = [Transition(RUN, 1, None, None, None, "Running", "Running flow.", T0)]
    for i in range(WIDE):
        # recorded in reverse order of start, so "earliest" is not "first recorded"
        start = _at(WIDE - i)
        state = "Failed" if i in FAILED else "Success"
        batch += [Transition(RUN, 1, f"work-{i}", "work", None, "Running", None, start),
                  Transition(RUN, 1, f"work-{i}", "work", None, state, f"{state} {i}",
                             start + timedelta(milliseconds=3))]
    batch.append(Transition(RUN, 1, "many-1", "many", None, "Mapped", None, _at(0)))
    for k in range(CHILDREN):
        batch += [Transition(RUN, 1, "many-1", "many", k, "Running", None, _at(k)),
                  Transition(RUN, 1, "many-1", "many", k, "Success", None, _at(k + 1))]
    batch.append(Transition(RUN, 1, None, None, None, "Failed", "Some failed.",
                            _at(WIDE + 10)))
    store.record_flow_run(_record())
    store.record_transitions(batch)
    store.close()
    return url


@pytest.fixture(scope="module")
def client(db):
    with TestClient(create_app(db, hosts=["testserver"])) as c:
        yield c


def test_the_json_lists_every_task_run_with_its_stored_times(client):
    body = client.get(f"/api/runs/{RUN}").json()
    tasks = {(t["slug"], t["map_index"]): t for t in body["tasks"]}
    assert len(tasks) == WIDE + 1 + CHILDREN
    first = tasks[("work-0", None)]
    assert (first["started_at"], first["ended_at"]) == (
        "2024-05-01T12:00:25+00:00", "2024-05-01T12:00:25.003000+00:00")
    assert sorted(i for i in range(WIDE) if tasks[(f"work-{i}", None)]["state"] == "Failed") \
        == sorted(FAILED)


def test_the_page_lists_the_failed_task_runs_and_counts_the_rest(client):
    page = client.get(f"/flow-run/{RUN}").text
    listed = re.findall(r'<tr class="parent" data-slug="([^"]+)"', page)
    assert {f"work-{i}" for i in FAILED} <= set(listed)
    assert listed == sorted(listed, key=lambda s: (s == "many-1", int(s.split("-")[1])))
    assert len(listed) == views.TASK_GROUPS
    hidden = WIDE + 1 - views.TASK_GROUPS
    assert f"{hidden} more task runs not listed" in page
    if "many-1" in listed:
        assert f"[{CHILDREN} mapped children]" in page
        assert f"{CHILDREN - views.CHILD_ROWS} not listed" in page
    assert f">{WIDE + 1 + CHILDREN}<" in page  # the task-run count in the heading


def test_the_timeline_draws_the_earliest_task_runs_and_counts_the_others(db):
    store = open_store(db, readonly=True)
    try:
        tasks = store.get_task_runs(RUN)
    finally:
        store.close()
    [timeline] = views.timeline_from_tasks(tasks, 1, pendulum.now("UTC"))
    rows = WIDE + 1  # the children are drawn as one bar
    assert len(timeline.bars) == views.TIMELINE_ROWS
    assert timeline.hidden == rows - views.TIMELINE_ROWS
    starts = [b.start for b in timeline.bars]
    assert starts == sorted(starts)
    drawn = [t for t in tasks if t.map_index is None and t.task_slug.startswith("work-")]
    assert starts[-1] <= sorted(t.started_at for t in drawn)[views.TIMELINE_ROWS]
    [mapped] = [b for b in timeline.bars if b.count > 1]
    assert (mapped.count, mapped.start, mapped.end) == (CHILDREN, _at(0), _at(CHILDREN))


def test_task_run_times_are_aware_utc_and_equal_to_what_was_recorded(db):
    store = open_store(db, readonly=True)
    try:
        tasks = {t.task_slug: t for t in store.get_task_runs(RUN) if t.map_index is None}
    finally:
        store.close()
    work = tasks["work-7"]
    assert work.started_at == _at(WIDE - 7)
    assert work.started_at.utcoffset() == timedelta(0)
    assert pendulum.instance(work.ended_at).diff(pendulum.instance(work.started_at)) \
        .in_seconds() == 0


def test_more_unsuccessful_groups_than_the_page_lists_are_shown_in_recorded_order():
    from cairnflow.statestore.base import TaskRunInfo

    tasks = [TaskRunInfo(f"t-{i}", "t", None, "Failed", None, 1, None, None, False)
             for i in range(views.TASK_GROUPS + 50)]
    shown = views.task_groups(tasks)
    assert [g.slug for g in shown] == [f"t-{i}" for i in range(views.TASK_GROUPS)]
