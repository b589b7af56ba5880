"""Task looping with LOOP and task_loop_result (Prefect 1's Fibonacci example)."""
import cairnflow
from cairnflow import task, Flow, Parameter
from cairnflow.engine.signals import LOOP


@task
def compute_large_fibonacci(M):
    # we extract the accumulated task loop result from context
    loop_payload = cairnflow.context.get("task_loop_result", {})

    n = loop_payload.get("n", 1)
    fib = loop_payload.get("fib", 1)

    next_fib = n + fib

    if next_fib > M:
        return fib  # return statements end the loop

    raise LOOP(message=f"Fib {n}={next_fib}", result=dict(n=fib, fib=next_fib))


with Flow("fibonacci") as flow:
    M = Parameter("M", default=100)
    fib_num = compute_large_fibonacci(M)

flow_state = flow.run(M=100)
print("RESULT:", flow_state.result[fib_num].result)
