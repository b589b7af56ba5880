"""Triggers: a built-in one and a user-written one over Dict[Edge, State]."""
from cairnflow import task, Flow
from cairnflow.triggers import any_failed


def only_if_data_succeeded(upstream_states):
    """A user trigger, written for Prefect 1: run when the `data` edge succeeded."""
    return all(state.is_successful() for edge, state in upstream_states.items()
               if edge.key == "data")


@task
def fetch():
    return [1, 2]


@task
def broken():
    raise RuntimeError("broken")


@task(trigger=any_failed)
def alert():
    return "alerted"


@task(trigger=only_if_data_succeeded)
def report(data):
    return len(data)


with Flow("triggers") as flow:
    b = broken()
    a = alert(upstream_tasks=[b])
    r = report(fetch(), upstream_tasks=[b])

flow.set_reference_tasks([a, r])
state = flow.run()
print("RESULT:", state.result[a].result, state.result[r].result, state.is_successful())
