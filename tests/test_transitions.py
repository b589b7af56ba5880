"""The exact sequence of transitions the engine reports through the store interface."""

from __future__ import annotations

from datetime import timedelta

from cairnflow import Flow, signals, task

from conftest import history


@task(slug="a")
def a():
    return 1


@task(slug="b")
def b(x):
    return x + 1


def test_two_task_chain(memory_store):
    with Flow("chain") as flow:
        first = a()
        second = b(first)
    flow.run(store=memory_store)
    sa, sb = flow.slugs[first], flow.slugs[second]
    assert history(memory_store) == [
        (None, None, "Running"),
        (sa, None, "Pending"), (sb, None, "Pending"),  # with the run's start: one commit
        (sa, None, "Running"), (sa, None, "Success"),
        (sb, None, "Running"), (sb, None, "Success"),
        (None, None, "Success"),
    ]


def test_retry(memory_store):
    calls = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")

    with Flow("retry") as flow:
        t = flaky()
    flow.run(store=memory_store)
    s = flow.slugs[t]
    assert history(memory_store) == [
        (None, None, "Running"), (s, None, "Pending"),
        (s, None, "Running"), (s, None, "Retrying"), (s, None, "Running"), (s, None, "Success"),
        (None, None, "Success"),
    ]


def test_trigger_failure_goes_straight_to_trigger_failed(memory_store):
    @task
    def broken():
        raise ValueError("x")

    with Flow("trigger") as flow:
        up = broken()
        down = a(upstream_tasks=[up])
    flow.run(store=memory_store)
    su, sd = flow.slugs[up], flow.slugs[down]
    assert history(memory_store) == [
        (None, None, "Running"), (su, None, "Pending"), (sd, None, "Pending"),
        (su, None, "Running"), (su, None, "Failed"),
        (sd, None, "TriggerFailed"),
        (None, None, "Failed"),
    ]


def test_trigger_failure_message_is_recorded(memory_store):
    @task
    def broken():
        raise ValueError("x")

    with Flow("trigger-message") as flow:
        down = a(upstream_tasks=[broken()])
    flow.run(store=memory_store)
    pending, t = memory_store.get_history(memory_store.list_runs()[0].id, flow.slugs[down])
    assert (pending.state, t.state) == ("Pending", "TriggerFailed")
    assert t.message == 'Trigger was "all_successful" but some of the upstream tasks failed.'


def test_skip(memory_store):
    @task
    def skipper():
        raise signals.SKIP("not today")

    with Flow("skip") as flow:
        up = skipper()
        down = a(upstream_tasks=[up])
    flow.run(store=memory_store)
    su, sd = flow.slugs[up], flow.slugs[down]
    assert history(memory_store) == [
        (None, None, "Running"), (su, None, "Pending"), (sd, None, "Pending"),
        (su, None, "Running"), (su, None, "Skipped"),
        (sd, None, "Skipped"),
        (None, None, "Success"),
    ]


def test_mapped_task_with_three_children(memory_store):
    @task
    def inc(x):
        return x + 1

    with Flow("mapped") as flow:
        t = inc.map([1, 2, 3])
    flow.run(store=memory_store)
    s = flow.slugs[t]
    task_history = [h for h in history(memory_store) if h[0] == s]
    assert task_history == [
        (s, None, "Pending"),
        (s, None, "Mapped"), (s, 0, "Pending"), (s, 1, "Pending"), (s, 2, "Pending"),
        (s, 0, "Running"), (s, 0, "Success"),
        (s, 1, "Running"), (s, 1, "Success"),
        (s, 2, "Running"), (s, 2, "Success"),
    ]


def test_mapped_parent_is_recorded_before_any_child_runs(memory_store):
    seen = []

    def listener(t):
        seen.append((t.task_slug, t.map_index, t.state))

    @task
    def inc(x):
        seen.append("code")
        return x + 1

    with Flow("mapped-order") as flow:
        t = inc.map([1, 2])
    flow.run(store=memory_store, on_transition=listener)
    s = flow.slugs[t]
    assert seen.index((s, None, "Mapped")) < seen.index("code")


def test_flow_failure_history_starts_running_and_ends_failed(memory_store):
    @task
    def broken():
        raise ValueError("x")

    with Flow("failing") as flow:
        a(upstream_tasks=[broken()])
    flow.run(store=memory_store)
    assert [s for slug, _, s in history(memory_store) if slug is None] == ["Running", "Failed"]
    transitions = memory_store.get_history(memory_store.list_runs()[0].id)
    assert (transitions[0].task_slug, transitions[0].state) == (None, "Running")
    assert (transitions[-1].task_slug, transitions[-1].state) == (None, "Failed")
    assert transitions[-1].message == "Some reference tasks failed."


def test_running_is_reported_before_the_task_code_runs(memory_store):
    events = []

    def listener(t):
        events.append(("transition", t.task_slug, t.state))

    @task(slug="work")
    def work():
        events.append(("code", "work"))

    with Flow("order") as flow:
        t = work()
    flow.run(store=memory_store, on_transition=listener)
    s = flow.slugs[t]
    assert events.index(("transition", s, "Running")) < events.index(("code", "work"))
    assert events.index(("code", "work")) < events.index(("transition", s, "Success"))


def test_each_running_of_a_retry_is_reported_before_its_attempt(memory_store):
    events = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky():
        events.append("code")
        if events.count("code") == 1:
            raise ValueError("once")

    with Flow("retry-order") as flow:
        flaky()
    flow.run(store=memory_store, on_transition=lambda t: events.append(t.state)
             if t.task_slug is not None else None)
    assert events == ["Pending", "Running", "code", "Retrying", "Running", "code", "Success"]


def test_listener_sees_the_same_transitions_as_the_store(memory_store):
    seen = []

    with Flow("listener") as flow:
        b(a())
    flow.run(store=memory_store, on_transition=lambda t: seen.append(
        (t.task_slug, t.map_index, t.state)))
    assert seen == history(memory_store)


def test_transitions_carry_run_id_attempt_and_aware_timestamps(memory_store):
    with Flow("fields") as flow:
        task_a = a()
    final = flow.run(store=memory_store)
    run_id = memory_store.list_runs()[0].id
    transitions = memory_store.get_history(run_id)
    assert {t.flow_run_id for t in transitions} == {run_id}
    assert {t.attempt for t in transitions} == {1}
    assert all(t.timestamp.utcoffset() is not None for t in transitions)
    assert [t.timestamp for t in transitions] == sorted(t.timestamp for t in transitions)
    # what is recorded is the instant each state shows
    assert transitions[-1].timestamp == final.timestamp
    assert transitions[-2].timestamp == final.result[task_a].timestamp


def test_pending_rides_with_the_start_and_the_maps_expansion_not_a_commit_of_its_own():
    import crashkit
    from cairnflow.statestore.memory import MemoryStore

    class Counting(MemoryStore):
        """Each write call is one transaction: keep the states each one carried."""

        def __init__(self):
            super().__init__()
            self.writes = []

        def record_flow_run(self, run, transitions=()):
            self.writes.append([(t.task_slug, t.map_index, t.state) for t in transitions])
            super().record_flow_run(run, transitions)

        def record_transitions(self, transitions, logs=()):
            self.writes.append([(t.task_slug, t.map_index, t.state) for t in transitions])
            super().record_transitions(transitions, logs)

    @task
    def inc(x):
        return x + 1

    store = Counting()
    with Flow("rides") as flow:
        first = b.map([1, 2, 3])
        second = inc.map(first)
    flow.run(store=store)
    start = store.writes[0]  # record_flow_run: the attempt's start
    assert start[0] == (None, None, "Running")
    assert sorted(start[1:]) == sorted((slug, None, "Pending") for slug in flow.slugs.values())
    # each child's Pending is in the very batch that carries its parent's Mapped
    for parent in (flow.slugs[first], flow.slugs[second]):
        [carrier] = [w for w in store.writes if (parent, None, "Mapped") in w]
        assert [s for s in carrier if s[:1] == (parent,) and s[1] is not None][:3] == [
            (parent, i, "Pending") for i in range(3)]
    # the Pending rows cost no commit of their own: every one is in the start or in a
    # batch with its map's Mapped
    for w in store.writes[1:]:
        pending = [s for s in w if s[2] == "Pending"]
        assert not pending or (pending[0][0], None, "Mapped") in w
    assert crashkit.history_problems(store.list_runs()[0].id, store) == []
