"""Thinking Prefectly: "Task inputs and outputs" — saying hello to a specific person."""

# from the earlier snippet
from cairnflow import task

@task
def say_hello(person: str) -> None:
    print("Hello, {}!".format(person))
