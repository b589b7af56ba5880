"""Task slugs: how they are made (as in Prefect 1) and that they are the same in
every process that builds the same flow, which resume relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from cairnflow import Flow, Parameter, Task, task


@task
def inc(x):
    return x + 1


@task
def one():
    return 1


def test_slugs_are_the_name_numbered_per_name_in_the_order_added():
    with Flow("f") as flow:
        a = inc(1)
        b = one()
        c = inc(2)
        d = inc(3)
    assert [flow.slugs[t] for t in (a, b, c, d)] == ["inc-1", "one-1", "inc-2", "inc-3"]


def test_imperative_add_task_numbers_slugs_the_same_way():
    flow = Flow("f")
    tasks = [flow.add_task(Task(name="step")) for _ in range(3)]
    assert [flow.slugs[t] for t in tasks] == ["step-1", "step-2", "step-3"]


def test_a_parameters_slug_is_its_name():
    with Flow("f") as flow:
        who = Parameter("who")
        inc(who)
    assert flow.slugs[who] == "who"


def test_an_explicit_slug_wins():
    flow = Flow("f")
    named = flow.add_task(Task(name="step", slug="my-step"))
    with flow:
        called = inc(1, task_args={"slug": "my-inc"})
    assert flow.slugs[named] == "my-step"
    assert flow.slugs[called] == "my-inc"


def test_calling_a_task_with_an_explicit_slug_adds_a_copy_slugged_copy():
    @task(slug="fixed")
    def fixed():
        return 1

    with Flow("f") as flow:
        result = fixed()
    assert flow.slugs[result] == "fixed-copy"


def test_tags_are_part_of_the_slug_sorted():
    with Flow("f") as flow:
        a = inc(1, task_args={"tags": ["zeta", "alpha"]})
        b = inc(2, task_args={"tags": ["alpha", "zeta"]})
        c = inc(3)
    assert [flow.slugs[t] for t in (a, b, c)] == [
        "inc-alpha-zeta-1", "inc-alpha-zeta-2", "inc-1"]


def test_a_duplicate_explicit_slug_raises():
    flow = Flow("f")
    flow.add_task(Task(slug="same"))
    with pytest.raises(ValueError, match='slug "same" already exists'):
        flow.add_task(Task(slug="same"))


def test_a_generated_slug_never_takes_an_explicit_one():
    flow = Flow("f")
    explicit = flow.add_task(Task(name="inc", slug="inc-1"))
    with flow:
        generated = inc(1)
    assert flow.slugs[explicit] == "inc-1"
    assert flow.slugs[generated] == "inc-2"


def test_every_slug_in_a_flow_is_unique():
    with Flow("f") as flow:
        for i in range(10):
            inc(i, task_args={"tags": ["a"] if i % 2 else []})
    assert len(set(flow.slugs.values())) == len(flow.tasks) == 10


def test_get_tasks_by_slug_finds_the_task():
    with Flow("f") as flow:
        inc(1)
        second = inc(2)
    assert flow.get_tasks(slug="inc-2") == [second]


# -- stability across processes ----------------------------------------------------------

FLOW_FILE = '''
from cairnflow import Flow, Parameter, case, flatten, merge, task, unmapped


@task
def inc(x):
    return x + 1


@task(tags=["io", "batch", "alpha"])
def load(i):
    return list(range(i))


@task
def total(xs):
    return sum(xs)


@task
def add(x, y):
    return x + y


@task(nout=2)
def split(x):
    return x, -x


@task
def is_even(x):
    return x % 2 == 0


@task
def names(mapping):
    return sorted(mapping)


with Flow("stable") as flow:
    n = Parameter("n", default=3)
    loads = [load(i) for i in range(1, 5)]
    mapped = [inc.map(batch) for batch in loads]
    shifted = add.map(loads[0], y=unmapped(n))
    sums = [total(m) for m in mapped]
    chain = n
    for _ in range(4):
        chain = inc(chain)
    first, second = split(chain)
    scaled = [s * 2 + first for s in sums]
    picked = [batch[0] for batch in loads[1:3]]
    everything = total(scaled + picked)
    flat = inc.map(flatten([loads[2], loads[3]]))
    by_name = names({"a": sums[1], "b": 1})
    cond = is_even(n)
    with case(cond, True):
        yes = inc(everything)
    with case(cond, False):
        no = inc(second)
    result = merge(yes, no)
'''

PRINT_SLUGS = textwrap.dedent('''
    import json, sys
    from cairnflow.runner.loading import load_flow_from_file
    flow = load_flow_from_file(sys.argv[1])
    print(json.dumps(sorted((flow.slugs[t], sorted(flow.slugs[u] for u in flow.upstream_tasks(t)))
                            for t in flow.tasks)))
''')


def test_slugs_are_the_same_in_every_process(tmp_path):
    flow_file = tmp_path / "stable_flow.py"
    flow_file.write_text(FLOW_FILE)
    procs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "CAIRNFLOW_HOME": str(tmp_path / seed)}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", PRINT_SLUGS, str(flow_file)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out)
    assert outputs[0] == outputs[1]

    graph = dict((slug, upstream) for slug, upstream in json.loads(outputs[0]))
    assert len(graph) >= 30
    assert graph["n"] == []
    assert graph["load-alpha-batch-io-4"] == []
    assert graph["inc-1"] == ["load-alpha-batch-io-1"]  # the first mapped task
    assert graph["names-1"] == ["Dict-1"]
    assert "split[0]-1" in graph and "Merge-1" in graph and "case(True)-1" in graph
    assert sum(1 for up in graph.values() if len(up) >= 2) >= 5
