"""The imperative API: add_task, add_edge, set_upstream, bind with flow=."""
from cairnflow import Flow
from cairnflow.core.task import Task
from cairnflow.core.edge import Edge


class Number(Task):
    def run(self):
        return 2


class Add(Task):
    def run(self, x, y):
        return x + y


number = Number()
add = Add()
flow = Flow("imperative")
flow.add_task(number)
add.bind(x=number, y=10, flow=flow)
extra = Number(name="first")
add.set_upstream(extra, flow=flow)
later = Add(name="later")
flow.add_edge(extra, later, key="x")
flow.add_edge(number, later, key="y")
assert Edge(number, add, key="x") in flow.edges

state = flow.run()
print("RESULT:", state.result[add].result, state.result[later].result, len(flow.tasks))
