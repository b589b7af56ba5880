"""Thinking Prefectly: "Task classes" — an add task with a customizable default."""

from cairnflow import Task

class AddTask(Task):

    def __init__(self, default: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.default = default

    def run(self, x: int, y: int=None) -> int:
        if y is None:
            y = self.default
        return x + y

# initialize the task instance
add = AddTask(default=1)

# To run the snippet on its own (`python` or `cairnflow run`), put the task in a
# flow, as the page's "Functional API" section goes on to do.
from cairnflow import Flow

with Flow("Add with a default") as flow:
    add(1)

if __name__ == "__main__":
    flow.run()
