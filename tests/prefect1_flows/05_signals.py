"""Signals from prefect.engine.signals set a task's state."""
from cairnflow import task, Flow
from cairnflow.engine import signals
from cairnflow.engine.signals import SKIP


@task
def check(x):
    if x > 10:
        raise signals.FAIL("too big")
    if x == 0:
        raise SKIP("nothing to do")
    return x


with Flow("signals") as flow:
    big = check(11)
    zero = check(0)
    fine = check(5)

state = flow.run()
assert state.result[big].is_failed() and state.result[big].message == "too big"
assert state.result[zero].is_skipped()
print("RESULT:", state.result[fine].result, state.is_failed())
