"""Prefect 1's control flow and task library: ifelse, switch, FilterTask,
apply_map, resource_manager, tags, mapped, defaults_from_attrs, FunctionTask,
Constant, the collection tasks, CompareValue's naming, ShellTask,
DateTimeParameter, get_logger, Task.logger and nout from annotations."""

from __future__ import annotations

import logging
from typing import Tuple

import pendulum
import pytest

from cairnflow import (
    DateTimeParameter, Flow, Task, apply_map, case, mapped, resource_manager, tags, task,
)
from cairnflow.engine import signals
from cairnflow.tasks.control_flow import FilterTask, ifelse, merge, switch
from cairnflow.tasks.control_flow.conditional import CompareValue
from cairnflow.tasks.core.collections import Dict, List, Set, Tuple as TupleTask
from cairnflow.tasks.core.constants import Constant
from cairnflow.tasks.core.function import FunctionTask
from cairnflow.tasks.shell import ShellTask
from cairnflow.utilities.logging import get_logger
from cairnflow.utilities.tasks import defaults_from_attrs


@task
def say(text):
    return text


@task
def inc(x):
    return x + 1


def _result(state, t):
    return state.result[t].result


def test_ifelse_runs_one_branch_and_skips_the_other(memory_store):
    @task
    def check(x):
        return x > 2

    with Flow("ifelse") as flow:
        yes, no = say("big"), say("small")
        ifelse(check(5), yes, no)
        out = merge(yes, no)
    state = flow.run(store=memory_store)
    assert _result(state, out) == "big"
    assert state.result[no].is_skipped()
    assert state.is_successful()


def test_switch_runs_the_matching_case_and_names_its_compare_tasks(memory_store):
    @task
    def condition():
        return "b"

    with Flow("switch-flow") as flow:
        a, b = say("A Branch"), say("B Branch")
        switch(condition, dict(a=a, b=b))
    state = flow.run(store=memory_store)
    assert _result(state, b) == "B Branch" and state.result[a].is_skipped()
    names = sorted(t.name for t in flow.tasks if isinstance(t, CompareValue))
    assert names == ['CompareValue: "a"', 'CompareValue: "b"']
    assert all("switch" in t.tags for t in flow.tasks if isinstance(t, CompareValue))
    skipped = state.result[a].message
    assert skipped == "Upstream task was skipped; if this was not the intended behavior, " \
                      "consider changing `skip_on_upstream_skip=False` for this task."


def test_case_names_its_compare_task_as_prefect_does(memory_store):
    with Flow("case") as flow:
        with case(say(True), True):
            say("yes")
    assert {t.name for t in flow.tasks if isinstance(t, CompareValue)} == {"case(True)"}


def test_filter_task_drops_none_and_exceptions_from_mapped_results(memory_store):
    even_filter = FilterTask(filter_func=lambda x: x % 2 == 0)
    default_filter = FilterTask()

    @task
    def div(x):
        return 1 / x

    with Flow("filter-numbers") as flow:
        even_numbers = even_filter(inc.map(x=[-1, 0, 1, 2, 3, 99, 314]))
        final_numbers = default_filter(div.map(even_numbers))
    state = flow.run(store=memory_store)
    assert _result(state, final_numbers) == [0.5, 0.25, 0.01]
    assert state.result[final_numbers].is_successful()
    assert state.is_successful()  # the filter (the terminal task) ran despite 1/0


def test_apply_map_maps_a_function_with_a_case_in_it(memory_store):
    @task
    def is_even(x):
        return x % 2 == 0

    def inc_if_even(x):
        with case(is_even(x), True):
            x2 = inc(x)
        return merge(x2, x)

    with Flow("example") as flow:
        out = apply_map(inc_if_even, range(6))
    state = flow.run(store=memory_store)
    assert _result(state, out) == [1, 1, 3, 3, 5, 5]


def test_apply_map_passes_unmapped_arguments_whole(memory_store):
    from cairnflow import unmapped

    @task
    def add(x, y):
        return x + y

    def add_then_inc(x, y):
        return inc(add(x, y))

    with Flow("am") as flow:
        out = apply_map(add_then_inc, [1, 2, 3], y=unmapped(10))
    assert _result(flow.run(store=memory_store), out) == [12, 13, 14]


def _tracking_resource(events):
    @resource_manager
    class Resource:
        def __init__(self, name):
            self.name = name

        def setup(self):
            events.append(("setup", self.name))
            return f"conn:{self.name}"

        def cleanup(self, conn):
            events.append(("cleanup", conn))

    return Resource


def test_resource_manager_sets_up_before_and_cleans_up_after_the_block(memory_store):
    events = []
    Resource = _tracking_resource(events)

    @task
    def use(conn):
        events.append(("use", conn))
        return conn.upper()

    with Flow("rm") as flow:
        with Resource("db") as conn:
            out = use(conn)
    state = flow.run(store=memory_store)
    assert events == [("setup", "db"), ("use", "conn:db"), ("cleanup", "conn:db")]
    assert state.is_successful() and _result(state, out) == "CONN:DB"
    assert {t.name for t in flow.tasks} >= {"Resource", "Resource.setup", "Resource.cleanup"}


def test_resource_manager_cleans_up_when_the_body_fails_and_the_flow_fails(memory_store):
    events = []
    Resource = _tracking_resource(events)

    @task
    def broken(conn):
        raise RuntimeError("body failed")

    with Flow("rm-fail") as flow:
        with Resource("db") as conn:
            out = broken(conn)
    state = flow.run(store=memory_store)
    assert events[-1] == ("cleanup", "conn:db")
    assert state.result[out].is_failed()
    assert state.is_failed()  # the cleanup (which succeeded) is not a reference task


def test_tags_apply_to_tasks_created_and_called_in_the_block():
    with Flow("tags"):
        with tags("math", "function"):
            result = inc(1)
            made = Task(name="made")
    assert result.tags == {"math", "function"} and made.tags == {"math", "function"}


def test_mapped_maps_one_argument_of_a_plain_call(memory_store):
    @task
    def add(x, y):
        return x + y

    with Flow("mapped") as flow:
        out = add(x=mapped([1, 2, 3]), y=say(10))  # y is passed whole to each child
    assert {e.key: e.mapped for e in flow.edges_to(out)} == {"x": True, "y": False}
    assert _result(flow.run(store=memory_store), out) == [11, 12, 13]


def test_defaults_from_attrs_fills_only_arguments_not_given():
    class MyTask(Task):
        def __init__(self, a=None, b=None, **kwargs):
            self.a, self.b = a, b
            super().__init__(**kwargs)

        @defaults_from_attrs("a", "b")
        def run(self, a=None, b=None):
            return a, b

    t = MyTask(a=1, b=2)
    assert t.run() == (1, 2)
    assert t.run(a=99) == (99, 2)
    assert t.run(a=None, b=None) == (None, None)


def test_function_task_constant_and_collections(memory_store):
    doubler = FunctionTask(fn=lambda x: 2 * x, name="double")
    with Flow("lib") as flow:
        const = Constant(5)
        two = doubler(const)
        as_list = List()(two, 3)
        as_tuple = TupleTask()(two, 3)
        as_set = Set()(two, two)
        as_dict = Dict()(keys=["a", "b"], values=[two, 3])
    state = flow.run(store=memory_store)
    assert _result(state, two) == 10 and doubler.name == "double"
    assert _result(state, as_list) == [10, 3]
    assert _result(state, as_tuple) == (10, 3)
    assert _result(state, as_set) == {10}
    assert _result(state, as_dict) == {"a": 10, "b": 3}


def test_shell_task_returns_the_last_line_or_all_lines_with_its_env(memory_store):
    with Flow("shell") as flow:
        last = ShellTask(name="last")(command="echo one; echo $GREETING",
                                      env={"GREETING": "hello"})
        every = ShellTask(name="all", return_all=True, helper_script="X=2")(
            command="echo 1; echo $X")
    state = flow.run(store=memory_store)
    assert _result(state, last) == "hello"
    assert _result(state, every) == ["1", "2"]


def test_shell_task_fails_on_a_non_zero_exit_with_the_output_in_the_message(memory_store):
    with Flow("shell-fail") as flow:
        out = ShellTask(log_stderr=True)(command="echo working; echo broken >&2; exit 3")
    state = flow.run(store=memory_store)
    failed = state.result[out]
    assert failed.is_failed()
    assert failed.message.startswith("Command failed with exit code 3")
    assert "working" in failed.message and "broken" in failed.message


def test_shell_task_without_a_command_fails_clearly():
    with pytest.raises(TypeError, match="missing required argument: 'command'"):
        ShellTask().run()


def test_datetime_parameter_parses_its_value(memory_store):
    @task
    def year(when):
        return when

    with Flow("dates") as flow:
        when = DateTimeParameter("when")
        out = year(when)
        maybe = year.copy()(DateTimeParameter("maybe", required=False))
    state = flow.run(when="2024-05-01T12:00:00+00:00", store=memory_store)
    assert _result(state, out) == pendulum.datetime(2024, 5, 1, 12)
    assert _result(state, maybe) is None


def test_loggers_are_stored_with_the_run(memory_store):
    class Logs(Task):
        def run(self):
            self.logger.info("from Task.logger")
            get_logger("custom").warning("from get_logger")

    with Flow("logs") as flow:
        Logs()()
    flow.run(store=memory_store)
    run_id = memory_store.list_runs()[0].id
    messages = [r.message for r in memory_store.get_logs(run_id)]
    assert "from Task.logger" in messages and "from get_logger" in messages
    assert get_logger().name == "cairnflow"
    assert isinstance(Logs().logger, logging.Logger)


def test_nout_is_read_from_a_tuple_return_annotation(memory_store):
    @task
    def pair(x) -> Tuple[int, int]:
        return x, x + 1

    @task
    def also(x) -> tuple[int, str, int]:
        return x, "x", x

    assert pair.nout == 2 and also.nout == 3
    with Flow("nout") as flow:
        a, b = pair(1)
    state = flow.run(store=memory_store)
    assert (_result(state, a), _result(state, b)) == (1, 2)


def test_signals_from_the_engine_path_set_states(memory_store):
    @task
    def skip_me():
        raise signals.SKIP("not today")

    with Flow("sig") as flow:
        out = skip_me()
    assert flow.run(store=memory_store).result[out].message == "not today"
