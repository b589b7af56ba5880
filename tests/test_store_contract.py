"""The StateStore contract, run against every store (huey's StorageTests style).

Each test takes the ``store`` fixture, which is parametrized over the
in-memory reference store, the SQLite store on a real file and the PostgreSQL
store on a real server (a schema of its own per test; skipped without a server,
see ``conftest.pg_url``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pendulum
import pytest

from cairnflow.exceptions import AmbiguousRunError, ResultNotFoundError, UnknownRunError
from cairnflow.statestore.base import FlowRunRecord, LogEntry, StateStore, Transition
from cairnflow.statestore.memory import MemoryStore
from cairnflow.statestore.serialize import dump, load
from cairnflow.statestore.postgres import PostgresStore
from cairnflow.statestore.sqlite import SQLiteStore

T0 = pendulum.datetime(2024, 5, 1, 12, 0, 0, tz="UTC")
HOST = socket.gethostname()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "memory":
        made: StateStore = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "cairnflow.db")
    else:
        made = PostgresStore(request.getfixturevalue("pg_url"))
    yield made
    made.close()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def run_record(run_id="run-1", flow="etl", *, attempt=1, at=T0, pid=None, host=HOST,
               params=None, flow_blob=None, process_start=None) -> FlowRunRecord:
    params = {"n": 3} if params is None else params
    return FlowRunRecord(
        id=run_id, flow_name=flow, flow_hash="hash-1", parameters=params,
        parameters_blob=dump(params), source_file="/src/etl.py", source_variable="flow",
        flow_blob=flow_blob, attempt=attempt, pid=os.getpid() if pid is None else pid,
        host=host, started_at=at, process_start=process_start,
    )


def tr(state, slug=None, *, run_id="run-1", at=T0, seconds=0, map_index=None, attempt=1,
       message=None, result=None) -> Transition:
    return Transition(
        flow_run_id=run_id, attempt=attempt, task_slug=slug,
        task_name=None if slug is None else slug.rsplit("-", 1)[0], map_index=map_index,
        state=state, message=message, timestamp=at + timedelta(seconds=seconds),
        result=result,
    )


def started(store, run_id="run-1", **kwargs) -> str:
    store.record_flow_run(run_record(run_id, **kwargs))
    store.record_transitions([tr("Running", run_id=run_id, at=kwargs.get("at", T0))])
    return run_id


def finish(store, run_id, state="Success", at=T0):
    store.record_transitions([tr(state, run_id=run_id, at=at, seconds=60)])


def task_run(store, slug, run_id="run-1", map_index=None):
    [found] = [t for t in store.get_task_runs(run_id)
               if t.task_slug == slug and t.map_index == map_index]
    return found


# -- flow runs --------------------------------------------------------------------


def test_new_store_is_empty(store):
    assert store.list_runs() == []
    assert store.list_flows() == []
    assert store.find_run_ids("") == []


def test_recorded_run_reads_back_as_running(store):
    store.record_flow_run(run_record(params={"n": 3, "name": "x"}))
    run = store.get_flow_run("run-1")
    assert (run.id, run.flow_name, run.flow_hash, run.attempt) == ("run-1", "etl", "hash-1", 1)
    assert run.state == run.stored_state == "Running"
    assert run.parameters == {"n": 3, "name": "x"}
    assert (run.source_file, run.source_variable) == ("/src/etl.py", "flow")
    assert (run.pid, run.host) == (os.getpid(), HOST)
    assert run.created_at == run.started_at == T0
    assert run.ended_at is None


def test_second_attempt_keeps_id_and_creation_and_keeps_flow_blob(store):
    store.record_flow_run(run_record(flow_blob=dump("the flow")))
    store.record_transitions([tr("Failed", seconds=5)])
    started_again = T0.add(hours=1)
    store.record_flow_run(run_record(attempt=2, at=started_again, pid=12345))
    run = store.get_flow_run("run-1")
    assert (run.attempt, run.pid, run.started_at, run.created_at) == (2, 12345, started_again, T0)
    assert load(store.load_resume_data("run-1").run.flow_blob) == "the flow"
    assert len(store.list_runs()) == 1


def test_flow_transitions_set_state_message_and_end(store):
    started(store)
    store.record_transitions([tr("Failed", seconds=5, message="2 tasks failed")])
    run = store.get_flow_run("run-1")
    assert (run.state, run.message, run.ended_at) == ("Failed", "2 tasks failed", T0.add(seconds=5))
    store.record_flow_run(run_record(attempt=2), [tr("Running", seconds=9, attempt=2)])
    assert store.get_flow_run("run-1").ended_at is None


def test_heartbeat_refreshes_updated_at(store):
    started(store)
    before = store.get_flow_run("run-1").updated_at
    store.heartbeat("run-1")
    assert store.get_flow_run("run-1").updated_at >= before


# -- task runs ----------------------------------------------------------------------


def test_transitions_update_state_attempts_and_times(store):
    started(store)
    store.record_transitions([tr("Pending", "load-1")])
    assert task_run(store, "load-1").attempts == 0
    assert task_run(store, "load-1").started_at is None
    store.record_transitions([tr("Running", "load-1", seconds=1)])
    store.record_transitions([tr("Retrying", "load-1", seconds=2, message="boom")])
    mid = task_run(store, "load-1")
    assert (mid.state, mid.message, mid.attempts, mid.ended_at) == ("Retrying", "boom", 1, None)
    store.record_transitions([tr("Running", "load-1", seconds=3)])
    store.record_transitions([tr("Success", "load-1", seconds=4, result=dump(7))])
    done = task_run(store, "load-1")
    assert (done.state, done.attempts, done.task_name) == ("Success", 2, "load")
    assert done.started_at == T0.add(seconds=1)
    assert done.ended_at == T0.add(seconds=4)


def test_result_is_stored_with_its_success(store):
    started(store)
    store.record_transitions([tr("Running", "load-1")])
    assert not task_run(store, "load-1").has_result
    store.record_transitions([tr("Success", "load-1", seconds=1, result=dump({"rows": 3})),
                              tr("Running", "save-1", seconds=1)])
    assert task_run(store, "load-1").has_result
    assert task_run(store, "save-1").state == "Running"
    assert load(store.load_result("run-1", "load-1")) == {"rows": 3}


def test_a_new_result_replaces_the_old(store):
    started(store)
    store.record_transitions([tr("Success", "load-1", result=dump(1))])
    store.record_transitions([tr("Success", "load-1", seconds=1, result=dump(2))])
    assert load(store.load_result("run-1", "load-1")) == 2


def test_missing_result_is_result_not_found(store):
    started(store)
    store.record_transitions([tr("Success", "load-1")])
    with pytest.raises(ResultNotFoundError, match="load-1"):
        store.load_result("run-1", "load-1")
    with pytest.raises(ResultNotFoundError):
        store.load_result("run-1", "no-such-task")


def test_map_index_none_and_children_are_distinct_task_runs(store):
    started(store)
    store.record_transitions([tr("Mapped", "sq-1", result=dump([0, 1, 4]))])
    store.record_transitions([tr("Success", "sq-1", map_index=i, result=dump(i * i))
                              for i in range(3)])
    runs = store.get_task_runs("run-1")
    assert [(t.task_slug, t.map_index, t.state) for t in runs] == [
        ("sq-1", None, "Mapped"), ("sq-1", 0, "Success"), ("sq-1", 1, "Success"),
        ("sq-1", 2, "Success")]
    assert load(store.load_result("run-1", "sq-1")) == [0, 1, 4]
    assert load(store.load_result("run-1", "sq-1", map_index=2)) == 4


def test_task_runs_are_listed_in_first_recorded_order(store):
    started(store)
    for slug in ["c-1", "a-1", "b-1"]:
        store.record_transitions([tr("Running", slug)])
    store.record_transitions([tr("Success", "a-1")])
    assert [t.task_slug for t in store.get_task_runs("run-1")] == ["c-1", "a-1", "b-1"]


def test_a_start_records_the_first_pending_of_thousands_of_task_runs_at_once(store):
    # The engine's start: the run record, its Running and every task run's Pending,
    # in one call (one transaction), more rows than any one statement may carry.
    n = 2_500
    store.record_flow_run(run_record(), [tr("Running")] + [
        tr("Pending", f"inc-{i}") for i in range(n)])
    runs = store.get_task_runs("run-1")
    assert [t.task_slug for t in runs] == [f"inc-{i}" for i in range(n)]
    assert {(t.state, t.attempts, t.started_at, t.ended_at, t.has_result) for t in runs} == {
        ("Pending", 0, None, None, False)}
    assert len(store.get_history("run-1")) == n + 1
    store.record_transitions([tr("Running", "inc-0", seconds=1),
                              tr("Success", "inc-0", seconds=2, result=dump(1)),
                              tr("Running", f"inc-{n - 1}", seconds=2)])
    assert [t.state for t in store.get_history("run-1", "inc-0")] == [
        "Pending", "Running", "Success"]
    last = task_run(store, f"inc-{n - 1}")
    assert (last.state, last.attempts, last.started_at) == ("Running", 1, T0.add(seconds=2))
    assert [t.task_slug for t in store.get_task_runs("run-1")][:2] == ["inc-0", "inc-1"]


def test_a_maps_children_start_pending_with_its_expansion_all_or_nothing(store):
    started(store)
    n = 3_000
    children = [tr("Pending", "sq-1", map_index=i, seconds=1) for i in range(n)]
    with pytest.raises(UnknownRunError):  # a large batch is still one unit
        store.record_transitions([tr("Mapped", "sq-1", seconds=1), *children,
                                  tr("Running", "a-1", run_id="nope")])
    assert store.get_task_runs("run-1") == []
    store.record_transitions([tr("Mapped", "sq-1", seconds=1), *children])
    runs = store.get_task_runs("run-1")
    assert [(t.map_index, t.state) for t in runs] == [(None, "Mapped")] + [
        (i, "Pending") for i in range(n)]
    store.record_transitions([tr("Running", "sq-1", map_index=7, seconds=2)])
    assert [t.state for t in store.get_history("run-1", "sq-1") if t.map_index == 7] == [
        "Pending", "Running"]


def test_new_task_runs_first_pending_mixed_with_other_rows_are_each_kept_as_given(store):
    # The SQL stores write a batch's new task runs' first Pending of one time and
    # message by a shorter path than other rows: the batch must read back the same.
    started(store)
    store.record_transitions([tr("Running", "a-1"), tr("Success", "a-1", result=dump(1))])
    at = T0.add(seconds=1)
    batch = [
        tr("Mapped", "m-1", at=at),
        *(tr("Pending", "m-1", map_index=i, at=at, message="waits") for i in range(300)),
        tr("Pending", "b-1", at=at, message="another message"),
        tr("Pending", "a-1", at=at, message="waits"),  # not a new task run
        tr("Pending", "c-1", at=at.add(seconds=1), message="waits"),  # another time
        tr("Running", "m-1", map_index=0, at=at.add(seconds=1)),  # one of them, at once
        tr("Pending", "m-1", map_index=300, at=at, message="waits"),
    ]
    store.record_transitions(batch)
    assert store.get_history("run-1")[3:] == batch
    runs = store.get_task_runs("run-1")
    assert [(t.task_slug, t.map_index) for t in runs] == [
        ("a-1", None), ("m-1", None), *(("m-1", i) for i in range(300)), ("b-1", None),
        ("c-1", None), ("m-1", 300)]
    states = {(t.task_slug, t.map_index): (t.state, t.message, t.attempts, t.started_at)
              for t in runs}
    assert states["m-1", 0] == ("Running", None, 1, at.add(seconds=1))
    assert {states["m-1", i] for i in range(1, 301)} == {("Pending", "waits", 0, None)}
    assert states["b-1", None] == ("Pending", "another message", 0, None)
    assert states["a-1", None][:3] == ("Pending", "waits", 1)
    assert states["c-1", None] == ("Pending", "waits", 0, None)


def test_a_fenced_out_attempt_cannot_expand_a_map(store, dead_pid):
    from cairnflow.exceptions import FencedOutError

    started(store, pid=dead_pid)
    store.record_flow_run(run_record(attempt=2, at=T0.add(minutes=1)),
                          [tr("Crashed", seconds=59), tr("Running", seconds=60, attempt=2),
                           tr("Pending", "sq-1", seconds=60, attempt=2)])
    history = store.get_history("run-1")
    with pytest.raises(FencedOutError):  # attempt 1 lost its claim: none of it is stored
        store.record_transitions([tr("Mapped", "sq-1", seconds=61)] + [
            tr("Pending", "sq-1", map_index=i, seconds=61) for i in range(500)])
    with pytest.raises(FencedOutError):  # nor a batch of new task runs' first Pending only
        store.record_transitions([tr("Pending", f"new-{i}", seconds=61) for i in range(20)])
    assert store.get_history("run-1") == history
    assert [(t.task_slug, t.map_index, t.state) for t in store.get_task_runs("run-1")] == [
        ("sq-1", None, "Pending")]


# -- history and logs -------------------------------------------------------------


def test_history_is_every_transition_oldest_first(store):
    started(store)
    store.record_transitions([tr("Running", "a-1", seconds=1)])
    store.record_transitions([tr("Success", "a-1", seconds=2, result=dump(1)),
                              tr("Running", "b-1", seconds=2)])
    store.record_transitions([tr("Failed", "b-1", seconds=3, message="bad")])
    store.record_transitions([tr("Failed", seconds=4)])
    history = store.get_history("run-1")
    assert [(t.task_slug, t.state) for t in history] == [
        (None, "Running"), ("a-1", "Running"), ("a-1", "Success"), ("b-1", "Running"),
        ("b-1", "Failed"), (None, "Failed")]
    assert [t.timestamp for t in history] == [T0.add(seconds=s) for s in (0, 1, 2, 2, 3, 4)]
    assert history[4].message == "bad"
    assert all(t.result is None and t.flow_run_id == "run-1" for t in history)


def test_history_of_one_task_includes_its_mapped_children(store):
    started(store)
    store.record_transitions([tr("Running", "a-1"), tr("Running", "b-1")])
    store.record_transitions([tr("Failed", seconds=1)])
    store.record_flow_run(run_record(attempt=2))
    store.record_transitions([tr("Success", "b-1", map_index=0, attempt=2)])
    history = store.get_history("run-1", task_slug="b-1")
    assert [(t.state, t.map_index, t.attempt) for t in history] == [
        ("Running", None, 1), ("Success", 0, 2)]


def test_logs_are_kept_with_their_run_and_task(store):
    started(store)
    store.record_logs([
        LogEntry("run-1", None, None, T0, 20, "cairnflow.flow", "starting"),
        LogEntry("run-1", "sq-1", 1, T0.add(seconds=1), 30, "cairnflow.task", "odd"),
        LogEntry("run-1", "sq-1", None, T0.add(seconds=2), 40, "cairnflow.task", "done"),
    ])
    assert [e.message for e in store.get_logs("run-1")] == ["starting", "odd", "done"]
    odd = store.get_logs("run-1", task_slug="sq-1")[0]
    assert (odd.task_slug, odd.map_index, odd.level, odd.logger, odd.timestamp) == (
        "sq-1", 1, 30, "cairnflow.task", T0.add(seconds=1))
    assert len(store.get_logs("run-1", task_slug="sq-1")) == 2


# -- listing and finding runs -------------------------------------------------------


def three_runs(store):
    started(store, "aaa-1", flow="etl", at=T0)
    started(store, "aab-2", flow="report", at=T0.add(minutes=1))
    started(store, "bbb-3", flow="etl", at=T0.add(minutes=2))
    finish(store, "aaa-1", "Failed")
    finish(store, "aab-2", "Success")


def test_list_runs_since_and_keyset_pages(store):
    three_runs(store)
    assert [r.id for r in store.list_runs(since=T0.add(minutes=1))] == ["bbb-3", "aab-2"]
    assert [r.id for r in store.list_runs(limit=2)] == ["bbb-3", "aab-2"]
    assert [r.id for r in store.list_runs(limit=2, before="aab-2")] == ["aaa-1"]
    assert [r.id for r in store.list_runs(before="bbb-3", flow_name="etl")] == ["aaa-1"]
    assert store.list_runs(before="aaa-1") == []


def test_list_runs_newest_first_with_filters_and_limit(store):
    three_runs(store)
    assert [r.id for r in store.list_runs()] == ["bbb-3", "aab-2", "aaa-1"]
    assert [r.id for r in store.list_runs(flow_name="etl")] == ["bbb-3", "aaa-1"]
    assert [r.id for r in store.list_runs(state="Failed")] == ["aaa-1"]
    assert [r.id for r in store.list_runs(state="Running")] == ["bbb-3"]
    assert [r.id for r in store.list_runs(limit=2)] == ["bbb-3", "aab-2"]
    assert store.list_runs(flow_name="etl", state="Success") == []
    assert store.list_runs(flow_name="nope") == []


def test_list_flows_counts_runs_and_names_the_latest(store):
    three_runs(store)
    flows = store.list_flows()
    assert [(f.name, f.runs, f.last_run_id, f.last_state) for f in flows] == [
        ("etl", 2, "bbb-3", "Running"), ("report", 1, "aab-2", "Success")]
    assert flows[0].last_run_at == T0.add(minutes=2)


def test_find_run_ids_by_prefix(store):
    three_runs(store)
    assert store.find_run_ids("aa") == ["aaa-1", "aab-2"]
    assert store.find_run_ids("aa", limit=1) == ["aaa-1"]
    assert store.find_run_ids("bbb-3") == ["bbb-3"]
    assert store.find_run_ids("c") == []


def test_resolve_run_id(store):
    with pytest.raises(UnknownRunError, match="no runs"):
        store.resolve_run_id("last")
    three_runs(store)
    assert store.resolve_run_id("bbb-3") == "bbb-3"
    assert store.resolve_run_id("aab") == "aab-2"
    assert store.resolve_run_id("last") == "bbb-3"
    with pytest.raises(UnknownRunError, match="'zzz'"):
        store.resolve_run_id("zzz")
    with pytest.raises(AmbiguousRunError, match="'aa'"):
        store.resolve_run_id("aa")


# -- deleting ---------------------------------------------------------------------


def test_delete_runs_removes_everything_they_own(store):
    three_runs(store)
    store.record_transitions([tr("Success", "a-1", run_id="aaa-1", result=dump(1))])
    store.record_logs([LogEntry("aaa-1", "a-1", None, T0, 20, "x", "hi")])
    assert store.delete_runs(["aaa-1", "no-such-run"]) == 1
    with pytest.raises(UnknownRunError):
        store.get_flow_run("aaa-1")
    with pytest.raises(UnknownRunError):
        store.get_history("aaa-1")
    assert [r.id for r in store.list_runs()] == ["bbb-3", "aab-2"]
    assert store.delete_runs(["aaa-1"]) == 0


def test_a_deleted_run_id_can_be_recorded_again(store):
    started(store)
    store.record_transitions([tr("Running", "a-1")])
    store.delete_runs(["run-1"])
    started(store)
    store.record_transitions([tr("Running", "a-1")])
    assert task_run(store, "a-1").attempts == 1


def test_prune_deletes_only_finished_runs_older_than_the_cutoff(store, dead_pid):
    three_runs(store)  # aaa-1 Failed at T0, aab-2 Success at T0+1m, bbb-3 Running
    started(store, "old-running", at=T0.subtract(days=1))
    started(store, "old-crashed", at=T0.subtract(days=1), pid=dead_pid)
    assert store.prune(older_than=T0.add(seconds=30)) == 2
    assert sorted(r.id for r in store.list_runs()) == ["aab-2", "bbb-3", "old-running"]


# -- errors -----------------------------------------------------------------------


def test_naive_datetimes_are_refused(store):
    naive = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="naive"):
        store.record_flow_run(run_record(at=naive))
    started(store)
    with pytest.raises(ValueError, match="naive"):
        store.record_transitions([Transition("run-1", 1, None, None, None, "Failed", None, naive)])
    with pytest.raises(ValueError, match="naive"):
        store.record_logs([LogEntry("run-1", None, None, naive, 20, "x", "m")])
    with pytest.raises(ValueError, match="naive"):
        store.prune(older_than=naive)
    assert store.get_flow_run("run-1").state == "Running"


def test_aware_non_utc_timestamps_mean_the_same_instant(store):
    paris = pendulum.datetime(2024, 5, 1, 14, 0, 0, 123456, tz="Europe/Paris")
    store.record_flow_run(run_record(at=paris))
    assert store.get_flow_run("run-1").started_at == T0.add(microseconds=123456)


def test_times_read_back_are_aware_datetimes_of_the_instant_recorded(store):
    paris = pendulum.datetime(2024, 5, 1, 14, 0, 0, tz="Europe/Paris")
    store.record_flow_run(run_record(at=paris))
    store.record_transitions([Transition("run-1", 1, "a-1", None, None, state, None, paris)
                              for state in ("Running", "Success")])
    store.record_logs([LogEntry("run-1", "a-1", None, paris, 20, "x", "m")])
    run = store.get_flow_run("run-1")
    [task_run] = store.get_task_runs("run-1")
    recorded = [run.created_at, run.started_at, task_run.started_at, task_run.ended_at,
                *(t.timestamp for t in store.get_history("run-1")),
                *(e.timestamp for e in store.get_logs("run-1"))]
    assert recorded == [paris] * len(recorded)  # the same instant, in whatever zone
    times = [*recorded, run.updated_at]
    assert all(isinstance(t, datetime) and t.tzinfo is not None for t in times)
    if not isinstance(store, MemoryStore):  # which keeps the objects it was given
        assert all(t.utcoffset() == timedelta(0) for t in times)


@pytest.mark.parametrize("read", [
    lambda s: s.get_flow_run("nope"), lambda s: s.get_task_runs("nope"),
    lambda s: s.get_history("nope"), lambda s: s.load_result("nope", "a-1"),
    lambda s: s.load_resume_data("nope"), lambda s: s.get_logs("nope"),
    lambda s: s.heartbeat("nope"),
])
def test_unknown_run_is_unknown_run_error(store, read):
    with pytest.raises(UnknownRunError, match="nope"):
        read(store)


def test_a_batch_for_an_unknown_run_records_nothing(store):
    started(store)
    with pytest.raises(UnknownRunError):
        store.record_transitions([tr("Running", "a-1"), tr("Running", "a-1", run_id="nope")])
    with pytest.raises(UnknownRunError):
        store.record_logs([LogEntry("nope", None, None, T0, 20, "x", "m")])
    assert store.get_task_runs("run-1") == []
    assert len(store.get_history("run-1")) == 1


def test_an_empty_batch_is_a_no_op(store):
    store.record_transitions([])
    store.record_logs([])
    assert store.delete_runs([]) == 0


# -- liveness ---------------------------------------------------------------------


def test_a_running_run_whose_process_died_is_reported_crashed(store, dead_pid):
    started(store, "dead", pid=dead_pid)
    started(store, "alive", at=T0.add(seconds=1))
    run = store.get_flow_run("dead")
    assert (run.state, run.stored_state) == ("Crashed", "Running")
    assert [r.id for r in store.list_runs(state="Crashed")] == ["dead"]
    assert [r.id for r in store.list_runs(state="Running")] == ["alive"]
    assert store.list_runs(state="Crashed", limit=0) == []
    assert store.list_flows()[0].last_state == "Running"


def test_a_finished_run_is_not_crashed_when_its_process_is_gone(store, dead_pid):
    started(store, pid=dead_pid)
    finish(store, "run-1", "Success")
    assert store.get_flow_run("run-1").state == "Success"


def test_a_fresh_run_on_another_host_is_taken_as_running(store):
    started(store, host="some-other-host", pid=1)
    assert store.get_flow_run("run-1").state == "Running"


# -- resume and threads -------------------------------------------------------------


def test_load_resume_data_has_the_record_task_runs_and_results(store):
    store.record_flow_run(run_record(params={"n": 5}, flow_blob=dump("flow")))
    store.record_transitions([tr("Success", "a-1", result=dump("A")),
                              tr("Failed", "b-1", message="x"),
                              tr("Success", "m-1", map_index=0, result=dump(0))])
    data = store.load_resume_data("run-1")
    assert data.run.id == "run-1" and data.run.parameters == {"n": 5}
    assert load(data.run.parameters_blob) == {"n": 5}
    assert load(data.run.flow_blob) == "flow"
    assert data.run.source_variable == "flow" and data.run.started_at == T0
    assert set(data.task_runs) == {("a-1", None), ("b-1", None), ("m-1", 0)}
    assert data.task_runs[("b-1", None)].state == "Failed"
    assert {k: load(v) for k, v in data.results.items()} == {("a-1", None): "A", ("m-1", 0): 0}


def test_several_threads_can_write_at_once(store):
    started(store)
    errors = []

    def work(n):
        try:
            for i in range(25):
                slug = f"t{n}-{i}"
                store.record_transitions([tr("Running", slug)])
                store.record_transitions([tr("Success", slug, seconds=1, result=dump(i))])
                store.record_logs([LogEntry("run-1", slug, None, T0, 20, "x", slug)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.get_task_runs("run-1")) == 150
    assert all(t.state == "Success" and t.attempts == 1 for t in store.get_task_runs("run-1"))
    assert len(store.get_history("run-1")) == 301
    assert len(store.get_logs("run-1")) == 150


# -- fencing: only the run's current attempt writes ------------------------------------


def test_a_fenced_out_attempt_cannot_write(store, dead_pid):
    from cairnflow.exceptions import FencedOutError

    started(store, pid=dead_pid)
    store.record_transitions([tr("Running", "a-1", seconds=1)])
    store.record_logs([LogEntry("run-1", "a-1", None, T0, 20, "x", "one", attempt=1)])
    store.record_flow_run(run_record(attempt=2, at=T0.add(minutes=1)),
                          [tr("Crashed", "a-1", seconds=59), tr("Crashed", seconds=59),
                           tr("Running", seconds=60, attempt=2)])
    history = store.get_history("run-1")
    beat = store.get_flow_run("run-1").updated_at
    with pytest.raises(FencedOutError, match="taken over by attempt 2"):
        store.record_transitions([tr("Success", "a-1", seconds=70, result=dump(1))])
    with pytest.raises(FencedOutError):
        store.record_transitions([tr("Running", "b-1", seconds=70)],
                                 [LogEntry("run-1", "b-1", None, T0, 20, "x", "two", attempt=1)])
    with pytest.raises(FencedOutError):
        store.record_logs([LogEntry("run-1", "a-1", None, T0, 20, "x", "three", attempt=1)])
    with pytest.raises(FencedOutError):
        store.heartbeat("run-1", attempt=1)
    assert store.get_history("run-1") == history
    assert [e.message for e in store.get_logs("run-1")] == ["one"]
    assert not task_run(store, "a-1").has_result
    assert store.get_flow_run("run-1").updated_at == beat
    store.record_transitions([tr("Running", "a-1", seconds=61, attempt=2)],
                             [LogEntry("run-1", "a-1", None, T0, 20, "x", "four", attempt=2)])
    store.heartbeat("run-1", attempt=2)
    assert task_run(store, "a-1").attempts == 2
    assert [e.message for e in store.get_logs("run-1")] == ["one", "four"]


def test_logs_travel_with_their_transitions_in_one_batch(store):
    started(store)
    store.record_transitions([tr("Running", "a-1")],
                             [LogEntry("run-1", "a-1", None, T0, 20, "x", "hello", attempt=1)])
    assert [e.message for e in store.get_logs("run-1")] == ["hello"]
    assert task_run(store, "a-1").state == "Running"
    with pytest.raises(UnknownRunError):
        store.record_transitions([tr("Success", "a-1")],
                                 [LogEntry("nope", None, None, T0, 20, "x", "lost")])
    assert task_run(store, "a-1").state == "Running"  # all of the batch or none of it


@pytest.fixture
def second_handle(store, tmp_path):
    """Another handle on the same store, as a second process would have."""
    if isinstance(store, MemoryStore):
        yield store
        return
    other = PostgresStore(store.url) if isinstance(store, PostgresStore) else \
        SQLiteStore(store.path)
    yield other
    other.close()


def test_exactly_one_of_two_concurrent_resumes_wins(store, second_handle, dead_pid):
    from cairnflow.exceptions import RunStillAliveError

    started(store, pid=dead_pid)
    barrier = threading.Barrier(2)
    outcomes = []

    def claim(handle, pid):
        barrier.wait()
        try:
            handle.record_flow_run(run_record(attempt=2, pid=pid, at=T0.add(minutes=1)),
                                   [tr("Running", attempt=2, seconds=60)])
            outcomes.append(("won", pid))
        except RunStillAliveError:
            outcomes.append(("refused", pid))

    threads = [threading.Thread(target=claim, args=(h, pid))
               for h, pid in ((store, os.getpid()), (second_handle, dead_pid))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kind for kind, _ in outcomes) == ["refused", "won"]
    [(_, winner)] = [o for o in outcomes if o[0] == "won"]
    run = store.get_flow_run("run-1")
    assert (run.attempt, run.pid) == (2, winner)
    assert [t.attempt for t in store.get_history("run-1") if t.state == "Running"] == [1, 2]


# -- liveness by pid, process start time and host ------------------------------------------


def test_a_live_owner_is_alive_however_old_its_heartbeat(store, monkeypatch):
    from cairnflow.statestore.base import process_start_time

    started(store, process_start=process_start_time(os.getpid()))
    monkeypatch.setenv("CAIRNFLOW_STALE_SECONDS", "0")  # every heartbeat is stale now
    assert store.get_flow_run("run-1").state == "Running"


def test_a_reused_pid_is_not_the_owner(store):
    from cairnflow.statestore.base import process_start_time

    # This pid is alive with a fresh heartbeat, but the process started at another time.
    started(store, process_start=process_start_time(os.getpid()) - 1)
    assert store.get_flow_run("run-1").state == "Crashed"


def test_a_run_recorded_without_a_start_time_needs_a_fresh_heartbeat(store, monkeypatch):
    started(store, process_start=None)
    assert store.get_flow_run("run-1").state == "Running"
    monkeypatch.setenv("CAIRNFLOW_STALE_SECONDS", "0")
    assert store.get_flow_run("run-1").state == "Crashed"


def test_another_hosts_run_is_judged_by_its_heartbeat(store, monkeypatch):
    from cairnflow.statestore.base import process_start_time

    monkeypatch.setenv("CAIRNFLOW_HOSTNAME", "host-a")
    started(store, host="host-b", pid=os.getpid(), process_start=process_start_time(os.getpid()))
    assert store.get_flow_run("run-1").state == "Running"
    monkeypatch.setenv("CAIRNFLOW_STALE_SECONDS", "0")
    assert store.get_flow_run("run-1").state == "Crashed"
    monkeypatch.setenv("CAIRNFLOW_HOSTNAME", "host-b")  # seen from its own host: alive
    assert store.get_flow_run("run-1").state == "Running"


# -- orchestration: registered flows, runs for agents, agents ----------------------------

from cairnflow.exceptions import RunStillAliveError, UnknownFlowError  # noqa: E402
from cairnflow.statestore.base import (  # noqa: E402
    AgentRecord, FlowVersionRecord, NewFlowRun,
)


@pytest.fixture
def orch_store(store):
    """The store; every store has the orchestration methods."""
    assert type(store).record_flow_version is not StateStore.record_flow_version
    return store


def version_record(name="etl", key=None, labels=("here",), schedule=False) -> FlowVersionRecord:
    return FlowVersionRecord(
        flow_name=name, flow_hash="hash-1",
        parameters=[{"name": "n", "default": 3, "required": False}], labels=list(labels),
        graph={"tasks": [{"slug": "add-1"}], "edges": []}, created_at=T0,
        idempotency_key=key, source_file="/src/etl.py", source_variable="flow",
        flow_blob=dump("the flow"), schedule_blob=dump("a schedule") if schedule else None,
        schedule_description="every hour" if schedule else None, schedule_active=schedule)


def new_run(version_id, run_id, *, at=T0, labels=("here",), key=None) -> NewFlowRun:
    return NewFlowRun(id=run_id, flow_version_id=version_id, parameters={"n": 1},
                      parameters_blob=dump({"n": 1}), labels=list(labels), scheduled_start=at,
                      schedule_key=key)


def test_each_registration_is_a_new_version_and_archives_the_older(orch_store):
    store = orch_store
    first, created = store.record_flow_version(version_record())
    second, again = store.record_flow_version(version_record())
    assert created and again and first != second
    assert [v.version for v in store.list_flow_versions("etl")] == [2]
    old = store.get_flow_version(first)
    assert old.archived and old.version == 1
    info = store.get_flow_version(second)
    assert (info.flow_name, info.labels, info.parameters[0]["name"]) == ("etl", ["here"], "n")
    assert info.graph == {"tasks": [{"slug": "add-1"}], "edges": []}
    assert store.load_flow_version_blobs(second)[0] is not None
    with pytest.raises(UnknownFlowError):
        store.get_flow_version("nope")


def test_the_latest_versions_idempotency_key_adds_nothing(orch_store):
    store = orch_store
    first, _ = store.record_flow_version(version_record(key="k1"))
    same, created = store.record_flow_version(version_record(key="k1"))
    assert (same, created) == (first, False)
    other, created = store.record_flow_version(version_record(key="k2"))
    assert created and other != first


def test_a_created_run_begins_scheduled_then_is_claimed_once(orch_store):
    store = orch_store
    vid, _ = store.record_flow_version(version_record())
    assert store.create_flow_runs([new_run(vid, "run-a")]) == ["run-a"]
    info = store.get_flow_run("run-a")
    assert (info.state, info.attempt, info.labels, info.flow_version_id) == (
        "Scheduled", 0, ("here",), vid)
    store.record_agent(AgentRecord("agent-1", "a1", ["here"], HOST, os.getpid(), T0))
    assert store.claim_flow_runs("agent-1", ["elsewhere"], 10, T0) == []
    claimed = store.claim_flow_runs("agent-1", ["here", "more"], 10, T0)
    assert [(c.id, c.state, c.agent_id) for c in claimed] == [("run-a", "Submitted", "agent-1")]
    assert store.claim_flow_runs("agent-1", ["here"], 10, T0) == []
    assert [t.state for t in store.get_history("run-a")] == ["Scheduled", "Submitted"]
    # the deployed process starts attempt 1 over the claimed run
    store.record_flow_run(run_record("run-a", attempt=1), [tr("Running", run_id="run-a")])
    assert store.get_flow_run("run-a").state == "Running"
    assert store.get_flow_run("run-a").flow_version_id == vid


def test_a_run_not_yet_due_is_not_claimed(orch_store):
    store = orch_store
    vid, _ = store.record_flow_version(version_record())
    store.create_flow_runs([new_run(vid, "later", at=T0 + timedelta(hours=1))])
    assert store.claim_flow_runs("agent-1", ["here"], 10, T0) == []
    assert [c.id for c in store.claim_flow_runs("agent-1", ["here"], 10,
                                                T0 + timedelta(hours=1))] == ["later"]


def test_a_run_claimed_by_an_agent_that_is_gone_is_claimed_again(orch_store, dead_pid):
    store = orch_store
    vid, _ = store.record_flow_version(version_record())
    store.create_flow_runs([new_run(vid, "run-a")])
    store.record_agent(AgentRecord("dead", "d", ["here"], HOST, dead_pid, T0))
    assert len(store.claim_flow_runs("dead", ["here"], 10, T0)) == 1
    store.record_agent(AgentRecord("live", "l", ["here"], HOST, os.getpid(), T0))
    again = store.claim_flow_runs("live", ["here"], 10, T0)
    assert [(c.id, c.agent_id) for c in again] == [("run-a", "live")]
    assert {a.id for a in store.list_agents()} == {"dead", "live"}
    store.remove_agent("dead")
    assert [a.id for a in store.list_agents()] == ["live"]


def test_a_schedule_key_makes_one_run_however_often_it_is_created(orch_store):
    store = orch_store
    vid, _ = store.record_flow_version(version_record(schedule=True))
    assert store.create_flow_runs([new_run(vid, "s1", key="etl|t1")]) == ["s1"]
    assert store.create_flow_runs([new_run(vid, "s2", key="etl|t1"),
                                   new_run(vid, "s3", key="etl|t2")]) == ["s3"]
    assert store.set_schedule_active(vid, False) == 2
    assert store.list_runs() == []
    assert not store.get_flow_version(vid).schedule_active


def test_a_new_version_replaces_the_older_versions_scheduled_runs(orch_store):
    store = orch_store
    vid, _ = store.record_flow_version(version_record(schedule=True))
    store.create_flow_runs([new_run(vid, "old", key="etl|t1"), new_run(vid, "manual")])
    new, _ = store.record_flow_version(version_record(schedule=True),
                                       [new_run("ignored", "new", key="etl|t1")])
    assert {r.id: r.flow_version_id for r in store.list_runs()} == {"new": new, "manual": vid}
    with pytest.raises(UnknownFlowError, match="archived"):
        store.create_flow_runs([new_run(vid, "x")])


def test_cancel_ends_a_queued_run_and_marks_a_running_one(orch_store):
    store = orch_store
    vid, _ = store.record_flow_version(version_record())
    store.create_flow_runs([new_run(vid, "queued")])
    assert store.request_cancel("queued") == "Cancelled"
    assert store.get_flow_run("queued").ended_at is not None
    store.record_flow_run(run_record("live"), [tr("Running", run_id="live")])
    assert store.request_cancel("live") == "Running"
    assert store.get_flow_run("live").cancel_requested
    assert [r.id for r in store.list_cancel_requests(HOST)] == ["live"]
    with pytest.raises(UnknownRunError):
        store.request_cancel("nope")


def test_a_failed_run_is_queued_for_resume_and_a_live_one_refused(orch_store):
    store = orch_store
    store.record_flow_run(run_record("live"), [tr("Running", run_id="live")])
    with pytest.raises(RunStillAliveError):
        store.request_resume("live", ["here"], [], T0)
    store.record_transitions([tr("Failed", run_id="live", seconds=1)])
    store.request_resume("live", ["here"], [], T0)
    info = store.get_flow_run("live")
    assert (info.state, info.labels, info.attempt) == ("Scheduled", ("here",), 1)
    store.record_agent(AgentRecord("a", "a", ["here"], HOST, os.getpid(), T0))
    assert [c.id for c in store.claim_flow_runs("a", ["here"], 1, T0)] == ["live"]


def test_agents_claiming_at_once_on_two_handles_take_each_run_once(orch_store, second_handle):
    store = orch_store
    vid, _ = store.record_flow_version(version_record())
    ids = [f"run-{i:02d}" for i in range(40)]
    store.create_flow_runs([new_run(vid, rid) for rid in ids])
    for agent in ("a1", "a2"):
        store.record_agent(AgentRecord(agent, agent, ["here"], HOST, os.getpid(), T0))
    barrier = threading.Barrier(2)
    taken: dict[str, list[str]] = {"a1": [], "a2": []}

    def claim(handle, agent):
        barrier.wait()
        empty = 0
        while empty < 3:  # an empty claim may only mean the peer holds the rows
            got = handle.claim_flow_runs(agent, ["here"], 3, T0)
            taken[agent] += [c.id for c in got]
            empty = 0 if got else empty + 1

    threads = [threading.Thread(target=claim, args=args)
               for args in ((store, "a1"), (second_handle, "a2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken["a1"] + taken["a2"]) == ids
    assert {store.get_flow_run(rid).state for rid in ids} == {"Submitted"}
    assert all(len(store.get_history(rid)) == 2 for rid in ids)


def test_data_version_moves_when_another_handle_commits(orch_store, second_handle):
    store = orch_store
    before = store.data_version()
    if isinstance(store, MemoryStore):
        assert before is None  # it cannot tell: its readers poll
        return
    assert before is not None
    second_handle.record_flow_version(version_record())
    assert store.data_version() != before
