"""One task run: retries, timeouts, loops, state handlers, caching, context and logs."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from cairnflow import (
    Flow, Parameter, cache_validators, context, get_run_logger, signals, states, task,
)

from conftest import history


def _run_one(fn, store, name="one", **task_kwargs):
    """Run a one-task flow; return (flow, flow state, task state)."""
    t = task(fn, **task_kwargs)
    with Flow(name) as flow:
        bound = t()
    flow_state = flow.run(store=store)
    return flow, flow_state, flow_state.result[bound]


def _task_runs(store):
    return store.get_task_runs(store.list_runs()[0].id)


def _states_of(store, slug):
    return [s for _, _, s in history(store, task_slug=slug)]


# -- retries -----------------------------------------------------------------------------


def test_max_retries_without_retry_delay_is_a_value_error():
    with pytest.raises(ValueError, match="retry_delay"):
        @task(max_retries=2)
        def needs_delay():
            pass


def test_persistent_failure_runs_max_retries_plus_one_times(memory_store):
    calls = []

    def always_fails():
        calls.append(1)
        raise ValueError("still broken")

    _, flow_state, state = _run_one(always_fails, memory_store, max_retries=2,
                                    retry_delay=timedelta(0))
    assert type(state) is states.Failed
    assert state.message == "Error during execution of task: ValueError('still broken')"
    assert len(calls) == 3
    [info] = _task_runs(memory_store)
    assert info.attempts == 3
    assert flow_state.is_failed()


def test_transient_failure_succeeds_on_retry(memory_store):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time only")
        return "second time lucky"

    _, flow_state, state = _run_one(flaky, memory_store, max_retries=3,
                                    retry_delay=timedelta(0))
    assert state.is_successful()
    assert state.result == "second time lucky"
    assert len(calls) == 2
    [info] = _task_runs(memory_store)
    assert (info.state, info.attempts) == ("Success", 2)
    assert flow_state.is_successful()


def test_retrying_state_is_recorded_between_attempts_with_its_message(memory_store):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")

    flow, _, _ = _run_one(flaky, memory_store, max_retries=2, retry_delay=timedelta(0))
    slug = next(iter(flow.slugs.values()))
    transitions = memory_store.get_history(memory_store.list_runs()[0].id, slug)
    assert [t.state for t in transitions] == [
        "Pending", "Running", "Retrying", "Running", "Success"]
    assert transitions[2].message == "Retrying Task (after attempt 1 of 3)"


def test_retry_waits_for_retry_delay(memory_store):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")

    flow, _, _ = _run_one(flaky, memory_store, max_retries=1,
                          retry_delay=timedelta(seconds=0.05))
    slug = next(iter(flow.slugs.values()))
    transitions = memory_store.get_history(memory_store.list_runs()[0].id, slug)
    retrying, second_running = transitions[2], transitions[3]
    assert retrying.state == "Retrying" and second_running.state == "Running"
    assert (second_running.timestamp - retrying.timestamp).total_seconds() >= 0.045


def test_no_retry_without_max_retries(memory_store):
    calls = []

    def fails():
        calls.append(1)
        raise ValueError("x")

    _run_one(fails, memory_store)
    assert calls == [1]
    assert _task_runs(memory_store)[0].attempts == 1


def test_retry_signal_runs_the_task_again_without_max_retries(memory_store):
    calls = []

    def asks_for_retry():
        calls.append(1)
        if len(calls) == 1:
            raise signals.RETRY("try again")
        return "done"

    flow, _, state = _run_one(asks_for_retry, memory_store)
    assert state.is_successful() and state.result == "done"
    assert len(calls) == 2
    assert _task_runs(memory_store)[0].attempts == 2
    slug = next(iter(flow.slugs.values()))
    assert _states_of(memory_store, slug) == [
        "Pending", "Running", "Retrying", "Running", "Success"]


def test_task_run_count_counts_attempts(memory_store):
    seen = []

    def flaky():
        seen.append(context.task_run_count)
        if len(seen) < 3:
            raise ValueError("not yet")

    _run_one(flaky, memory_store, max_retries=2, retry_delay=timedelta(0))
    assert seen == [1, 2, 3]


# -- timeouts ----------------------------------------------------------------------------


def test_task_past_its_timeout_is_timed_out(memory_store):
    def slow():
        time.sleep(2)
        return "too late"

    _, flow_state, state = _run_one(slow, memory_store, timeout=0.2)
    assert type(state) is states.TimedOut
    assert state.message == "Task timed out during execution."
    assert state.is_failed()
    assert flow_state.is_failed()
    assert _task_runs(memory_store)[0].state == "TimedOut"


def test_task_within_its_timeout_succeeds(memory_store):
    _, _, state = _run_one(lambda: "quick", memory_store, timeout=5)
    assert state.is_successful() and state.result == "quick"


def test_timed_out_task_is_retried(memory_store):
    calls = []

    def slow():
        calls.append(1)
        time.sleep(2)

    flow, _, state = _run_one(slow, memory_store, timeout=0.2, max_retries=1,
                              retry_delay=timedelta(0))
    assert type(state) is states.TimedOut
    assert len(calls) == 2
    assert _task_runs(memory_store)[0].attempts == 2
    slug = next(iter(flow.slugs.values()))
    assert _states_of(memory_store, slug) == [
        "Pending", "Running", "Retrying", "Running", "TimedOut"]


def test_timeout_succeeds_on_a_faster_retry(memory_store):
    calls = []

    def slow_then_fast():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(2)
        return "fast"

    _, _, state = _run_one(slow_then_fast, memory_store, timeout=0.2, max_retries=1,
                           retry_delay=timedelta(0))
    assert state.is_successful() and state.result == "fast"


def test_timeout_accepts_a_timedelta():
    t = task(lambda: None, timeout=timedelta(seconds=3))
    assert t.timeout == 3


# -- loops -------------------------------------------------------------------------------


def test_loop_reruns_the_task_with_loop_result_and_count(memory_store):
    seen = []

    def count_up():
        # absent on the first iteration, as in Prefect 1's task-looping example
        seen.append((context.task_loop_count, context.get("task_loop_result", "absent")))
        total = context.get("task_loop_result", 0)
        if context.task_loop_count < 3:
            raise signals.LOOP(result=total + 10)
        return total

    _, flow_state, state = _run_one(count_up, memory_store)
    assert seen == [(1, "absent"), (2, 10), (3, 20)]
    assert state.is_successful() and state.result == 20
    assert flow_state.is_successful()


def test_loop_records_looped_between_iterations(memory_store):
    def twice():
        if context.task_loop_count < 2:
            raise signals.LOOP(result=1)
        return "done"

    flow, _, _ = _run_one(twice, memory_store)
    slug = next(iter(flow.slugs.values()))
    assert _states_of(memory_store, slug) == [
        "Pending", "Running", "Looped", "Running", "Success"]


# -- state handlers ----------------------------------------------------------------------


def _recording_handler(log):
    def handler(task_, old, new):
        log.append((task_, type(old).__name__, type(new).__name__))
    return handler


def test_state_handler_sees_each_transition_with_task_old_and_new(memory_store):
    log = []
    t = task(lambda: 1, state_handlers=[_recording_handler(log)])
    with Flow("handlers") as flow:
        bound = t()
    flow.run(store=memory_store)
    assert [(old, new) for _, old, new in log] == [("Pending", "Running"), ("Running", "Success")]
    assert all(seen_task is bound for seen_task, _, _ in log)


def test_state_handler_sees_retries(memory_store):
    log = []
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")

    _run_one(flaky, memory_store, max_retries=1, retry_delay=timedelta(0),
             state_handlers=[_recording_handler(log)])
    assert [(old, new) for _, old, new in log] == [
        ("Pending", "Running"), ("Running", "Retrying"), ("Retrying", "Running"),
        ("Running", "Success")]


def test_state_handler_returned_state_replaces_the_new_state(memory_store):
    def recover(task_, old, new):
        if new.is_failed():
            return states.Success("recovered by handler", result="fallback")
        return None

    def fails():
        raise ValueError("x")

    _, flow_state, state = _run_one(fails, memory_store, state_handlers=[recover])
    assert type(state) is states.Success
    assert state.message == "recovered by handler" and state.result == "fallback"
    assert flow_state.is_successful()
    assert _task_runs(memory_store)[0].state == "Success"


def test_several_state_handlers_chain(memory_store):
    def first(task_, old, new):
        if new.is_successful():
            return states.Success("first", result=1)

    def second(task_, old, new):
        if new.is_successful():
            return states.Success(new.message + "+second", result=new.result + 1)

    _, _, state = _run_one(lambda: 0, memory_store, state_handlers=[first, second])
    assert (state.message, state.result) == ("first+second", 2)


def test_state_handler_error_fails_the_task(memory_store):
    def broken(task_, old, new):
        raise RuntimeError("handler broke")

    _, flow_state, state = _run_one(lambda: 1, memory_store, state_handlers=[broken])
    assert state.is_failed()
    assert state.message == ("Exception raised while calling state handlers: "
                             "RuntimeError('handler broke')")
    assert flow_state.is_failed()


def test_on_failure_is_called_once_with_the_failed_state(memory_store):
    calls = []

    def fails():
        raise ValueError("x")

    _run_one(fails, memory_store, on_failure=lambda t, s: calls.append((t, type(s).__name__)))
    assert [name for _, name in calls] == ["Failed"]


def test_on_failure_is_not_called_on_success(memory_store):
    calls = []
    _run_one(lambda: 1, memory_store, on_failure=lambda t, s: calls.append(s))
    assert calls == []


def test_on_failure_is_called_once_after_the_last_retry(memory_store):
    calls = []

    def fails():
        raise ValueError("x")

    _run_one(fails, memory_store, max_retries=2, retry_delay=timedelta(0),
             on_failure=lambda t, s: calls.append(type(s).__name__))
    assert calls == ["Failed"]


def test_on_failure_is_called_for_a_trigger_failure(memory_store):
    calls = []

    @task
    def broken():
        raise ValueError("x")

    @task(on_failure=lambda t, s: calls.append(type(s).__name__))
    def after():
        pass

    with Flow("on-failure-trigger") as flow:
        after(upstream_tasks=[broken()])
    flow.run(store=memory_store)
    assert calls == ["TriggerFailed"]


def test_state_handler_sees_a_trigger_failure_straight_from_pending(memory_store):
    log = []

    @task
    def broken():
        raise ValueError("x")

    @task(state_handlers=[_recording_handler(log)])
    def after():
        pass

    with Flow("handler-trigger") as flow:
        after(upstream_tasks=[broken()])
    flow.run(store=memory_store)
    assert [(old, new) for _, old, new in log] == [("Pending", "TriggerFailed")]


def test_state_handler_replacing_running_prevents_the_code_from_running(memory_store):
    calls = []

    def veto(task_, old, new):
        if new.is_running():
            return states.Skipped("vetoed by handler")

    _, flow_state, state = _run_one(lambda: calls.append(1), memory_store,
                                    state_handlers=[veto])
    assert type(state) is states.Skipped and state.message == "vetoed by handler"
    assert calls == []
    assert flow_state.is_successful()


def test_flow_state_handlers_see_running_then_the_final_state(memory_store):
    log = []

    def handler(flow_, old, new):
        log.append((flow_, type(new).__name__))

    t = task(lambda: 1)
    with Flow("flow-handlers", state_handlers=[handler]) as flow:
        t()
    flow.run(store=memory_store)
    assert [name for _, name in log] == ["Running", "Success"]
    assert all(seen is flow for seen, _ in log)


def test_flow_state_handler_returned_state_replaces_the_final_state(memory_store):
    def forgive(flow_, old, new):
        if new.is_failed():
            return states.Success("forgiven")

    def fails():
        raise ValueError("x")

    t = task(fails)
    with Flow("forgiving", state_handlers=[forgive]) as flow:
        t()
    flow_state = flow.run(store=memory_store)
    assert type(flow_state) is states.Success and flow_state.message == "forgiven"
    assert memory_store.list_runs()[0].state == "Success"


# -- caching -----------------------------------------------------------------------------


def _unique(name):
    """Flow names are part of the process-wide cache key: keep tests apart."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_cache_for_reuses_the_result_in_a_second_run(memory_store):
    calls = []

    @task(cache_for=timedelta(hours=1))
    def expensive():
        calls.append(1)
        return "computed"

    with Flow(_unique("cached")) as flow:
        bound = expensive()
    first = flow.run(store=memory_store)
    second = flow.run(store=memory_store)
    assert type(first.result[bound]) is states.Success
    assert type(second.result[bound]) is states.Cached
    assert second.result[bound].result == "computed"
    assert calls == [1]
    assert second.is_successful()


def test_cached_task_run_records_cached_without_running(memory_store):
    @task(cache_for=timedelta(hours=1))
    def expensive():
        return 1

    with Flow(_unique("cached-history")) as flow:
        bound = expensive()
    flow.run(store=memory_store)
    flow.run(store=memory_store)
    slug = flow.slugs[bound]
    assert _states_of(memory_store, slug) == ["Pending", "Cached"]


def test_all_inputs_validator_invalidates_on_different_input(memory_store):
    calls = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def double(x):
        calls.append(x)
        return x * 2

    with Flow(_unique("inputs")) as flow:
        bound = double(Parameter("x"))
    first = flow.run(store=memory_store, x=1)
    same = flow.run(store=memory_store, x=1)
    other = flow.run(store=memory_store, x=2)
    assert type(same.result[bound]) is states.Cached and same.result[bound].result == 2
    assert type(other.result[bound]) is states.Success and other.result[bound].result == 4
    assert first.result[bound].result == 2
    assert calls == [1, 2]


def test_expired_cache_runs_the_task_again(memory_store):
    calls = []

    @task(cache_for=timedelta(microseconds=1))
    def short_lived():
        calls.append(1)

    with Flow(_unique("expired")) as flow:
        short_lived()
    flow.run(store=memory_store)
    time.sleep(0.01)
    flow.run(store=memory_store)
    assert calls == [1, 1]


def test_never_use_validator_always_runs(memory_store):
    calls = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.never_use)
    def uncached():
        calls.append(1)

    with Flow(_unique("never")) as flow:
        uncached()
    flow.run(store=memory_store)
    flow.run(store=memory_store)
    assert calls == [1, 1]


# -- context -----------------------------------------------------------------------------


def test_context_knows_the_flow_run_id(memory_store):
    seen = []
    _, flow_state, _ = _run_one(lambda: seen.append(context.flow_run_id), memory_store)
    run_id = memory_store.list_runs()[0].id
    assert seen == [run_id]
    assert flow_state.context["flow_run_id"] == run_id


def test_context_knows_the_task_slug_and_no_map_index(memory_store):
    seen = []
    flow, _, _ = _run_one(lambda: seen.append((context.task_slug, context.map_index)),
                          memory_store)
    assert seen == [(next(iter(flow.slugs.values())), None)]


def test_context_knows_each_mapped_childs_map_index(memory_store):
    seen = []

    @task
    def record(x):
        seen.append((x, context.map_index))

    with Flow("mapped-context") as flow:
        record.map([10, 20, 30])
    flow.run(store=memory_store)
    assert sorted(seen) == [(10, 0), (20, 1), (30, 2)]


def test_context_knows_the_parameters(memory_store):
    seen = []

    @task
    def record(n):
        seen.append(dict(context.parameters))

    with Flow("params") as flow:
        record(Parameter("n"))
    flow.run(store=memory_store, n=3)
    assert seen == [{"n": 3}]


def test_context_knows_flow_and_task_names(memory_store):
    seen = []

    @task(name="reporter")
    def record():
        seen.append((context.get("flow_name"), context.get("task_name")))

    with Flow("named") as flow:
        record()
    flow.run(store=memory_store)
    assert seen == [("named", "reporter")]


def test_values_set_around_flow_run_are_visible_in_tasks(memory_store):
    seen = []

    @task
    def record():
        seen.append(context.x)

    with Flow("ambient") as flow:
        record()
    with context(x=1):
        flow.run(store=memory_store)
    assert seen == [1]


def test_flow_run_context_argument_is_visible_in_tasks(memory_store):
    seen = []

    @task
    def record():
        seen.append(context.get("y"))

    with Flow("explicit") as flow:
        record()
    flow.run(store=memory_store, context={"y": 2})
    assert seen == [2]


def test_context_is_empty_of_run_values_after_the_run(memory_store):
    _run_one(lambda: None, memory_store)
    assert context.get("flow_run_id") is None
    assert context.get("task_slug") is None


# -- logs --------------------------------------------------------------------------------


def test_run_logger_records_are_stored_with_the_task_slug(memory_store):
    def talk():
        get_run_logger().info("hello from %s", "the task")

    flow, _, _ = _run_one(talk, memory_store)
    slug = next(iter(flow.slugs.values()))
    records = memory_store.get_logs(memory_store.list_runs()[0].id, task_slug=slug)
    assert [r.message for r in records] == ["hello from the task"]
    assert records[0].map_index is None


def test_flow_level_log_records_have_no_task_slug(memory_store):
    _run_one(lambda: None, memory_store)
    records = memory_store.get_logs(memory_store.list_runs()[0].id)
    assert any(r.task_slug is None for r in records)


def test_mapped_child_log_records_carry_their_map_index(memory_store):
    @task
    def talk(x):
        get_run_logger().info("child %d", x)

    with Flow("mapped-logs") as flow:
        talk.map([0, 1])
    flow.run(store=memory_store)
    records = [r for r in memory_store.get_logs(memory_store.list_runs()[0].id)
               if r.task_slug is not None]
    assert sorted((r.map_index, r.message) for r in records) == [(0, "child 0"), (1, "child 1")]


def test_log_stdout_stores_prints_once_each(memory_store):
    def chatty():
        print("hello")
        print("world")

    flow, _, _ = _run_one(chatty, memory_store, log_stdout=True)
    slug = next(iter(flow.slugs.values()))
    records = memory_store.get_logs(memory_store.list_runs()[0].id, task_slug=slug)
    assert [r.message for r in records] == ["hello", "world"]


def test_prints_are_not_stored_without_log_stdout(memory_store, capsys):
    def chatty():
        print("just stdout")

    flow, _, _ = _run_one(chatty, memory_store)
    slug = next(iter(flow.slugs.values()))
    assert memory_store.get_logs(memory_store.list_runs()[0].id, task_slug=slug) == []
    assert "just stdout" in capsys.readouterr().out


def test_log_stdout_stores_a_print_without_newline(memory_store):
    def partial():
        print("no newline", end="")

    flow, _, _ = _run_one(partial, memory_store, log_stdout=True)
    slug = next(iter(flow.slugs.values()))
    records = memory_store.get_logs(memory_store.list_runs()[0].id, task_slug=slug)
    assert [r.message for r in records] == ["no newline"]
