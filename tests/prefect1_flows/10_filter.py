"""FilterTask over mapped results (Prefect 1's docs example)."""
from cairnflow import task, Flow
from cairnflow.tasks.control_flow.filter import FilterTask

default_filter = FilterTask()
even_filter = FilterTask(filter_func=lambda x: x % 2 == 0)


@task
def add(x):
    return x + 1


@task
def div(x):
    return 1 / x


with Flow("filter-numbers") as flow:
    even_numbers = even_filter(add.map(x=[-1, 0, 1, 2, 3, 99, 314]))
    final_numbers = default_filter(div.map(even_numbers))

flow_state = flow.run()
print("RESULT:", flow_state.result[final_numbers].result)
