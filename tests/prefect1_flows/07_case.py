"""Conditional branches with case and merge."""
from cairnflow import task, Flow, Parameter
from cairnflow.tasks.control_flow import case, merge


@task
def is_weekend(day):
    return day in ("sat", "sun")


@task
def relax():
    return "relax"


@task
def work():
    return "work"


with Flow("case") as flow:
    day = Parameter("day", default="sat")
    weekend = is_weekend(day)
    with case(weekend, True):
        r = relax()
    with case(weekend, False):
        w = work()
    plan = merge(r, w)

state = flow.run()
assert state.result[w].is_skipped()
print("RESULT:", state.result[plan].result)
