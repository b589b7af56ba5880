"""Thinking Prefectly: "Task inputs and outputs" — saying hello to a specific person."""

# from the earlier snippet
from cairnflow import task

@task
def say_hello(person: str) -> None:
    print("Hello, {}!".format(person))

# To run the snippet on its own (`python` or `cairnflow run`), put the task in a
# flow, as the page's "Parameters" section goes on to do.
from cairnflow import Flow, Parameter

with Flow("Say hello") as flow:
    say_hello(Parameter("person", default="Arthur"))

if __name__ == "__main__":
    flow.run()
