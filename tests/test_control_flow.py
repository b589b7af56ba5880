"""Conditional branches (``case`` / ``merge``) and how skips travel downstream."""

from __future__ import annotations

import pytest

from cairnflow import Flow, Parameter, case, merge, signals, states, task, triggers

from conftest import history

UPSTREAM_SKIPPED = ("Upstream task was skipped; if this was not the intended behavior, "
                    "consider changing `skip_on_upstream_skip=False` for this task.")


@task
def identity(x):
    return x


@task
def skipper():
    raise signals.SKIP("nothing to do")


def _branch_flow(calls):
    @task
    def branch(label):
        calls.append(label)
        return label

    with Flow("branches") as flow:
        cond = identity(Parameter("go"))
        with case(cond, True):
            yes = branch("yes")
        with case(cond, False):
            no = branch("no")
        joined = merge(yes, no)
    return flow, yes, no, joined


# -- case / merge --------------------------------------------------------------------------


@pytest.mark.parametrize("go, ran, skipped", [(True, "yes", "no"), (False, "no", "yes")])
def test_case_runs_only_the_matching_branch(memory_store, go, ran, skipped):
    calls = []
    flow, yes, no, _ = _branch_flow(calls)
    flow_state = flow.run(store=memory_store, go=go)
    by_label = {"yes": flow_state.result[yes], "no": flow_state.result[no]}
    assert by_label[ran].is_successful() and not by_label[ran].is_skipped()
    assert type(by_label[skipped]) is states.Skipped
    assert calls == [ran]
    assert flow_state.is_successful()


@pytest.mark.parametrize("go, expected", [(True, "yes"), (False, "no")])
def test_merge_picks_the_branch_that_ran(memory_store, go, expected):
    flow, _, _, joined = _branch_flow([])
    flow_state = flow.run(store=memory_store, go=go)
    assert flow_state.result[joined].is_successful()
    assert flow_state.result[joined].result == expected


def test_skipped_branch_task_is_never_running(memory_store):
    flow, _, no, _ = _branch_flow([])
    flow.run(store=memory_store, go=True)
    assert [s for _, _, s in history(memory_store, task_slug=flow.slugs[no])] == [
        "Pending", "Skipped"]


def test_case_skips_a_chain_inside_the_branch(memory_store):
    calls = []

    @task
    def step(x):
        calls.append(x)
        return x

    with Flow("branch-chain") as flow:
        cond = identity(False)
        with case(cond, True):
            last = step(step("a"))
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[last]) is states.Skipped
    assert calls == []


def test_merge_of_all_skipped_branches_is_skipped(memory_store):
    with Flow("no-branch") as flow:
        cond = identity("neither")
        with case(cond, "a"):
            a = identity("a")
        with case(cond, "b"):
            b = identity("b")
        joined = merge(a, b)
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[joined]) is states.Skipped
    assert flow_state.is_successful()


def test_merge_of_a_failed_branch_trigger_fails(memory_store):
    @task
    def broken(x):
        raise ValueError("branch broke")

    with Flow("failed-branch") as flow:
        cond = identity(True)
        with case(cond, True):
            a = broken("a")
        with case(cond, False):
            b = identity("b")
        joined = merge(a, b)
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[joined]) is states.TriggerFailed
    assert flow_state.is_failed()


@pytest.mark.parametrize("outer, inner, expected", [
    (True, True, "both"), (True, False, "outer only"), (False, True, "outer skipped"),
])
def test_nested_case_runs_only_when_both_conditions_match(memory_store, outer, inner, expected):
    with Flow("nested") as flow:
        o = identity(Parameter("outer"))
        i = identity(Parameter("inner"))
        with case(o, True):
            with case(i, True):
                both = identity("both")
            with case(i, False):
                outer_only = identity("outer only")
            inside = merge(both, outer_only)
        with case(o, False):
            outer_skipped = identity("outer skipped")
        joined = merge(inside, outer_skipped)
    flow_state = flow.run(store=memory_store, outer=outer, inner=inner)
    assert flow_state.result[joined].result == expected


def test_nested_inner_branch_is_skipped_when_outer_does_not_match(memory_store):
    calls = []

    @task
    def deep():
        calls.append("deep")

    with Flow("nested-skip") as flow:
        o = identity(False)
        i = identity(True)
        with case(o, True):
            with case(i, True):
                d = deep()
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[d]) is states.Skipped
    assert calls == []


def test_case_on_a_task_result_compares_by_equality(memory_store):
    with Flow("equality") as flow:
        cond = identity(2)
        with case(cond, 2):
            two = identity("two")
        with case(cond, 3):
            three = identity("three")
    flow_state = flow.run(store=memory_store)
    assert flow_state.result[two].result == "two"
    assert type(flow_state.result[three]) is states.Skipped


# -- skips ---------------------------------------------------------------------------------


def test_skip_propagates_downstream_by_default(memory_store):
    calls = []

    @task
    def after():
        calls.append("after")

    with Flow("skip-down") as flow:
        down = after(upstream_tasks=[skipper()])
    flow_state = flow.run(store=memory_store)
    state = flow_state.result[down]
    assert type(state) is states.Skipped
    assert state.message == UPSTREAM_SKIPPED
    assert calls == []
    assert flow_state.is_successful()


def test_skip_propagates_through_a_chain(memory_store):
    with Flow("skip-chain") as flow:
        last = identity(identity(skipper()))
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[last]) is states.Skipped


def test_skip_on_upstream_skip_false_runs_the_task(memory_store):
    calls = []

    @task(skip_on_upstream_skip=False)
    def after():
        calls.append("after")
        return "ran anyway"

    with Flow("no-skip") as flow:
        down = after(upstream_tasks=[skipper()])
    flow_state = flow.run(store=memory_store)
    assert flow_state.result[down].result == "ran anyway"
    assert not flow_state.result[down].is_skipped()
    assert calls == ["after"]


def test_task_not_skipping_can_take_a_skipped_upstreams_result(memory_store):
    @task(skip_on_upstream_skip=False)
    def show(x):
        return repr(x)

    with Flow("skip-value") as flow:
        down = show(skipper())
    flow_state = flow.run(store=memory_store)
    assert flow_state.is_successful()
    assert flow_state.result[down].is_successful()


def test_skipped_upstream_counts_as_success_for_all_successful(memory_store):
    calls = []

    @task(skip_on_upstream_skip=False, trigger=triggers.all_successful)
    def after():
        calls.append("after")

    with Flow("skip-success") as flow:
        after(upstream_tasks=[skipper()])
    flow.run(store=memory_store)
    assert calls == ["after"]


def test_one_skipped_upstream_among_several_skips_the_task(memory_store):
    calls = []

    @task
    def after():
        calls.append("after")

    with Flow("one-skip") as flow:
        down = after(upstream_tasks=[identity(1), skipper()])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[down]) is states.Skipped
    assert calls == []


def test_skip_does_not_run_a_failing_downstream(memory_store):
    @task
    def would_fail():
        raise ValueError("never reached")

    with Flow("skip-shields") as flow:
        would_fail(upstream_tasks=[skipper()])
    flow_state = flow.run(store=memory_store)
    assert flow_state.is_successful()
