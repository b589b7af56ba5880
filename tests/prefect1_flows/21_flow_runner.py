"""FlowRunner from prefect.engine.flow_runner, with return_tasks and task_states."""
from cairnflow import task, Flow
from cairnflow.engine.flow_runner import FlowRunner
from cairnflow.engine.state import Success


@task
def fetch():
    raise RuntimeError("the API is down")


@task
def double(x):
    return 2 * x


with Flow("flow-runner") as flow:
    data = fetch()
    out = double(data)

state = FlowRunner(flow=flow).run(return_tasks=[out], task_states={data: Success(result=21)})
print("RESULT:", state.is_successful(), list(state.result) == [out], state.result[out].result)
