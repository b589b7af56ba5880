"""Targets: the second run finds the target and does not run the task."""
import tempfile

from cairnflow import task, Flow
from cairnflow.engine.results import LocalResult

CALLS = []
DIR = tempfile.mkdtemp()


@task(target="{task_name}-{today}.pkl", checkpoint=True, result=LocalResult(dir=DIR))
def expensive():
    CALLS.append("ran")
    return 42


with Flow("targets") as flow:
    value = expensive()

first = flow.run()
second = flow.run()
print("RESULT:", first.result[value].name, second.result[value].name,
      second.result[value].result, len(CALLS))
