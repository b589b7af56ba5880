"""Thinking Prefectly: "Task inputs and outputs" — a task with inputs and an output."""

# from the earlier snippet
from cairnflow import task

@task
def add(x, y=1):
    return x + y

# To run the snippet on its own (`python` or `cairnflow run`), put the task in a
# flow, as the page's "Functional API" section goes on to do.
from cairnflow import Flow

with Flow("Add") as flow:
    add(1, y=2)

if __name__ == "__main__":
    flow.run()
