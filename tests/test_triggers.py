"""Triggers: whether a task runs given its upstream tasks' final states.

Each trigger is checked twice: as a plain function of a set of states, and in
a flow, where a task whose trigger does not pass is TriggerFailed (never
Running) and its code does not run.
"""

from __future__ import annotations

import pytest

from cairnflow import Flow, signals, states, task, triggers

from conftest import history

S, F, SK = states.Success, states.Failed, states.Skipped


@task
def ok():
    return "ok"


@task
def boom():
    raise ValueError("upstream broke")


@task
def skip():
    raise signals.SKIP("skipped upstream")


def _flow_with(trigger, upstream_tasks, calls, **task_kwargs):
    """A flow where ``guarded`` (with ``trigger``) waits for ``upstream_tasks``."""

    @task(trigger=trigger, **task_kwargs)
    def guarded():
        calls.append("ran")
        return "guarded ran"

    with Flow("triggers") as flow:
        ups = [u() for u in upstream_tasks]
        guarded_task = guarded(upstream_tasks=ups)
    return flow, guarded_task


def _run_guarded(store, trigger, upstream_tasks, **task_kwargs):
    calls: list[str] = []
    flow, guarded_task = _flow_with(trigger, upstream_tasks, calls, **task_kwargs)
    flow_state = flow.run(store=store)
    return flow_state, flow_state.result[guarded_task], calls


# -- the trigger functions -------------------------------------------------------------


@pytest.mark.parametrize("trigger, upstream, passes", [
    (triggers.all_successful, {S(), SK()}, True),
    (triggers.all_successful, {S(), F()}, False),
    (triggers.all_failed, {F(), states.TriggerFailed()}, True),
    (triggers.all_failed, {F(), S()}, False),
    (triggers.any_successful, {F(), S()}, True),
    (triggers.any_successful, {F(), states.TimedOut()}, False),
    (triggers.any_failed, {S(), F()}, True),
    (triggers.any_failed, {S(), SK()}, False),
    (triggers.all_finished, {S(), F(), SK()}, True),
    (triggers.all_finished, {S(), states.Pending()}, False),
    (triggers.always_run, {F()}, True),
    (triggers.not_all_skipped, {SK(), S()}, True),
    (triggers.not_all_skipped, {SK(), F()}, False),
    (triggers.some_successful(at_least=2), {S(), S(), F()}, True),
    (triggers.some_successful(at_least=2), {S(), F(), F()}, False),
    (triggers.some_successful(at_most=1), {S(), F()}, True),
    (triggers.some_successful(at_most=1), {S(), S()}, False),
    (triggers.some_successful(at_least=0.5), {S(), F()}, True),
    (triggers.some_successful(at_least=0.5), {S(), F(), F()}, False),
    (triggers.some_failed(at_least=1), {S(), F()}, True),
    (triggers.some_failed(at_least=1), {S(), S()}, False),
    (triggers.some_failed(at_most=1), {S(), F()}, True),
    (triggers.some_failed(at_most=1), {F(), F()}, False),
])
def test_trigger_function_passes_or_raises_triggerfail(trigger, upstream, passes):
    if passes:
        assert trigger(upstream) is True
    else:
        with pytest.raises(signals.TRIGGERFAIL):
            trigger(upstream)


def test_all_successful_with_no_upstream_passes():
    assert triggers.all_successful(set()) is True


def test_manual_only_raises_pause():
    with pytest.raises(signals.PAUSE, match="manual_only"):
        triggers.manual_only({S()})


def test_not_all_skipped_raises_skip_when_every_upstream_skipped():
    with pytest.raises(signals.SKIP):
        triggers.not_all_skipped({SK(), SK()})


def test_always_run_is_all_finished():
    assert triggers.always_run is triggers.all_finished


# -- in a flow: all_successful (the default) ------------------------------------------


def test_all_successful_runs_when_every_upstream_succeeded(memory_store):
    flow_state, state, calls = _run_guarded(memory_store, triggers.all_successful, [ok, ok])
    assert state.is_successful() and calls == ["ran"]
    assert flow_state.is_successful()


def test_all_successful_is_the_default_trigger():
    assert ok.trigger is triggers.all_successful


def test_all_successful_trigger_fails_when_an_upstream_failed(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.all_successful, [ok, boom])
    assert type(state) is states.TriggerFailed
    assert state.message == 'Trigger was "all_successful" but some of the upstream tasks failed.'
    assert calls == []


def test_trigger_failed_task_is_never_running(memory_store):
    flow, guarded_task = _flow_with(triggers.all_successful, [boom], [])
    flow.run(store=memory_store)
    slug = flow.slugs[guarded_task]
    assert [s for _, _, s in history(memory_store, task_slug=slug)] == ["Pending", "TriggerFailed"]


def test_trigger_failure_propagates_down_a_chain(memory_store):
    calls = []

    @task
    def third():
        calls.append("third")

    with Flow("chain") as flow:
        second = ok(upstream_tasks=[boom()])
        last = third(upstream_tasks=[second])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[second]) is states.TriggerFailed
    assert type(flow_state.result[last]) is states.TriggerFailed
    assert calls == []


# -- all_failed --------------------------------------------------------------------------


def test_all_failed_runs_when_every_upstream_failed(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.all_failed, [boom, boom])
    assert state.is_successful() and calls == ["ran"]


def test_all_failed_trigger_fails_when_an_upstream_succeeded(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.all_failed, [boom, ok])
    assert type(state) is states.TriggerFailed
    assert state.message == 'Trigger was "all_failed" but some of the upstream tasks succeeded.'
    assert calls == []


# -- any_successful ----------------------------------------------------------------------


def test_any_successful_runs_when_one_upstream_succeeded(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.any_successful, [boom, ok])
    assert state.is_successful() and calls == ["ran"]


def test_any_successful_trigger_fails_when_none_succeeded(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.any_successful, [boom, boom])
    assert type(state) is states.TriggerFailed
    assert state.message == ('Trigger was "any_successful" but none of the upstream tasks '
                             'succeeded.')
    assert calls == []


# -- any_failed --------------------------------------------------------------------------


def test_any_failed_runs_when_one_upstream_failed(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.any_failed, [ok, boom])
    assert state.is_successful() and calls == ["ran"]


def test_any_failed_trigger_fails_when_none_failed(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.any_failed, [ok, ok])
    assert type(state) is states.TriggerFailed
    assert state.message == 'Trigger was "any_failed" but none of the upstream tasks failed.'
    assert calls == []


def test_any_failed_counts_a_trigger_failed_upstream_as_failed(memory_store):
    calls = []

    @task(trigger=triggers.any_failed)
    def alert():
        calls.append("alert")

    with Flow("alerting") as flow:
        middle = ok(upstream_tasks=[boom()])
        alert(upstream_tasks=[middle])
    flow.run(store=memory_store)
    assert calls == ["alert"]


# -- all_finished / always_run -----------------------------------------------------------


@pytest.mark.parametrize("trigger", [triggers.all_finished, triggers.always_run])
def test_all_finished_runs_after_a_failure(memory_store, trigger):
    _, state, calls = _run_guarded(memory_store, trigger, [boom, ok])
    assert state.is_successful() and calls == ["ran"]


def test_always_run_runs_after_success_too(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.always_run, [ok])
    assert state.is_successful() and calls == ["ran"]


def test_all_finished_runs_after_a_skipped_upstream_when_not_skipping(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.all_finished, [skip],
                                   skip_on_upstream_skip=False)
    assert state.is_successful() and calls == ["ran"]


# -- manual_only -------------------------------------------------------------------------


def test_manual_only_pauses_the_task_without_running_it(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.manual_only, [ok])
    assert type(state) is states.Paused
    assert state.message == 'Trigger function is "manual_only"'
    assert calls == []


def test_manual_only_task_does_not_let_the_flow_succeed_or_downstream_run(memory_store):
    calls = []

    @task(trigger=triggers.manual_only)
    def approve():
        calls.append("approve")

    @task
    def after():
        calls.append("after")

    with Flow("approval") as flow:
        gate = approve(upstream_tasks=[ok()])
        later = after(upstream_tasks=[gate])
    flow_state = flow.run(store=memory_store)
    assert not flow_state.is_successful()
    assert not flow_state.is_failed()
    assert flow_state.result[later].is_pending()
    assert calls == []
    assert memory_store.list_runs()[0].state == flow_state.name


def test_manual_only_paused_is_recorded(memory_store):
    flow, guarded_task = _flow_with(triggers.manual_only, [ok], [])
    flow.run(store=memory_store)
    slug = flow.slugs[guarded_task]
    assert [s for _, _, s in history(memory_store, task_slug=slug)] == ["Pending", "Paused"]


# -- not_all_skipped ---------------------------------------------------------------------


def test_not_all_skipped_runs_when_some_upstream_ran(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.not_all_skipped, [skip, ok],
                                   skip_on_upstream_skip=False)
    assert state.is_successful() and calls == ["ran"]


def test_not_all_skipped_skips_when_every_upstream_skipped(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.not_all_skipped, [skip, skip],
                                   skip_on_upstream_skip=False)
    assert type(state) is states.Skipped
    assert calls == []


def test_not_all_skipped_trigger_fails_when_an_upstream_failed(memory_store):
    _, state, calls = _run_guarded(memory_store, triggers.not_all_skipped, [ok, boom],
                                   skip_on_upstream_skip=False)
    assert type(state) is states.TriggerFailed
    assert state.message == ('Trigger was "not_all_skipped" but some of the upstream tasks '
                             'failed.')
    assert calls == []


# -- some_successful / some_failed -------------------------------------------------------


def test_some_successful_at_least_runs_when_enough_succeeded(memory_store):
    trigger = triggers.some_successful(at_least=2)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, ok, boom])
    assert state.is_successful() and calls == ["ran"]


def test_some_successful_at_least_trigger_fails_when_too_few_succeeded(memory_store):
    trigger = triggers.some_successful(at_least=2)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, boom, boom])
    assert type(state) is states.TriggerFailed
    assert state.message.startswith('Trigger was "some_successful"')
    assert calls == []


def test_some_successful_at_most_trigger_fails_when_too_many_succeeded(memory_store):
    trigger = triggers.some_successful(at_most=1)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, ok, boom])
    assert type(state) is states.TriggerFailed
    assert calls == []


def test_some_successful_between_bounds_runs(memory_store):
    trigger = triggers.some_successful(at_least=1, at_most=2)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, ok, boom])
    assert state.is_successful() and calls == ["ran"]


def test_some_failed_at_least_runs_when_enough_failed(memory_store):
    trigger = triggers.some_failed(at_least=1)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, boom])
    assert state.is_successful() and calls == ["ran"]


def test_some_failed_at_least_trigger_fails_when_none_failed(memory_store):
    trigger = triggers.some_failed(at_least=1)
    _, state, calls = _run_guarded(memory_store, trigger, [ok, ok])
    assert type(state) is states.TriggerFailed
    assert state.message.startswith('Trigger was "some_failed"')
    assert calls == []


def test_some_failed_at_most_trigger_fails_when_too_many_failed(memory_store):
    trigger = triggers.some_failed(at_most=1)
    _, state, calls = _run_guarded(memory_store, trigger, [boom, boom, ok])
    assert type(state) is states.TriggerFailed
    assert calls == []


def test_some_failed_fraction_counts_a_share_of_upstreams(memory_store):
    trigger = triggers.some_failed(at_least=0.5)
    _, state, calls = _run_guarded(memory_store, trigger, [boom, boom, ok])
    assert state.is_successful() and calls == ["ran"]


# -- triggers over mapped upstreams, and custom triggers ----------------------------------


def test_trigger_sees_each_mapped_child_of_an_upstream(memory_store):
    calls = []

    @task
    def maybe_fail(x):
        if x == 2:
            raise ValueError("two")
        return x

    @task(trigger=triggers.some_failed(at_least=1, at_most=1))
    def report(xs):
        calls.append("report")

    with Flow("mapped-upstream") as flow:
        report(maybe_fail.map([1, 2, 3]))
    flow.run(store=memory_store)
    assert calls == ["report"]


def test_custom_trigger_returning_false_trigger_fails(memory_store):
    def never(upstream_states):
        return False

    _, state, calls = _run_guarded(memory_store, never, [ok])
    assert type(state) is states.TriggerFailed
    assert state.message == 'Trigger was "never" but it returned False.'
    assert calls == []


def test_custom_trigger_receives_prefects_dict_of_edge_to_state(memory_store):
    seen = []

    def spy(upstream_states):
        seen.append(sorted((edge.upstream_task.name, state.name)
                           for edge, state in upstream_states.items()))
        return True

    _run_guarded(memory_store, spy, [ok, boom])
    assert seen == [[("boom", "Failed"), ("ok", "Success")]]


def test_trigger_that_raises_an_error_trigger_fails(memory_store):
    def broken(upstream_states):
        raise RuntimeError("bad trigger")

    _, state, calls = _run_guarded(memory_store, broken, [ok])
    assert type(state) is states.TriggerFailed
    assert "RuntimeError('bad trigger')" in state.message
    assert calls == []


@pytest.mark.parametrize("trigger", [triggers.some_successful(at_least=1),
                                     triggers.some_failed(at_least=1)])
def test_some_triggers_pass_without_upstream_tasks(trigger):
    assert trigger(set()) is True
