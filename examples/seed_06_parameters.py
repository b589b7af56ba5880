"""Thinking Prefectly: "Parameters" — a flow that says hello to someone."""

# from the earlier snippet
from cairnflow import task, Flow

@task
def say_hello(person: str) -> None:
    print("Hello, {}!".format(person))

from cairnflow import Parameter

with Flow("Say hi!") as flow:
    name = Parameter("name")
    say_hello(name)

flow.run(name="Marvin")
