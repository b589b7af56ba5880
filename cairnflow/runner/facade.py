"""Prefect 1's runner classes, for code that drives runs by hand:
``FlowRunner(flow=...).run(...)`` and ``TaskRunner(task=...).run(...)``.

Both run through ``flow.run()`` (durably recorded like any run); they only
change what is returned, as Prefect 1's did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairnflow.core.edge import Edge
    from cairnflow.core.flow import Flow
    from cairnflow.core.task import Task
    from cairnflow.states import State

__all__ = ["FlowRunner", "TaskRunner", "get_default_flow_runner_class",
           "get_default_task_runner_class"]


class FlowRunner:
    """Runs a flow and returns its state, with the states of ``return_tasks`` only.

    Example:
        >>> from cairnflow import Flow, task
        >>> from cairnflow.engine.flow_runner import FlowRunner
        >>> @task
        ... def one():
        ...     return 1
        >>> with Flow("f") as flow:
        ...     t = one()
        >>> state = FlowRunner(flow=flow).run(return_tasks=[t])
        >>> state.result[t].result
        1
    """

    def __init__(self, flow: Flow, task_runner_cls: Any = None,
                 state_handlers: Iterable[Any] | None = None, **kwargs: Any):
        self.flow = flow
        self.state_handlers = list(state_handlers or ())

    def run(self, state: State | None = None, task_states: dict[Task, State] | None = None,
            return_tasks: Iterable[Task] | None = None,
            parameters: dict[str, Any] | None = None, executor: Any = None,
            context: dict[str, Any] | None = None, task_contexts: Any = None,
            **kwargs: Any) -> State:
        """Run the flow once; ``state.result`` holds only ``return_tasks``' states."""
        wanted = set(return_tasks or ())
        if wanted - self.flow.tasks:
            raise ValueError("Some tasks in return_tasks were not found in the flow.")
        flow = self.flow
        if self.state_handlers:
            flow = flow.copy()
            flow.state_handlers = [*flow.state_handlers, *self.state_handlers]
        final = flow.run(parameters=parameters, executor=executor, task_states=task_states,
                         context=context, run_on_schedule=False, **kwargs)
        final.result = {t: s for t, s in final.result.items() if t in wanted}
        return final


class TaskRunner:
    """Runs one task on its own (in a one-task flow) and returns its state.

    ``upstream_states`` maps each ``Edge`` into the task to that upstream
    task's state; keyed edges pass the state's result as that argument.
    """

    def __init__(self, task: Task, state_handlers: Iterable[Any] | None = None, **kwargs: Any):
        self.task = task
        self.state_handlers = list(state_handlers or ())

    def run(self, state: State | None = None,
            upstream_states: dict[Edge, State] | None = None,
            context: dict[str, Any] | None = None, executor: Any = None,
            **kwargs: Any) -> State:
        """Run the task; returns its final state."""
        from cairnflow.core.flow import Flow
        from cairnflow.statestore.memory import MemoryStore

        task = self.task
        if self.state_handlers:
            task = task.copy(state_handlers=[*task.state_handlers, *self.state_handlers])
        flow = Flow(f"TaskRunner: {task.name}")
        flow.add_task(task)
        given: dict[Task, State] = {}
        for edge, upstream_state in (upstream_states or {}).items():
            flow.add_edge(edge.upstream_task, task, key=edge.key, mapped=edge.mapped)
            given[edge.upstream_task] = upstream_state
        if state is not None and state.is_finished():
            given[task] = state
        final = flow.run(task_states=given, context=context, executor=executor,
                         store=MemoryStore(), run_on_schedule=False)
        return final.result[task]


def get_default_flow_runner_class() -> type[FlowRunner]:
    """``FlowRunner`` (Prefect 1 read it from its configuration)."""
    return FlowRunner


def get_default_task_runner_class() -> type[TaskRunner]:
    """``TaskRunner`` (Prefect 1 read it from its configuration)."""
    return TaskRunner
