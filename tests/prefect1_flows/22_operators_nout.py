"""Operators on tasks, indexing, and nout from a Tuple annotation."""
from typing import Tuple

from cairnflow import task, Flow


@task
def split(x) -> Tuple[int, int]:
    return x // 10, x % 10


@task
def config():
    return {"scale": 3}


with Flow("operators") as flow:
    tens, ones = split(42)
    total = tens * 10 + ones
    scaled = total * config()["scale"]
    bigger = scaled > 100

state = flow.run()
print("RESULT:", state.result[total].result, state.result[scaled].result,
      state.result[bigger].result)
