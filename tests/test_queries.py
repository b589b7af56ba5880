"""The query API and the state vocabulary: the rules every face reads through."""

from __future__ import annotations

import pytest

from cairnflow import Flow, states, task
from cairnflow.exceptions import ResultNotFoundError, UnknownRunError
from cairnflow.statestore import queries
from cairnflow.statestore.memory import MemoryStore


def test_vocabulary_follows_the_class_hierarchy():
    assert {"Success", "Cached", "Mapped", "Skipped"} <= states.SUCCESSFUL
    assert {"Failed", "TriggerFailed", "TimedOut", "Crashed"} <= states.FAILED
    assert states.SUCCESSFUL | states.FAILED | {"Cancelled", "Looped"} <= states.FINISHED
    assert "Running" not in states.FINISHED and "Submitted" not in states.FINISHED
    assert states.QUEUED == {"Scheduled", "Submitted"}
    assert states.is_failed("Crashed") and not states.is_failed("NotAState")


def test_resume_reuses_successful_task_runs_only_with_their_result():
    assert states.is_reusable_by_resume("Success", has_result=True)
    assert not states.is_reusable_by_resume("Success", has_result=False)
    assert states.is_reusable_by_resume("Skipped", has_result=False)
    assert not states.is_reusable_by_resume("Failed", has_result=True)


def test_state_names_parse_in_any_case_and_refuse_others():
    assert states.parse_state_name("triggerfailed") == "TriggerFailed"
    with pytest.raises(ValueError, match="'happy' is not a state"):
        states.parse_state_name("happy")


@pytest.fixture
def store_with_runs():
    calls = []

    @task
    def add(x, y):
        calls.append(x)
        return x + y

    @task
    def boom(x):
        raise ValueError("no")

    with Flow("q") as flow:
        total = add.map([1, 2, 3], [10, 20, 30])
        boom(total)
    store = MemoryStore()
    state = flow.run(store=store)
    return store, state.context["flow_run_id"]


def test_a_run_is_named_by_id_prefix_or_last(store_with_runs):
    store, run_id = store_with_runs
    assert queries.resolve_run_id(store, "last") == run_id
    assert queries.resolve_run_id(store, run_id[:6]) == run_id
    with pytest.raises(UnknownRunError):
        queries.resolve_run_id(store, "zzz")
    with pytest.raises(UnknownRunError):
        queries.resolve_run_id(MemoryStore(), "last")


def test_run_detail_groups_mapped_children_and_can_be_resumed(store_with_runs):
    store, run_id = store_with_runs
    detail = queries.run_detail(store, "last")
    groups = queries.group_mapped(detail.tasks)
    parent, children = next(g for g in groups if g[0] and g[0].task_slug == "add-1")
    assert [c.map_index for c in children] == [0, 1, 2]
    assert queries.summarise_children(children).by_state == [("Success", 3)]
    assert queries.resume_verdict(detail.run).ok
    shape = queries.run_detail_json(detail.run, detail.tasks)
    assert {"id", "flow_name", "state", "parameters", "attempt", "tasks"} <= set(shape)


def test_results_and_why_there_is_none(store_with_runs):
    store, run_id = store_with_runs
    assert queries.result_value(store, run_id, "add-1", 2) == 33
    with pytest.raises(ResultNotFoundError, match="is mapped: give --map-index"):
        queries.result_value(store, run_id, "add-1")
    with pytest.raises(ResultNotFoundError, match="ended Failed, so it has no result"):
        queries.result_value(store, run_id, "boom-1")
    with pytest.raises(UnknownRunError, match="has no task 'nope'"):
        queries.history(store, run_id, "nope")
