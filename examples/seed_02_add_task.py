"""Thinking Prefectly: "Task inputs and outputs" — a task with inputs and an output."""

# from the earlier snippet
from cairnflow import task

@task
def add(x, y=1):
    return x + y
