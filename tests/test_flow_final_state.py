"""A flow run's final state: Prefect 1's rule over the reference tasks."""

from __future__ import annotations

from cairnflow import Flow, signals, states, task, triggers


@task
def ok():
    return "ok"


@task
def boom():
    raise ValueError("broke")


@task
def skip():
    raise signals.SKIP("skipped")


@task(trigger=triggers.always_run)
def cleanup():
    return "cleaned"


def test_all_tasks_succeeding_makes_the_flow_succeed(memory_store):
    with Flow("green") as flow:
        ok(upstream_tasks=[ok()])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Success
    assert flow_state.message == "All reference tasks succeeded."


def test_a_failing_terminal_task_fails_the_flow(memory_store):
    with Flow("red") as flow:
        boom(upstream_tasks=[ok()])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Failed
    assert flow_state.message == "Some reference tasks failed."


def test_trigger_failed_terminal_task_fails_the_flow(memory_store):
    with Flow("trigger-red") as flow:
        ok(upstream_tasks=[boom()])
    flow_state = flow.run(store=memory_store)
    assert flow_state.is_failed()


def test_reference_tasks_default_to_the_terminal_tasks():
    with Flow("terminal") as flow:
        first = ok()
        last = ok(upstream_tasks=[first])
    assert flow.reference_tasks() == {last}


def test_failure_upstream_of_a_successful_terminal_task_does_not_fail_the_flow(memory_store):
    with Flow("recovered") as flow:
        cleanup(upstream_tasks=[boom()])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Success


def test_set_reference_tasks_ignores_a_failing_non_reference_task(memory_store):
    with Flow("reference") as flow:
        good = ok()
        boom()
    flow.set_reference_tasks([good])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Success
    assert flow_state.message == "All reference tasks succeeded."


def test_a_failing_reference_task_fails_the_flow_even_if_not_terminal(memory_store):
    with Flow("reference-fails") as flow:
        bad = boom()
        cleanup(upstream_tasks=[bad])
    flow.set_reference_tasks([bad])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Failed


def test_skipped_terminal_tasks_count_as_success(memory_store):
    with Flow("skipped") as flow:
        skip()
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Success
    assert flow_state.message == "All reference tasks succeeded."


def test_a_failing_mapped_child_of_a_terminal_task_fails_the_flow(memory_store):
    @task
    def maybe(x):
        if x == 2:
            raise ValueError("two")
        return x

    with Flow("mapped-terminal") as flow:
        maybe.map([1, 2, 3])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Failed


def test_a_paused_reference_task_leaves_the_flow_unfinished(memory_store):
    @task(trigger=triggers.manual_only)
    def approve():
        return "approved"

    with Flow("paused") as flow:
        approve(upstream_tasks=[ok()])
    flow_state = flow.run(store=memory_store)
    assert not flow_state.is_finished()
    assert not flow_state.is_successful()


def test_flow_state_result_maps_every_task_to_its_state(memory_store):
    with Flow("results") as flow:
        a = ok()
        b = boom()
    flow_state = flow.run(store=memory_store)
    assert set(flow_state.result) == {a, b}
    assert flow_state.result[a].result == "ok"
    assert flow_state.result[b].is_failed()


def test_flow_state_carries_its_run_id(memory_store):
    with Flow("run-id") as flow:
        ok()
    flow_state = flow.run(store=memory_store)
    assert flow_state.context["flow_run_id"] == memory_store.list_runs()[0].id


def test_stored_flow_run_state_matches_the_returned_state(memory_store):
    with Flow("stored") as flow:
        boom()
    flow_state = flow.run(store=memory_store)
    info = memory_store.list_runs()[0]
    assert (info.state, info.message) == ("Failed", flow_state.message)
    assert info.ended_at is not None


def test_flow_with_no_tasks_succeeds(memory_store):
    flow_state = Flow("empty").run(store=memory_store)
    assert flow_state.is_successful()
