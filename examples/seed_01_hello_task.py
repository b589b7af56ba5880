"""Thinking Prefectly: "Tasks" — the simplest task, a decorated function."""

from cairnflow import task

@task
def say_hello():
    print("Hello, world!")

# To run the snippet on its own (`python` or `cairnflow run`), put the task in a
# flow, as the page's "Flows" section goes on to do.
from cairnflow import Flow

with Flow("Hello, world!") as flow:
    say_hello()

if __name__ == "__main__":
    flow.run()
