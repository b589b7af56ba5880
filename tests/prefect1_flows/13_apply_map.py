"""apply_map with a case inside (Prefect 1's docs example)."""
from cairnflow import task, case, apply_map, Flow
from cairnflow.tasks.control_flow import merge


@task
def inc(x):
    return x + 1


@task
def is_even(x):
    return x % 2 == 0


def inc_if_even(x):
    with case(is_even(x), True):
        x2 = inc(x)
    return merge(x2, x)


with Flow("example") as flow:
    out = apply_map(inc_if_even, range(5))

state = flow.run()
print("RESULT:", state.result[out].result)
