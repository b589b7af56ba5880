"""Mapping: ``.map()``, ``unmapped``, ``flatten``, reduce, and failures of children."""

from __future__ import annotations

from cairnflow import (
    Flow, Parameter, executors, flatten, signals, states, task, unmapped,
)
from cairnflow.statestore import serialize

from conftest import history


@task
def numbers():
    return [1, 2, 3]


@task
def inc(x):
    return x + 1


@task
def add(x, y):
    return x + y


@task
def total(xs):
    return sum(xs)


@task
def collect(xs):
    return list(xs)


@task
def fail_on_two(x):
    if x == 2:
        raise ValueError("two")
    return x


def _children(state):
    return [child.result for child in state.map_states]


def test_map_over_a_list_runs_once_per_element(memory_store):
    calls = []

    @task
    def record(x):
        calls.append(x)
        return x * 10

    with Flow("map") as flow:
        mapped = record.map([1, 2, 3])
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[mapped]) is states.Mapped
    assert _children(flow_state.result[mapped]) == [10, 20, 30]
    assert sorted(calls) == [1, 2, 3]
    assert flow_state.is_successful()


def test_mapped_state_result_is_the_list_of_child_results(memory_store):
    with Flow("map-result") as flow:
        mapped = inc.map(numbers())
    flow_state = flow.run(store=memory_store)
    assert flow_state.result[mapped].result == [2, 3, 4]


def test_map_over_an_upstream_result(memory_store):
    with Flow("map-upstream") as flow:
        mapped = inc.map(numbers())
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [2, 3, 4]


def test_map_over_a_parameter(memory_store):
    with Flow("map-param") as flow:
        mapped = inc.map(Parameter("xs"))
    flow_state = flow.run(store=memory_store, xs=[5, 6])
    assert _children(flow_state.result[mapped]) == [6, 7]


def test_unmapped_argument_is_passed_whole_to_every_child(memory_store):
    with Flow("unmapped") as flow:
        mapped = add.map([1, 2, 3], y=unmapped(10))
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [11, 12, 13]


def test_unmapped_task_result_is_passed_whole(memory_store):
    @task
    def ten():
        return 10

    with Flow("unmapped-task") as flow:
        mapped = add.map(numbers(), unmapped(ten()))
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [11, 12, 13]


def test_flatten_maps_over_a_list_of_lists(memory_store):
    @task
    def nested():
        return [[1, 2], [3], []]

    with Flow("flatten") as flow:
        mapped = inc.map(flatten(nested()))
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [2, 3, 4]


def test_flatten_a_mapped_result(memory_store):
    @task
    def repeat(x):
        return [x] * x

    with Flow("flatten-mapped") as flow:
        lists = repeat.map([1, 2])
        mapped = inc.map(flatten(lists))
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [2, 3, 3]


def test_map_over_a_mapped_result_pairs_child_with_child(memory_store):
    seen = []

    @task
    def double(x):
        return x * 2

    @task
    def label(x):
        seen.append(x)
        return f"<{x}>"

    with Flow("map-of-map") as flow:
        doubled = double.map(numbers())
        labelled = label.map(doubled)
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[labelled]) == ["<2>", "<4>", "<6>"]
    assert sorted(seen) == [2, 4, 6]


def test_reduce_task_gets_the_list_of_child_results(memory_store):
    with Flow("reduce") as flow:
        summed = total(inc.map(numbers()))
    flow_state = flow.run(store=memory_store)
    assert flow_state.result[summed].result == 9


def test_map_over_an_empty_list_is_mapped_with_no_children(memory_store):
    calls = []

    @task
    def empty():
        return []

    @task
    def record(x):
        calls.append(x)

    with Flow("empty-map") as flow:
        mapped = record.map(empty())
        reduced = collect(mapped)
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[mapped]) is states.Mapped
    assert flow_state.result[mapped].map_states == []
    assert flow_state.result[reduced].result == []
    assert calls == []
    assert flow_state.is_successful()


def test_map_over_lists_of_different_lengths_uses_the_shortest(memory_store):
    with Flow("shortest") as flow:
        mapped = add.map([1, 2, 3], [10, 20])
    flow_state = flow.run(store=memory_store)
    assert _children(flow_state.result[mapped]) == [11, 22]


def test_failing_children_fail_alone(memory_store):
    with Flow("child-fails") as flow:
        mapped = fail_on_two.map(numbers())
    flow_state = flow.run(store=memory_store)
    children = flow_state.result[mapped].map_states
    assert [type(c) for c in children] == [states.Success, states.Failed, states.Success]
    assert children[1].message == "Error during execution of task: ValueError('two')"
    assert flow_state.is_failed()


def test_downstream_mapped_children_trigger_fail_for_exactly_the_failed_indices(memory_store):
    calls = []

    @task
    def after(x):
        calls.append(x)
        return x

    with Flow("child-trigger") as flow:
        first = fail_on_two.map(numbers())
        second = after.map(first)
    flow_state = flow.run(store=memory_store)
    children = flow_state.result[second].map_states
    assert [type(c) for c in children] == [states.Success, states.TriggerFailed, states.Success]
    assert sorted(calls) == [1, 3]
    assert flow_state.is_failed()


def test_reduce_after_a_failed_child_trigger_fails(memory_store):
    with Flow("reduce-fails") as flow:
        summed = total(fail_on_two.map(numbers()))
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[summed]) is states.TriggerFailed


def test_mapping_over_a_non_iterable_fails_with_unmappable_message(memory_store):
    @task
    def scalar():
        return 5

    with Flow("unmappable") as flow:
        mapped = inc.map(scalar())
    flow_state = flow.run(store=memory_store)
    state = flow_state.result[mapped]
    assert type(state) is states.Failed
    assert state.message == "At least one upstream state has an unmappable result."
    assert flow_state.is_failed()


def test_mapped_task_trigger_fails_when_its_upstream_failed(memory_store):
    @task
    def broken():
        raise ValueError("no list")

    with Flow("upstream-failed") as flow:
        mapped = inc.map(broken())
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[mapped]) is states.TriggerFailed


def test_mapped_children_are_stored_with_map_index_0_to_n_minus_1(memory_store):
    with Flow("indices") as flow:
        mapped = inc.map(numbers())
    flow.run(store=memory_store)
    slug = flow.slugs[mapped]
    runs = [r for r in memory_store.get_task_runs(memory_store.list_runs()[0].id)
            if r.task_slug == slug]
    assert sorted((r.map_index, r.state) for r in runs if r.map_index is not None) == [
        (0, "Success"), (1, "Success"), (2, "Success")]
    assert [r.state for r in runs if r.map_index is None] == ["Mapped"]


def test_each_mapped_childs_result_is_checkpointed(memory_store):
    with Flow("child-results") as flow:
        mapped = inc.map(numbers())
    flow.run(store=memory_store)
    run_id = memory_store.list_runs()[0].id
    results = [serialize.load(memory_store.load_result(run_id, flow.slugs[mapped], i))
               for i in range(3)]
    assert results == [2, 3, 4]


def test_skipped_parent_skips_the_mapped_task(memory_store):
    @task
    def nothing():
        raise signals.SKIP("no input")

    with Flow("skip-map") as flow:
        mapped = inc.map(nothing())
    flow_state = flow.run(store=memory_store)
    assert type(flow_state.result[mapped]) is states.Skipped
    slug = flow.slugs[mapped]
    assert [s for _, _, s in history(memory_store, task_slug=slug)] == ["Pending", "Skipped"]


def test_skipped_child_skips_only_the_same_index_downstream(memory_store):
    calls = []

    @task
    def skip_two(x):
        if x == 2:
            raise signals.SKIP("skip two")
        return x

    @task
    def after(x):
        calls.append(x)
        return x

    with Flow("child-skip") as flow:
        second = after.map(skip_two.map(numbers()))
    flow_state = flow.run(store=memory_store)
    children = flow_state.result[second].map_states
    assert [type(c) for c in children] == [states.Success, states.Skipped, states.Success]
    assert sorted(calls) == [1, 3]
    assert flow_state.is_successful()


def test_map_over_an_empty_list_under_threads_gives_an_empty_reduce(memory_store):
    @task
    def empty():
        return []

    with Flow("empty-threads") as flow:
        mapped = inc.map(empty())
        reduced = collect(mapped)
    flow_state = flow.run(store=memory_store,
                          executor=executors.LocalDaskExecutor(scheduler="threads"))
    assert flow_state.result[mapped].map_states == []
    assert flow_state.result[reduced].result == []
