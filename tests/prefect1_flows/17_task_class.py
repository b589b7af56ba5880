"""A Task subclass with defaults_from_attrs (Prefect 1's task library style)."""
from cairnflow import Task, Flow
from cairnflow.utilities.tasks import defaults_from_attrs


class Greet(Task):
    def __init__(self, greeting="Hello", name=None, **kwargs):
        self.greeting = greeting
        self.name_to_greet = name
        super().__init__(**kwargs)

    @defaults_from_attrs("greeting")
    def run(self, who, greeting=None):
        return "{}, {}!".format(greeting, who)


hello = Greet(name="greet")
bonjour = Greet(greeting="Bonjour")

with Flow("task-class") as flow:
    a = hello("Ford")
    b = bonjour("Arthur")
    c = hello("Zaphod", greeting="Hey")

state = flow.run()
print("RESULT:", [state.result[t].result for t in (a, b, c)])
