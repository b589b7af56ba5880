"""A flow with a LocalDaskExecutor (threads)."""
from cairnflow import task, Flow
from cairnflow.executors import LocalDaskExecutor


@task
def square(x):
    return x * x


with Flow("executor", executor=LocalDaskExecutor(scheduler="threads", num_workers=2)) as flow:
    squares = square.map(list(range(5)))

state = flow.run()
print("RESULT:", state.result[squares].result)
