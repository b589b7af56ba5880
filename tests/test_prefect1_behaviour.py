"""Behaviours that follow Prefect 1.4.1 (its docs and source): triggers of
``Dict[Edge, State]``, mapping over ``upstream_tasks``, the LOOP context, the
date keys of the context, and flow.run()'s errors."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from cairnflow import Flow, Parameter, context, task, triggers, unmapped
from cairnflow.core.edge import Edge
from cairnflow.engine import signals
from cairnflow.engine.flow_runner import FlowRunner
from cairnflow.engine.state import Mapped, Success, TriggerFailed
from cairnflow.schedules import Schedule
from cairnflow.schedules.clocks import DatesClock


@task
def numbers():
    return [1, 2, 3]


@task
def inc(x):
    return x + 1


def test_a_user_trigger_gets_each_edge_and_its_state(memory_store):
    seen = {}

    def only_if_x_succeeded(upstream_states):
        for edge, state in upstream_states.items():
            seen[(edge.key, edge.upstream_task.name)] = type(state).__name__
        return all(s.is_successful() for e, s in upstream_states.items() if e.key == "x")

    @task(trigger=only_if_x_succeeded)
    def add(x, y):
        return x + len(y)

    with Flow("t") as flow:
        total = add(inc(1), y=numbers())
    state = flow.run(store=memory_store)
    assert state.result[total].result == 5
    assert seen == {("x", "inc"): "Success", ("y", "numbers"): "Success"}


def test_a_reducing_task_sees_the_mapped_state_and_a_child_sees_its_sibling(memory_store):
    seen = []

    def spy(upstream_states):
        seen.append(sorted(type(s).__name__ for s in upstream_states.values()))
        return True

    @task(trigger=spy)
    def total(xs):
        return sum(xs)

    @task(trigger=spy)
    def double(x):
        return 2 * x

    with Flow("t") as flow:
        mapped = inc.map(numbers())
        doubled = double.map(mapped)
        out = total(doubled)
    state = flow.run(store=memory_store)
    assert state.result[out].result == 18
    assert seen == [["Success"]] * 3 + [["Mapped"]]
    assert isinstance(state.result[doubled], Mapped)


def test_builtin_triggers_take_the_dict_too_and_count_mapped_children():
    child_ok, child_bad = Success(), signals.FAIL("x").state
    edge = Edge(numbers, inc)
    states = {edge: Mapped(map_states=[child_ok, child_bad])}
    assert triggers.any_failed(states)
    with pytest.raises(signals.TRIGGERFAIL):
        triggers.all_successful(states)
    assert triggers.all_finished(states)
    assert triggers.some_successful(at_least=1)(states)


def test_map_maps_over_its_upstream_tasks_unless_unmapped(memory_store):
    order = []

    @task
    def first(x):
        order.append(("first", x))
        return x

    @task
    def second(x):
        order.append(("second", x))
        return x

    with Flow("t") as flow:
        firsts = first.map([1, 2])
        seconds = second.map([10, 20], upstream_tasks=[firsts])
        whole = second.map([7, 8], upstream_tasks=[unmapped(numbers())])
    state = flow.run(store=memory_store)
    assert [s.result for s in state.result[seconds].map_states] == [10, 20]
    assert len(state.result[whole].map_states) == 2
    assert flow.edges_to(seconds) == {Edge(firsts, seconds, mapped=True),
                                      *{e for e in flow.edges_to(seconds) if e.key}}


def test_mapping_over_an_upstream_without_a_list_result_fails_as_in_prefect(memory_store):
    @task
    def nothing():
        return None

    with Flow("t") as flow:
        out = inc.map([1, 2], upstream_tasks=[nothing()])
    state = flow.run(store=memory_store)
    assert state.result[out].is_failed()
    assert "unmappable" in state.result[out].message


def test_task_loop_result_is_absent_on_the_first_iteration(memory_store):
    @task
    def loop_until_30():
        loop_payload = context.get("task_loop_result", 0)
        if loop_payload >= 30:
            return loop_payload
        raise signals.LOOP(message=f"at {loop_payload}", result=loop_payload + 10)

    with Flow("loop") as flow:
        out = loop_until_30()
    assert flow.run(store=memory_store).result[out].result == 30


def test_context_has_prefects_date_keys_and_a_given_date_moves_them(memory_store):
    @task
    def dates():
        return {k: context.get(k) for k in (
            "today", "yesterday", "tomorrow", "today_nodash", "yesterday_nodash",
            "tomorrow_nodash")} | {"date": context.date}

    with Flow("dates") as flow:
        out = dates()
    now = flow.run(store=memory_store).result[out].result
    today = pendulum.now("UTC")
    assert now["today"] == today.strftime("%Y-%m-%d")
    assert now["tomorrow_nodash"] == today.add(days=1).strftime("%Y%m%d")
    moved = flow.run(store=memory_store, context={"date": "2024-03-01T10:00:00+00:00"})
    got = moved.result[out].result
    assert got["date"] == pendulum.datetime(2024, 3, 1, 10)
    assert (got["yesterday"], got["today"], got["tomorrow"]) == (
        "2024-02-29", "2024-03-01", "2024-03-02")
    assert (got["yesterday_nodash"], got["today_nodash"]) == ("20240229", "20240301")


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_the_runs_dates_are_its_start_wherever_and_whenever_they_are_read(
        memory_store, executor):
    """The dates are made when first read (see ``context.RunDates``): still the run's
    start, the same in every task run, in a worker process too, in ``to_dict`` and
    for ``in``; a value the run's context sets wins."""
    from cairnflow.executors import LocalDaskExecutor, LocalExecutor

    @task
    def read(_=None):
        values = context.to_dict()
        return (context.date, context["scheduled_start_time"], values["today"],
                "yesterday" in context, context.get("tomorrow_nodash"), context.get("nope"))

    with Flow("dates") as flow:
        first = read()
        second = read(first)
    chosen = LocalExecutor() if executor == "local" else LocalDaskExecutor("processes", 2)
    before = pendulum.now("UTC")
    state = flow.run(store=memory_store, executor=chosen)
    after = pendulum.now("UTC")
    a, b = state.result[first].result, state.result[second].result
    assert a == b
    date, scheduled, today, has_yesterday, tomorrow, missing = a
    assert isinstance(date, pendulum.DateTime) and before <= date <= after
    assert scheduled == date and today == date.strftime("%Y-%m-%d")
    assert has_yesterday and tomorrow == date.add(days=1).strftime("%Y%m%d")
    assert missing is None
    given = flow.run(store=memory_store, executor=LocalExecutor(), context={"today": "x"})
    assert given.result[first].result[2] == "x"


def test_a_schedule_with_no_more_runs_raises_prefects_value_error(memory_store):
    with Flow("past", schedule=Schedule(clocks=[DatesClock([pendulum.datetime(2000, 1, 1)])])) \
            as flow:
        inc(1)
    with pytest.raises(ValueError, match="^Flow has no more scheduled runs.$"):
        flow.run(store=memory_store)


def test_return_tasks_is_refused_by_flow_run_and_checked_by_flow_runner(memory_store):
    with Flow("rt") as flow:
        a = inc(1)
    with pytest.raises(ValueError, match="The `return_tasks` keyword cannot be provided"):
        flow.run(return_tasks=[a], store=memory_store)
    with pytest.raises(ValueError, match="Some tasks in return_tasks were not found"):
        FlowRunner(flow=flow).run(return_tasks=[inc], store=memory_store)
    state = FlowRunner(flow=flow).run(return_tasks=[], store=memory_store)
    assert state.is_successful() and state.result == {}


def test_task_states_given_to_run_are_taken_and_their_tasks_do_not_run(memory_store):
    calls = []

    @task
    def fetch():
        calls.append("fetch")
        return 1

    with Flow("given") as flow:
        f = fetch()
        out = inc(f)
    state = flow.run(task_states={f: Success(result=41)}, store=memory_store)
    assert calls == []
    assert state.result[out].result == 42
    assert state.result[f].result == 41


def test_flow_runner_runs_with_parameters_and_task_states(memory_store):
    with Flow("fr") as flow:
        n = Parameter("n")
        out = inc(n)
    state = FlowRunner(flow=flow).run(parameters={"n": 4}, return_tasks=[out],
                                      store=memory_store)
    assert state.result[out].result == 5
    failed = FlowRunner(flow=flow).run(parameters={"n": 4}, return_tasks=[out],
                                       task_states={out: TriggerFailed("given")},
                                       store=memory_store)
    assert failed.is_failed() and failed.result[out].message == "given"


def test_retries_still_work_with_the_changed_task_context(memory_store):
    attempts = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first time")
        return "ok"

    with Flow("retry") as flow:
        out = flaky()
    assert flow.run(store=memory_store).result[out].result == "ok"
    assert len(attempts) == 2
