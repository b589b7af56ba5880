"""The examples of the "Thinking Prefectly" concept page (examples/seed_*.py) run
as they are, and build the graphs the page describes."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from cairnflow import Flow, Task
from cairnflow.core import Edge

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = sorted(EXAMPLES.glob("seed_*.py"))


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every example run once as ``python examples/seed_XX.py``, all at the same time
    (each with its own CAIRNFLOW_HOME) to keep the suite fast."""
    procs = {}
    for path in SEEDS:
        home = tmp_path_factory.mktemp(path.stem) / "home"
        env = {**os.environ, "CAIRNFLOW_HOME": str(home)}
        env.pop("CAIRNFLOW_DB_URL", None)
        procs[path.name] = subprocess.Popen(
            [sys.executable, str(path)], env=env, cwd=str(EXAMPLES.parent),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        runs[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return runs


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name))


def test_every_section_of_the_page_has_an_example():
    assert [p.name for p in SEEDS] == [
        "seed_01_hello_task.py", "seed_02_add_task.py", "seed_03_say_hello_person.py",
        "seed_04_add_task_class.py", "seed_05_functional_flow.py", "seed_06_parameters.py",
        "seed_07_imperative_flow.py",
    ]


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_example_runs_as_a_script(path, script_runs):
    proc = script_runs[path.name]
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_example_imports_only_cairnflow(path):
    source = path.read_text()
    assert "from prefect" not in source and "import prefect" not in source
    assert "from cairnflow import" in source


def test_decorated_tasks_are_tasks_that_still_run_their_function(capsys):
    hello = load("seed_01_hello_task.py")["say_hello"]
    add = load("seed_02_add_task.py")["add"]
    greet = load("seed_03_say_hello_person.py")["say_hello"]
    assert all(isinstance(t, Task) for t in (hello, add, greet))
    hello.run()
    greet.run("Arthur")
    assert capsys.readouterr().out == "Hello, world!\nHello, Arthur!\n"
    assert add.run(1) == 2
    assert add.run(1, y=2) == 3


def test_functional_flow_results_are_3_and_103():
    ns = load("seed_05_functional_flow.py")
    state = ns["state"]
    assert state.is_successful()
    assert state.result[ns["first_result"]].result == 3
    assert state.result[ns["second_result"]].result == 103


def test_functional_flow_holds_two_distinct_copies_of_add():
    ns = load("seed_05_functional_flow.py")
    flow, add = ns["flow"], ns["add"]
    first, second = ns["first_result"], ns["second_result"]
    assert flow.tasks == {first, second}
    assert first is not second
    assert add not in flow.tasks
    assert {flow.slugs[first], flow.slugs[second]} == {"add-1", "add-2"}
    assert flow.slugs[first] == "add-1"
    assert flow.edges == {Edge(first, second, key="x")}


def test_parameter_flow_prints_exactly_hello_marvin(script_runs):
    proc = script_runs["seed_06_parameters.py"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, Marvin!\n"


def test_parameter_flow_graph_is_the_parameter_feeding_say_hello(capsys):
    ns = load("seed_06_parameters.py")
    flow, name = ns["flow"], ns["name"]
    (greeting,) = flow.tasks - {name}
    assert flow.slugs[name] == "name"
    assert flow.edges == {Edge(name, greeting, key="person")}
    assert capsys.readouterr().out == "Hello, Marvin!\n"


def test_add_task_class_uses_its_default(memory_store):
    ns = load("seed_04_add_task_class.py")
    AddTask, add = ns["AddTask"], ns["add"]
    assert add.run(1) == 2
    assert add.run(1, y=5) == 6
    assert AddTask(default=10).run(1) == 11
    with Flow("class task") as flow:
        result = add(1)
    assert flow.run(store=memory_store).result[result].result == 2


def test_imperative_flow_has_exactly_the_edges_the_page_describes():
    ns = load("seed_07_imperative_flow.py")
    flow, name, add, second_add, say_hello = (
        ns[k] for k in ("flow", "name", "add", "second_add", "say_hello"))
    assert flow.tasks == {name, add, second_add, say_hello}
    assert flow.edges == {
        Edge(add, second_add, key="x"),
        Edge(second_add, say_hello, key=None),
        Edge(name, say_hello, key="person"),
    }
    assert flow.constants == {add: {"x": 1, "y": 2}, second_add: {"y": 100}}


def test_imperative_flow_runs_with_a_name(memory_store, capsys):
    ns = load("seed_07_imperative_flow.py")
    flow = ns["flow"]
    state = flow.run(name="Marvin", store=memory_store)
    assert state.is_successful()
    assert state.result[ns["second_add"]].result == 103
    assert capsys.readouterr().out == "Hello, Marvin!\n"
