"""Hello, world: a task and a parameter (Prefect 1's first tutorial)."""
from cairnflow import task, Flow, Parameter


@task(log_stdout=True)
def say_hello(name):
    print("Hello, {}!".format(name))
    return "Hello, {}!".format(name)


with Flow("hello-world") as flow:
    name = Parameter("name", default="world")
    greeting = say_hello(name)

state = flow.run(name="Marvin")
assert state.is_successful()
print("RESULT:", state.result[greeting].result)
