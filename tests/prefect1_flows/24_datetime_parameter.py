"""DateTimeParameter from prefect.core.parameter."""
from cairnflow import task, Flow
from cairnflow.core.parameter import DateTimeParameter


@task
def weekday(when):
    return when.format("dddd")


with Flow("dates") as flow:
    when = DateTimeParameter("when", required=False)
    day = weekday(when)

state = flow.run(when="2024-05-01T09:00:00+00:00")
print("RESULT:", state.result[day].result)
