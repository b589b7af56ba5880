"""flow.run() with a schedule: it sleeps until each scheduled time and runs, as
Prefect 1 did, and returns the last state when the schedule has no more times."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from cairnflow import Flow, Parameter, context, schedules, task


def _every(seconds: float, times: int, **clock_kwargs) -> schedules.Schedule:
    start = pendulum.now("UTC").add(seconds=seconds)
    clock = schedules.clocks.IntervalClock(
        timedelta(seconds=seconds), start_date=start,
        end_date=start.add(seconds=seconds * (times - 1) + seconds / 2), **clock_kwargs)
    return schedules.Schedule(clocks=[clock])


def test_a_scheduled_flow_runs_once_per_scheduled_time(memory_store):
    seen = []

    @task
    def tick():
        seen.append(context.scheduled_start_time)

    with Flow("ticker", schedule=_every(0.2, times=3)) as flow:
        tick()

    state = flow.run(store=memory_store)

    assert state.is_successful()
    assert len(seen) == 3 and seen == sorted(seen)
    assert len(memory_store.list_runs(flow_name="ticker")) == 3
    for scheduled in seen:  # each run started at (not before) its time
        assert scheduled <= pendulum.now("UTC")


def test_clock_parameter_defaults_reach_the_scheduled_runs(memory_store):
    seen = []

    @task
    def greet(name):
        seen.append(name)

    with Flow("greeter", schedule=_every(0.1, times=2,
                                         parameter_defaults={"name": "Arthur"})) as flow:
        greet(Parameter("name", default="Marvin"))

    flow.run(store=memory_store)

    assert seen == ["Arthur", "Arthur"]


def test_run_on_schedule_false_runs_once_now(memory_store):
    calls = []

    @task
    def once():
        calls.append(1)

    with Flow("manual", schedule=_every(3600, times=5)) as flow:
        once()

    assert flow.run(store=memory_store, run_on_schedule=False).is_successful()
    assert calls == [1]
