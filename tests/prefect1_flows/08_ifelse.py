"""ifelse from prefect.tasks.control_flow."""
import random

from cairnflow import task, Flow
from cairnflow.tasks.control_flow import ifelse, merge


@task
def check_condition():
    return random.random() < 2  # always true


@task
def action_if_true():
    return "heads"


@task
def action_if_false():
    return "tails"


with Flow("ifelse") as flow:
    true_branch = action_if_true()
    false_branch = action_if_false()
    ifelse(check_condition(), true_branch, false_branch)
    merged_result = merge(true_branch, false_branch)

state = flow.run()
print("RESULT:", state.result[merged_result].result)
