"""Prefect 1's Flow API additions: chain, update (merge_parameters), replace,
save / load, on_failure, terminal_state_handler, the flow state handlers'
sequence, visualize(flow_state=), task_run_name."""

from __future__ import annotations

from cairnflow import Flow, Parameter, context, task
from cairnflow.engine.state import Failed, Success


@task
def inc(x):
    return x + 1


@task
def record(order, name):
    order.append(name)
    return name


def test_chain_runs_tasks_in_the_order_given(memory_store):
    order = []
    a, b, c = (record.copy(name=n) for n in "abc")
    flow = Flow("chain")
    for t, n in ((a, "a"), (b, "b"), (c, "c")):
        t.bind(order, n, flow=flow)
    edges = flow.chain(c, a, b)
    assert len(edges) == 2
    flow.run(store=memory_store)
    assert order == ["c", "a", "b"]


def test_update_merges_tasks_edges_and_parameters(memory_store):
    with Flow("one") as one:
        x = Parameter("x", default=1)
        first = inc(x)
    with Flow("two") as two:
        x2 = Parameter("x", default=5)
        second = inc(x2)
    one.update(two, merge_parameters=True)
    assert {p.name for p in one.parameters()} == {"x"}
    state = one.run(store=memory_store)
    assert state.result[first].result == 6 and state.result[second].result == 6


def test_replace_swaps_a_task_keeping_its_edges(memory_store):
    @task
    def dec(x):
        return x - 1

    with Flow("replace") as flow:
        middle = inc(1)
        out = inc(middle)
    flow.replace(middle, dec)
    state = flow.run(store=memory_store)
    assert middle not in flow.tasks
    assert state.result[out].result == 1  # dec(1) + 1


def test_save_and_load_round_trip(tmp_path, memory_store):
    with Flow("saved") as flow:
        out = inc(41)
    path = flow.save(str(tmp_path / "saved.prefect"))
    loaded = Flow.load(path)
    assert loaded.name == "saved"
    (task_,) = loaded.get_tasks(name="inc")
    assert loaded.run(store=memory_store).result[task_].result == 42
    default = flow.save()
    assert default.endswith("flows/saved.prefect")
    assert Flow.load("saved").name == "saved"
    assert out in flow.tasks


def test_flow_on_failure_and_state_handlers_see_prefects_sequence(memory_store):
    seen, failures = [], []

    @task
    def boom():
        raise ValueError("x")

    def handler(flow, old, new):
        seen.append((type(old).__name__, type(new).__name__))

    with Flow("handlers", state_handlers=[handler],
              on_failure=lambda flow, state: failures.append(state.message)) as flow:
        boom()
    state = flow.run(store=memory_store)
    assert seen == [("Scheduled", "Running"), ("Running", "Failed")]
    assert failures == ["Some reference tasks failed."]
    assert state.is_failed()


def test_terminal_state_handler_can_replace_the_final_state(memory_store):
    @task
    def boom():
        raise ValueError("x")

    def forgive(flow, state, reference_task_states):
        assert all(isinstance(s, Failed) for s in reference_task_states)
        return Success("Failures forgiven.")

    with Flow("forgiving", terminal_state_handler=forgive) as flow:
        boom()
    state = flow.run(store=memory_store)
    assert state.is_successful() and state.message == "Failures forgiven."
    assert memory_store.list_runs()[0].stored_state == "Success"


def test_visualize_colours_nodes_by_the_flow_state(memory_store):
    with Flow("viz") as flow:
        inc(1)
    plain = flow.visualize()
    coloured = flow.visualize(flow_state=flow.run(store=memory_store))
    assert "fillcolor" not in plain
    assert 'fillcolor="#28a745"' in coloured and 'tooltip="Success"' in coloured


def test_task_run_name_is_formatted_from_inputs_and_context(memory_store):
    @task(task_run_name="inc-{x}-on-{today}")
    def named(x):
        return context.task_run_name

    with Flow("names") as flow:
        out = named.map([1, 2])
    state = flow.run(store=memory_store)
    today = context.get("today")
    names = state.result[out].result
    assert names[0].startswith("inc-1-on-") and names[1].startswith("inc-2-on-")
    assert today is None  # outside a run there is no today


def test_a_run_leaves_the_garbage_collector_as_it_found_it(memory_store):
    """The engine freezes the objects that exist when a run starts (the collector
    skips them during the run) and unfreezes them after; a program's own freeze, or
    a disabled collector, is left alone. Garbage made during the run is collected."""
    import gc
    import weakref

    from cairnflow import Flow, task

    refs = _REFS
    refs.clear()

    @task
    def make_cycle():
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # collectable only by the cyclic collector
        refs.append(weakref.ref(a))
        return 1

    with Flow("gc") as flow:
        make_cycle()
    assert gc.get_freeze_count() == 0
    assert flow.run(store=memory_store).is_successful()
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.collect()
    assert refs[0]() is None
    gc.freeze()
    try:
        assert flow.run(store=memory_store).is_successful()
        assert gc.get_freeze_count() > 0  # not unfrozen by the run
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        assert flow.run(store=memory_store).is_successful()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


class _Node:
    pass


_REFS: list = []
