"""Writes ``store_v1.db``: a database of schema version 1, as the first release wrote it.

It was run once with cairnflow at commit 5f3478e (schema 1); the file is kept so
that the migration to schema 2 is tested on a database a real release wrote.

    PYTHONPATH=. python tests/data/make_store_v1.py tests/data/store_v1.db

It holds two runs of flow ``v1-flow``: one that succeeded and one whose task
``half-1`` failed (it succeeds once ``CAIRNFLOW_V1_FIXED`` is set), with logs,
mapped children and checkpointed results.
"""

import os
import sys

from cairnflow import Flow, Parameter, get_run_logger, task


@task
def numbers(n):
    get_run_logger().info("making %d numbers", n)
    return list(range(n))


@task
def square(x):
    return x * x


@task
def half(values):
    if not os.environ.get("CAIRNFLOW_V1_FIXED"):
        raise ValueError("not fixed yet")
    return sum(values) // 2


with Flow("v1-flow") as flow:
    n = Parameter("n", default=3)
    half(square.map(numbers(n)))

if __name__ == "__main__":
    url = f"sqlite:///{os.path.abspath(sys.argv[1])}"
    os.environ["CAIRNFLOW_V1_FIXED"] = "1"
    assert flow.run(store=url, n=4).is_successful()
    del os.environ["CAIRNFLOW_V1_FIXED"]
    assert flow.run(store=url, n=3).is_failed()
