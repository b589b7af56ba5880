"""switch from prefect.tasks.control_flow.conditional."""
from cairnflow import task, Flow
from cairnflow.tasks.control_flow.conditional import switch, merge


@task
def condition():
    return "b"  # returning 'b' will take the b_branch


@task
def a_branch():
    return "A Branch"


@task
def b_branch():
    return "B Branch"


with Flow("switch-flow") as flow:
    a, b = a_branch(), b_branch()
    switch(condition, dict(a=a, b=b))
    out = merge(a, b)

state = flow.run()
print("RESULT:", state.result[out].result)
