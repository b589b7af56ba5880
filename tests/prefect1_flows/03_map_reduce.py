"""Mapping with an unmapped argument, then reducing."""
from cairnflow import Flow, task, unmapped


@task
def numbers():
    return [1, 2, 3, 4]


@task
def scale(x, factor):
    return x * factor


@task
def total(xs):
    return sum(xs)


with Flow("map-reduce") as flow:
    scaled = scale.map(numbers(), factor=unmapped(3))
    result = total(scaled)

state = flow.run()
assert [s.result for s in state.result[scaled].map_states] == [3, 6, 9, 12]
print("RESULT:", state.result[result].result)
