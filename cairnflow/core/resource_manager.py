"""Resource managers: set a resource up before a block of tasks, clean it up after,
as Prefect 1's ``resource_manager`` does. The cleanup runs whenever the setup
succeeded, also when tasks of the block failed, and never decides the flow's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairnflow import signals
from cairnflow.core import flow as _flow
from cairnflow.core.edge import Edge
from cairnflow.core.task import FunctionTask, Task
from cairnflow.states import State

__all__ = ["resource_manager", "ResourceManager", "ResourceContext", "ResourceInitTask",
           "ResourceSetupTask", "ResourceCleanupTask", "resource_cleanup_trigger"]


class ResourceInitTask(FunctionTask):
    """Creates the resource manager object (calls the decorated class)."""

    _never_reference = True


class ResourceSetupTask(Task):
    """Sets up a resource with its resource manager."""

    def run(self, mgr: Any) -> Any:
        return mgr.setup()


class ResourceCleanupTask(Task):
    """Cleans up a resource with its resource manager."""

    _never_reference = True

    def run(self, mgr: Any, resource: Any) -> None:
        mgr.cleanup(resource)


def resource_cleanup_trigger(upstream_states: dict[Edge, State]) -> bool:
    """Run the cleanup when everything upstream finished and init and setup succeeded."""
    for edge, state in upstream_states.items():
        if not state.is_finished():
            raise signals.TRIGGERFAIL("Trigger was 'resource_cleanup_trigger' but some of "
                                      "the upstream tasks were not finished.")
        what = {"mgr": "init", "resource": "setup"}.get(edge.key or "")
        if what is not None:
            if state.is_skipped():
                raise signals.SKIP(f"Resource manager {what} skipped")
            if not state.is_successful():
                raise signals.SKIP(f"Resource manager {what} failed")
    return True


class ResourceContext:
    """The ``with`` block of a resource: ``as`` gives the setup task (the resource)."""

    def __init__(self, init_task: Task, setup_task: Task, cleanup_task: Task,
                 flow: _flow.Flow):
        self.init_task = init_task
        self.setup_task = setup_task
        self.cleanup_task = cleanup_task
        self._flow = flow
        self._tasks: set[Task] = set()

    def add_task(self, task: Task, flow: _flow.Flow) -> None:
        """Record a task created inside the block."""
        if flow is not self._flow:
            raise ValueError("Multiple flows cannot be used with the same resource block")
        self._tasks.add(task)

    def __enter__(self) -> Task:
        self._token = _flow._active_resource.set(self)
        return self.setup_task

    def __exit__(self, *exc: Any) -> None:
        _flow._active_resource.reset(self._token)
        for child in self._tasks:
            upstream = self._flow.upstream_tasks(child)
            if not self._tasks & upstream and self.setup_task not in upstream:
                child.set_upstream(self.setup_task, flow=self._flow)
            downstream = self._flow.downstream_tasks(child)
            if not self._tasks & downstream and self.cleanup_task not in downstream:
                child.set_downstream(self.cleanup_task, flow=self._flow)


class ResourceManager:
    """Calling it inside a flow adds the init, setup and cleanup tasks of a resource.

    Args:
        resource_class: the class with ``setup()`` and ``cleanup(resource)``.
        name: the resource's name (the class name by default).
        init_task_kwargs, setup_task_kwargs, cleanup_task_kwargs: ``Task``
            settings for the three tasks.
    """

    def __init__(self, resource_class: Callable[..., Any], name: str | None = None,
                 init_task_kwargs: dict | None = None, setup_task_kwargs: dict | None = None,
                 cleanup_task_kwargs: dict | None = None):
        self.resource_class = resource_class
        self.name = name or getattr(resource_class, "__name__", "resource")
        self.init_task_kwargs = {"name": self.name, **(init_task_kwargs or {})}
        self.setup_task_kwargs = {"name": f"{self.name}.setup", **(setup_task_kwargs or {})}
        self.cleanup_task_kwargs = {
            "name": f"{self.name}.cleanup", "trigger": resource_cleanup_trigger,
            "skip_on_upstream_skip": False, **(cleanup_task_kwargs or {})}

    def __call__(self, *args: Any, flow: _flow.Flow | None = None,
                 **kwargs: Any) -> ResourceContext:
        flow = flow or _flow.active_flow()
        if flow is None:
            raise ValueError("Could not infer an active Flow context.")
        init = ResourceInitTask(self.resource_class, **self.init_task_kwargs)(
            *args, flow=flow, **kwargs)
        setup = ResourceSetupTask(**self.setup_task_kwargs)(init, flow=flow)
        cleanup = ResourceCleanupTask(**self.cleanup_task_kwargs)(init, setup, flow=flow)
        return ResourceContext(init, setup, cleanup, flow)


def resource_manager(resource_class: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Decorate a class with ``setup()`` and ``cleanup(resource)`` to use it as
    ``with MyResource(args) as resource:`` inside a flow.

    Example:
        >>> from cairnflow import Flow, task, resource_manager
        >>> @resource_manager
        ... class TempDir:
        ...     def setup(self):
        ...         import tempfile
        ...         return tempfile.mkdtemp()
        ...     def cleanup(self, path):
        ...         import shutil
        ...         shutil.rmtree(path)
        >>> @task
        ... def write(path):
        ...     open(f"{path}/x", "w").write("hi")
        >>> with Flow("example") as flow:
        ...     with TempDir() as path:
        ...         write(path)
        >>> flow.run().is_successful()
        True
    """
    if resource_class is None:
        return lambda cls: ResourceManager(cls, **kwargs)
    return ResourceManager(resource_class, **kwargs)
