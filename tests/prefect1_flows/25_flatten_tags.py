"""flatten from prefect.utilities.edges and the tags context manager."""
from cairnflow import task, Flow, tags
from cairnflow.utilities.edges import flatten


@task
def nested():
    return [[1, 2], [3]]


@task
def inc(x):
    return x + 1


with Flow("flatten") as flow:
    with tags("dev"):
        out = inc.map(flatten(nested()))

state = flow.run()
print("RESULT:", state.result[out].result, sorted(out.tags))
