"""State handlers on a task and on the flow."""
from cairnflow import task, Flow
from cairnflow.engine.state import Failed

SEEN = []


def notify_on_failure(obj, old_state, new_state):
    if isinstance(new_state, Failed):
        SEEN.append("{} failed".format(obj.name))
    return new_state


def flow_handler(flow, old_state, new_state):
    SEEN.append("{}->{}".format(type(old_state).__name__, type(new_state).__name__))


@task(state_handlers=[notify_on_failure])
def divide(x):
    return 1 / x


with Flow("handlers", state_handlers=[flow_handler]) as flow:
    divide(0)

state = flow.run()
print("RESULT:", SEEN)
