"""Results and targets as in Prefect 1: Result / LocalResult / PrefectResult,
serializers, location templates from the context, and target-based caching
(an existing target: the task is Cached and does not run). The checkpoint
store stays the source of truth for resume."""

from __future__ import annotations

import json
import os

import pytest

from cairnflow import Flow, Parameter, task
from cairnflow.engine.result import Result
from cairnflow.engine.results import LocalResult, PrefectResult
from cairnflow.engine.serializers import JSONSerializer, PickleSerializer


def test_local_result_writes_reads_and_formats_its_location(tmp_path):
    result = LocalResult(dir=str(tmp_path), location="{flow}/{name}.json",
                         serializer=JSONSerializer())
    written = result.write({"a": [1, 2]}, flow="etl", name="x")
    assert written.location == "etl/x.json" and written.value == {"a": [1, 2]}
    assert json.loads((tmp_path / "etl" / "x.json").read_text()) == {"a": [1, 2]}
    assert result.exists("{flow}/{name}.json", flow="etl", name="x")
    assert not result.exists("etl/y.json")
    assert result.read("etl/x.json").value == {"a": [1, 2]}
    assert result.location == "{flow}/{name}.json"  # the template is kept


def test_prefect_result_keeps_the_value_in_its_location():
    written = PrefectResult().write([1, "two"])
    assert written.location == '[1, "two"]'
    assert PrefectResult().read(written.location).value == [1, "two"]
    assert PrefectResult().exists("anything")


def test_serializers_round_trip():
    value = {"k": (1, 2)}
    assert PickleSerializer().deserialize(PickleSerializer().serialize(value)) == value
    assert JSONSerializer().deserialize(JSONSerializer().serialize([1, 2])) == [1, 2]
    assert isinstance(Result().serializer, PickleSerializer)


def test_a_task_result_is_written_to_its_templated_location(tmp_path, memory_store):
    @task(result=LocalResult(dir=str(tmp_path), location="{task_name}-{day}-{x}.pkl"))
    def double(x):
        return 2 * x

    with Flow("results") as flow:
        day = Parameter("day", default="2024-05-01")
        out = double(21)
        flow.add_task(day)
    state = flow.run(store=memory_store)
    assert state.result[out].result == 42
    path = tmp_path / "double-2024-05-01-21.pkl"
    assert PickleSerializer().deserialize(path.read_bytes()) == 42


def test_flow_result_applies_to_tasks_without_their_own(tmp_path, memory_store):
    @task
    def one():
        return 1

    with Flow("flow-result", result=LocalResult(dir=str(tmp_path),
                                                location="{task_slug}.out")) as flow:
        one()
    flow.run(store=memory_store)
    assert os.listdir(tmp_path) == ["one-1.out"]


def test_an_existing_target_makes_the_task_cached_without_running(tmp_path, memory_store):
    calls = []

    @task(target="{task_name}/{today}.pkl", checkpoint=True,
          result=LocalResult(dir=str(tmp_path)))
    def extract():
        calls.append("ran")
        return [1, 2, 3]

    @task
    def total(xs):
        return sum(xs)

    with Flow("targets") as flow:
        out = total(extract())
    first = flow.run(store=memory_store)
    second = flow.run(store=memory_store)
    (extracted,) = flow.get_tasks(name="extract")
    assert calls == ["ran"]
    assert first.result[extracted].name == "Success"
    cached = second.result[extracted]
    assert cached.name == "Cached" and cached.result == [1, 2, 3]
    assert cached.message.startswith("Result found at task target extract/")
    assert second.result[out].result == 6
    runs = memory_store.list_runs()
    history = [t.state for t in memory_store.get_history(runs[0].id, "extract-1")]
    assert history[-1] == "Cached" and "Running" not in history  # recorded, never run


def test_a_target_is_per_input_when_its_template_names_an_input(tmp_path, memory_store):
    calls = []

    @task(target="sq-{x}", result=LocalResult(dir=str(tmp_path)))
    def square(x):
        calls.append(x)
        return x * x

    with Flow("per-input") as flow:
        out = square.map([1, 2, 3])
    flow.run(store=memory_store)
    state = flow.run(store=memory_store)
    assert calls == [1, 2, 3]
    assert [s.name for s in state.result[out].map_states] == ["Cached"] * 3
    assert state.result[out].result == [1, 4, 9]


def test_a_result_that_cannot_be_written_fails_the_task(tmp_path, memory_store):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    @task(result=LocalResult(dir=str(tmp_path), location="file/inside.pkl"))
    def value():
        return 1

    with Flow("unwritable") as flow:
        out = value()
    state = flow.run(store=memory_store)
    assert state.result[out].is_failed()
    assert "Error writing the task's result" in state.result[out].message


def test_checkpoint_false_writes_no_target(tmp_path, memory_store):
    @task(target="t.pkl", checkpoint=False, result=LocalResult(dir=str(tmp_path)))
    def value():
        return 1

    with Flow("no-checkpoint") as flow:
        value()
    flow.run(store=memory_store)
    assert not (tmp_path / "t.pkl").exists()


def test_resume_reuses_the_store_before_looking_at_targets(tmp_path):
    calls = []
    fail = {"now": True}

    @task(target="a.pkl", result=LocalResult(dir=str(tmp_path)))
    def a():
        calls.append("a")
        return 1

    @task
    def b(x):
        if fail["now"]:
            raise RuntimeError("first time")
        return x + 1

    with Flow("resume-targets") as flow:
        out = b(a())
    store = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert flow.run(store=store).is_failed()
    os.remove(tmp_path / "a.pkl")  # the target is gone; the store still has a's result
    fail["now"] = False
    state = flow.resume(store=store)
    assert state.result[out].result == 2
    assert calls == ["a"]
