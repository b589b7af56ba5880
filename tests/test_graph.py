"""Building flows: the functional and imperative APIs, with Prefect 1's semantics."""

from __future__ import annotations

import pytest

from cairnflow import Flow, Parameter, Task, case, merge, task
from cairnflow.core import Edge
from cairnflow.core.collections import Dict, GetItem, List
from cairnflow.exceptions import FlowValidationError, MissingParameterError


@task
def one():
    return 1


@task
def three():
    return 3


@task
def inc(x):
    return x + 1


@task
def add(x, y=1):
    return x + y


@task
def ident(x):
    return x


@task(nout=2)
def pair():
    return 1, 2


@task
def mapping():
    return {"k": 7}


def results(flow, store, **parameters):
    """{slug: result} of a successful run."""
    state = flow.run(store=store, **parameters)
    assert state.is_successful(), state
    return {flow.slugs[t]: s.result for t, s in state.result.items()}


# -- the functional API -----------------------------------------------------------------


def test_calling_a_task_in_a_flow_adds_a_copy_not_the_task_itself():
    with Flow("f") as flow:
        result = inc(1)
    assert result is not inc
    assert isinstance(result, type(inc))
    assert flow.tasks == {result}
    assert inc not in flow.tasks


def test_each_call_adds_another_copy():
    with Flow("f") as flow:
        a = add(1)
        b = add(2)
    assert a is not b
    assert flow.tasks == {a, b}


def test_constant_arguments_are_stored_as_constants_not_tasks():
    with Flow("f") as flow:
        result = add(1, y=2)
    assert flow.tasks == {result}
    assert flow.constants == {result: {"x": 1, "y": 2}}


def test_task_arguments_become_keyed_edges():
    with Flow("f") as flow:
        first = one()
        second = add(first, y=first)
    assert flow.edges == {Edge(first, second, key="x"), Edge(first, second, key="y")}


def test_task_args_override_name_and_tags_on_the_copy_only():
    with Flow("f") as flow:
        renamed = inc(1, task_args={"name": "bump", "tags": ["fast"]})
    assert (renamed.name, renamed.tags) == ("bump", {"fast"})
    assert (inc.name, inc.tags) == ("inc", set())
    assert flow.slugs[renamed] == "bump-fast-1"


def test_task_args_tags_are_added_to_the_tasks_own_tags():
    tagged = inc.copy(tags=["io"])
    with Flow("f"):
        result = tagged(1, task_args={"tags": ["fast"]})
    assert result.tags == {"io", "fast"}
    assert tagged.tags == {"io"}


def test_upstream_tasks_create_state_edges_without_keys():
    with Flow("f") as flow:
        first = one()
        second = three(upstream_tasks=[first])
    assert flow.edges == {Edge(first, second, key=None)}
    assert flow.constants == {}


def test_upstream_tasks_order_the_run(memory_store):
    calls = []

    @task
    def record(label):
        calls.append(label)

    with Flow("f") as flow:
        first = record.copy()
        second = record("second", upstream_tasks=[first])  # added to the flow before `first`
        first.bind("first")
    assert flow.slugs[second] == "record-1"
    flow.run(store=memory_store)
    assert calls == ["first", "second"]


# -- copy and the imperative API ------------------------------------------------------------


def test_copy_applies_overrides_and_leaves_the_original_alone():
    copied = inc.copy(name="inc2", max_retries=0, tags=["x"])
    assert copied is not inc
    assert (copied.name, copied.tags) == ("inc2", {"x"})
    assert (inc.name, inc.tags) == ("inc", set())
    copied.tags.add("y")
    assert inc.tags == set()


def test_copy_of_a_task_with_an_explicit_slug_gets_a_new_slug():
    slugged = inc.copy(slug="the-inc")
    assert slugged.copy().slug == "the-inc-copy"
    assert slugged.copy(slug="other").slug == "other"


def test_copy_with_an_unknown_setting_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_setting"):
        inc.copy(no_such_setting=1)


def test_bind_with_flow_outside_a_context_adds_the_task_itself():
    flow = Flow("f")
    bound = inc.copy()
    assert bound.bind(x=1, flow=flow) is bound
    assert flow.tasks == {bound}
    assert flow.constants == {bound: {"x": 1}}


def test_calling_a_task_outside_a_flow_raises_a_clear_value_error():
    with pytest.raises(ValueError, match=r"Could not infer an active Flow context.*task\.run"):
        inc(1)


def test_bind_outside_a_flow_without_flow_raises_value_error():
    with pytest.raises(ValueError, match="Could not infer an active Flow context"):
        inc.copy().bind(x=1)


def test_binding_an_unknown_argument_raises_type_error():
    with Flow("f"), pytest.raises(TypeError, match="inc"):
        inc(nope=1)


def test_set_upstream_with_flow_adds_a_state_edge():
    flow = Flow("f")
    first, second = one.copy(), three.copy()
    second.set_upstream(first, flow=flow)
    assert flow.edges == {Edge(first, second)}


def test_set_downstream_with_flow_and_key_adds_a_data_edge():
    flow = Flow("f")
    first, second = one.copy(), inc.copy()
    assert first.set_downstream(second, flow=flow, key="x") is first
    assert flow.edges == {Edge(first, second, key="x")}


def test_add_task_twice_adds_it_once():
    flow = Flow("f")
    t = one.copy()
    flow.add_task(t)
    flow.add_task(t)
    assert flow.tasks == {t}
    assert flow.slugs == {t: "one-1"}


def test_add_task_refuses_things_that_are_not_tasks():
    with pytest.raises(TypeError):
        Flow("f").add_task(lambda: 1)


def test_add_edge_with_a_key_already_assigned_raises():
    flow = Flow("f")
    a, b, target = one.copy(), three.copy(), inc.copy()
    flow.add_edge(a, target, key="x")
    with pytest.raises(ValueError, match='Argument "x"'):
        flow.add_edge(b, target, key="x")


def test_adding_the_same_edge_twice_keeps_one():
    flow = Flow("f")
    a, b = one.copy(), inc.copy()
    flow.add_edge(a, b, key="x")
    flow.add_edge(a, b, key="x")
    assert len(flow.edges) == 1


def test_a_cycle_raises_flow_validation_error_from_validate_and_sorted_tasks():
    flow = Flow("f")
    a, b, c = inc.copy(), inc.copy(), inc.copy()
    flow.add_edge(a, b)
    flow.add_edge(b, c)
    flow.add_edge(c, a)
    with pytest.raises(FlowValidationError, match="Cycle"):
        flow.validate()
    with pytest.raises(FlowValidationError, match="Cycle"):
        flow.sorted_tasks()


def test_a_task_cannot_depend_on_itself():
    flow = Flow("f")
    a = inc.copy()
    with pytest.raises(FlowValidationError):
        flow.add_edge(a, a)


def test_eager_validation_refuses_the_edge_that_closes_a_cycle():
    flow = Flow("f", validate=True)
    a, b = inc.copy(), inc.copy()
    flow.add_edge(a, b)
    with pytest.raises(FlowValidationError):
        flow.add_edge(b, a)


# -- reading the graph ------------------------------------------------------------------


@pytest.fixture
def diamond():
    """top -> left, right -> bottom, plus a parameter feeding left."""
    with Flow("diamond") as flow:
        p = Parameter("p", default=1)
        top = one(task_args={"name": "top", "tags": ["t"]})
        left = add(top, y=p, task_args={"name": "left"})
        right = inc(top, task_args={"name": "right", "tags": ["t", "r"]})
        bottom = add(left, y=right, task_args={"name": "bottom"})
    return flow, p, top, left, right, bottom


def test_tasks_and_edges_describe_the_graph(diamond):
    flow, p, top, left, right, bottom = diamond
    assert flow.tasks == {p, top, left, right, bottom}
    assert flow.edges == {
        Edge(top, left, key="x"), Edge(p, left, key="y"), Edge(top, right, key="x"),
        Edge(left, bottom, key="x"), Edge(right, bottom, key="y"),
    }


def test_upstream_and_downstream_tasks(diamond):
    flow, p, top, left, right, bottom = diamond
    assert flow.upstream_tasks(left) == {top, p}
    assert flow.upstream_tasks(top) == set()
    assert flow.downstream_tasks(top) == {left, right}
    assert flow.downstream_tasks(bottom) == set()


def test_get_tasks_by_name_slug_and_tags(diamond):
    flow, p, top, left, right, bottom = diamond
    assert flow.get_tasks(name="left") == [left]
    assert flow.get_tasks(slug="right-r-t-1") == [right]
    assert set(flow.get_tasks(tags=["t"])) == {top, right}
    assert flow.get_tasks(tags=["t", "r"]) == [right]
    assert flow.get_tasks(name="top", tags=["r"]) == []


def test_parameters_returns_only_the_parameters(diamond):
    flow, p, *_ = diamond
    assert flow.parameters() == {p}


def test_root_and_terminal_tasks(diamond):
    flow, p, top, left, right, bottom = diamond
    assert flow.root_tasks() == {p, top}
    assert flow.terminal_tasks() == {bottom}


def test_reference_tasks_default_to_the_terminal_tasks(diamond):
    flow, *_, bottom = diamond
    assert flow.reference_tasks() == {bottom}


def test_set_reference_tasks_replaces_the_default(diamond):
    flow, p, top, left, right, bottom = diamond
    flow.set_reference_tasks([left, right])
    assert flow.reference_tasks() == {left, right}
    flow.set_reference_tasks([])
    assert flow.reference_tasks() == {bottom}


def test_reference_tasks_must_be_in_the_flow(diamond):
    flow, *_ = diamond
    with pytest.raises(ValueError):
        flow.set_reference_tasks([inc])


def test_reference_tasks_decide_the_final_state(memory_store):
    @task
    def boom():
        raise RuntimeError("boom")

    with Flow("f") as flow:
        fine = one()
        boom()
    assert flow.run(store=memory_store).is_failed()
    flow.set_reference_tasks([fine])
    assert flow.run(store=memory_store).is_successful()


def test_sorted_tasks_puts_every_task_after_its_upstream_tasks():
    flow = Flow("f")
    a, b, c, d = (inc.copy(name=n) for n in "abcd")
    flow.add_task(d)  # added before the tasks it depends on
    flow.add_edge(c, d, key="x")
    flow.add_edge(b, c, key="x")
    flow.add_edge(a, b, key="x")
    flow.add_edge(a, d)
    order = flow.sorted_tasks()
    assert order == (a, b, c, d)
    for edge in flow.edges:
        assert order.index(edge.upstream_task) < order.index(edge.downstream_task)


def test_sorted_tasks_counts_a_task_that_feeds_two_arguments_once():
    flow = Flow("f")
    a, b, c, d = (add.copy(name=n) for n in "abcd")
    flow.add_edge(a, b, key="x")
    flow.add_edge(a, b, key="y")  # b waits for one task, by two edges
    flow.add_edge(b, c, key="x")
    flow.add_task(d)
    assert flow.sorted_tasks() == (a, d, b, c)  # breadth first, ties in the order added


def test_sorted_tasks_from_root_tasks_keeps_only_what_they_reach(diamond):
    flow, p, top, left, right, bottom = diamond
    assert set(flow.sorted_tasks(root_tasks=[right])) == {right, bottom}


def test_flow_copy_is_independent_of_the_original(diamond):
    flow, p, top, left, right, bottom = diamond
    copied = flow.copy()
    extra = inc.copy()
    copied.add_edge(bottom, extra, key="x")
    assert extra in copied.tasks and extra not in flow.tasks
    assert len(copied.edges) == len(flow.edges) + 1
    assert flow.terminal_tasks() == {bottom}
    assert copied.terminal_tasks() == {extra}
    assert copied.slugs[extra] == "inc-1" and extra not in flow.slugs
    assert copied.tasks - {extra} == flow.tasks


def test_flow_copy_has_its_own_constants():
    with Flow("f") as flow:
        result = add(1, y=2)
    copied = flow.copy()
    copied.constants[result]["y"] = 5
    assert flow.constants[result] == {"x": 1, "y": 2}


def test_visualize_writes_dot_that_mentions_every_slug(diamond, tmp_path):
    flow, *_ = diamond
    target = tmp_path / "graph.dot"
    dot = flow.visualize(filename=str(target))
    written = target.read_text()
    assert written == dot
    assert written.startswith('digraph "diamond"')
    for slug in flow.slugs.values():
        assert f'"{slug}"' in written
    assert written.count("->") == len(flow.edges)


# -- results: indexing, unpacking, operators, collections ---------------------------------------


def test_indexing_a_result_creates_getitem_tasks():
    with Flow("f") as flow:
        both = pair()
        first = both[0]
    assert isinstance(first, GetItem)
    assert first.name == "pair[0]"
    assert flow.edges == {Edge(both, first, key="task_result")}
    assert flow.constants[first] == {"key": 0}


def test_indexed_results_have_the_right_values(memory_store):
    with Flow("f") as flow:
        second = pair()[1]
        value = mapping()["k"]
    out = results(flow, memory_store)
    assert out[flow.slugs[second]] == 2
    assert out[flow.slugs[value]] == 7


def test_nout_lets_a_result_be_unpacked_and_run(memory_store):
    with Flow("f") as flow:
        a, b = pair()
        total = add(a, y=b)
    assert isinstance(a, GetItem) and isinstance(b, GetItem)
    assert results(flow, memory_store)[flow.slugs[total]] == 3


def test_iterating_a_task_without_nout_raises_type_error():
    with Flow("f"), pytest.raises(TypeError, match="nout"):
        a, b = one()


@pytest.mark.parametrize("build, expected", [
    (lambda t: t + 1, 4),
    (lambda t: 1 + t, 4),
    (lambda t: 10 - t, 7),
    (lambda t: t * t, 9),
    (lambda t: t > 3, False),
    (lambda t: t >= 3, True),
    (lambda t: t.is_equal(3), True),
], ids=["add", "radd", "rsub", "mul", "gt", "ge", "is_equal"])
def test_operators_on_a_task_build_tasks_with_the_right_result(build, expected, memory_store):
    with Flow("f") as flow:
        result = build(three())
    assert isinstance(result, Task)
    assert len(flow.tasks) == 2
    assert results(flow, memory_store)[flow.slugs[result]] == expected


def test_a_list_of_tasks_as_an_argument_becomes_a_list_task(memory_store):
    with Flow("f") as flow:
        a, b = one(), three()
        collected = ident([a, b, 5])
    (collection,) = flow.upstream_tasks(collected)
    assert isinstance(collection, List)
    assert flow.upstream_tasks(collection) == {a, b}
    assert results(flow, memory_store)[flow.slugs[collected]] == [1, 3, 5]


def test_a_dict_of_tasks_as_an_argument_becomes_a_dict_task(memory_store):
    with Flow("f") as flow:
        collected = ident({"a": one(), "b": 2})
    (collection,) = flow.upstream_tasks(collected)
    assert isinstance(collection, Dict)
    assert results(flow, memory_store)[flow.slugs[collected]] == {"a": 1, "b": 2}


def test_a_list_without_tasks_stays_a_constant():
    with Flow("f") as flow:
        collected = ident([1, 2])
    assert flow.tasks == {collected}
    assert flow.constants[collected] == {"x": [1, 2]}


# -- parameters ---------------------------------------------------------------------------


def test_missing_required_parameter_raises_before_any_task_runs(memory_store):
    calls = []

    @task
    def record(x):
        calls.append(x)

    with Flow("f") as flow:
        record("before")
        record(Parameter("needed"))
    with pytest.raises(MissingParameterError, match="needed"):
        flow.run(store=memory_store)
    assert calls == []
    assert memory_store.list_runs() == []


def test_parameter_default_is_used_when_no_value_is_given(memory_store):
    with Flow("f") as flow:
        result = inc(Parameter("x", default=41))
    assert results(flow, memory_store)[flow.slugs[result]] == 42


def test_parameter_values_by_keyword_or_by_dict(memory_store):
    with Flow("f") as flow:
        result = inc(Parameter("x"))
    assert results(flow, memory_store, x=1)[flow.slugs[result]] == 2
    state = flow.run(parameters={"x": 10}, store=memory_store)
    assert state.result[result].result == 11


def test_parameter_is_added_as_itself_not_a_copy():
    with Flow("f") as flow:
        x = Parameter("x")
        inc(x)
    assert x in flow.tasks
    assert flow.slugs[x] == "x"


def test_two_parameters_with_the_same_name_raise_value_error():
    with Flow("f"):
        inc(Parameter("x"))
        with pytest.raises(ValueError, match='"x" already exists'):
            inc(Parameter("x"))


def test_unknown_parameter_to_run_raises_value_error(memory_store):
    with Flow("f") as flow:
        inc(Parameter("x", default=1))
    with pytest.raises(ValueError, match="unexpected parameters: nope"):
        flow.run(parameters={"nope": 1}, store=memory_store)
    assert memory_store.list_runs() == []


def test_unknown_keyword_to_run_raises_type_error_naming_the_parameters(memory_store):
    with Flow("f") as flow:
        inc(Parameter("x", default=1))
    with pytest.raises(TypeError, match=r"\['x'\]"):
        flow.run(nope=1, store=memory_store)


def test_a_parameter_cannot_have_upstream_tasks():
    flow = Flow("f")
    with pytest.raises(ValueError, match="root tasks"):
        flow.add_edge(one.copy(), Parameter("x"))


def test_a_parameter_created_inside_case_stays_a_root_task(memory_store):
    with Flow("f") as flow:
        cond = ident(False)
        with case(cond, True):
            x = Parameter("x", default=1)
            skipped = inc(x)
        used = inc(x)
    assert flow.upstream_tasks(x) == set()
    state = flow.run(store=memory_store)
    assert state.result[skipped].is_skipped()
    assert state.result[used].result == 2


def test_case_and_merge_run_only_the_matching_branch(memory_store):
    with Flow("f") as flow:
        cond = ident(True)
        with case(cond, True):
            yes = ident("yes")
        with case(cond, False):
            no = ident("no")
        joined = merge(yes, no)
    state = flow.run(store=memory_store)
    assert state.result[no].is_skipped()
    assert state.result[joined].result == "yes"


def test_a_task_with_star_args_raises_value_error():
    with pytest.raises(ValueError, match=r"\*args"):
        @task
        def variadic(*args):
            return args


def test_a_pickled_flow_keeps_its_edges_slugs_and_order():
    """Flows are pickled compactly (edges as tuples, indexes rebuilt on load): the
    loaded flow has the same tasks, slugs, edges in order, constants and order."""
    import cloudpickle

    with Flow("pickled") as flow:
        a = one()
        b = inc(a)
        c = add(b, y=a)
        inc.map([1, 2, 3])
        add(x=c, y=5, upstream_tasks=[a])
    loaded = cloudpickle.loads(cloudpickle.dumps(flow))

    def shape(f):
        edges = sorted((f.slugs[e.upstream_task], f.slugs[e.downstream_task], str(e.key),
                        e.mapped) for e in f.edges)
        per_task = {f.slugs[t]: ([(f.slugs[e.upstream_task], e.key) for e in f.upstream_edges(t)],
                                 [f.slugs[e.downstream_task] for e in f.downstream_edges(t)])
                    for t in f.tasks}
        return (edges, per_task, [f.slugs[t] for t in f.sorted_tasks()],
                {f.slugs[t]: c for t, c in f.constants.items()},
                sorted(t.slug for t in f.tasks if t.slug),
                [f.slugs[f.get_tasks(slug=s)[0]] for s in f.slugs.values()])

    assert shape(loaded) == shape(flow)
    assert all(isinstance(e, Edge) for e in loaded.edges)
    state = loaded.run()
    assert state.is_successful()
    assert state.result[loaded.get_tasks(slug=flow.slugs[c])[0]].result == 3


def test_the_flow_hash_follows_every_change_to_the_graph():
    """flow_hash is kept with the task order it came from; any change makes a new one."""
    from cairnflow.runner.api import flow_hash

    with Flow("hashed") as flow:
        a = one()
        b = inc(a)
    first = flow_hash(flow)
    assert flow_hash(flow) == first
    flow.add_task(three.copy())
    second = flow_hash(flow)
    assert second != first
    flow.add_edge(a, flow.get_tasks(name="three")[0])
    third = flow_hash(flow)
    assert third not in (first, second)
    copy = flow.copy()
    assert flow_hash(copy) == third
    copy.add_edge(b, copy.get_tasks(name="three")[0])
    assert flow_hash(copy) != third and flow_hash(flow) == third
