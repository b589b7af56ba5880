"""Thinking Prefectly: "Tasks" — the simplest task, a decorated function."""

from cairnflow import task

@task
def say_hello():
    print("Hello, world!")
