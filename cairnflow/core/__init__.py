"""The graph users build: tasks, flows, parameters, edges."""

from cairnflow.core.control_flow import case, merge
from cairnflow.core.edge import Edge, flatten, unmapped
from cairnflow.core.flow import Flow
from cairnflow.core.parameter import Parameter
from cairnflow.core.task import Task, task

__all__ = ["Edge", "Flow", "Parameter", "Task", "case", "flatten", "merge", "task", "unmapped"]
