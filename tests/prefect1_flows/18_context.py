"""Reading prefect.context inside a task, and its logger."""
import cairnflow
from cairnflow import task, Flow


@task
def where_am_i():
    logger = cairnflow.context.get("logger")
    logger.info("running %s", cairnflow.context.task_name)
    return (cairnflow.context.get("task_name"), cairnflow.context.get("map_index"),
            len(cairnflow.context.get("today_nodash")), cairnflow.context.get("answer"))


with Flow("context") as flow:
    out = where_am_i()

with cairnflow.context(answer=42):
    state = flow.run()
print("RESULT:", state.result[out].result)
