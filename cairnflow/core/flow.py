"""Flows: the graph of tasks and their dependencies."""

from __future__ import annotations

import copy as _copy
import sys
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from cairnflow.core.edge import Edge, _EdgeAnnotation, flatten, mapped as _mapped, unmapped
from cairnflow.core.parameter import Parameter
from cairnflow.core.task import Task
from cairnflow.exceptions import FlowValidationError

if TYPE_CHECKING:
    from cairnflow.runner.executors import Executor
    from cairnflow.states import State
    from cairnflow.statestore.base import StateStore, Transition

__all__ = ["Flow", "require_flow", "active_flow"]

_active_flow: ContextVar[Flow | None] = ContextVar("cairnflow_active_flow", default=None)
_active_case: ContextVar[Any] = ContextVar("cairnflow_active_case", default=None)
_active_resource: ContextVar[Any] = ContextVar("cairnflow_active_resource", default=None)
_DERIVED = ("_upstream", "_downstream", "_by_slug", "_sorted", "_hash_of_order")
"""Flow attributes rebuilt from the others when a pickled flow is loaded."""


def active_flow() -> Flow | None:
    """The flow of the enclosing ``with Flow(...)`` block, if any."""
    return _active_flow.get()


def require_flow(flow: Flow | None, task: Task) -> Flow:
    """``flow`` or the active one; a clear error when there is neither."""
    flow = flow or _active_flow.get()
    if flow is None:
        raise ValueError(
            f"Could not infer an active Flow context while creating an edge to {task}. "
            "This often means you called a task outside a `with Flow(...)` block; pass "
            "`flow=` explicitly, or call `task.run(...)` to run the task's code directly.")
    return flow


class Flow:
    """A graph of tasks, run with ``flow.run()``.

    Args:
        name: the flow's name; runs are listed under it.
        tasks: tasks to add right away.
        edges: edges to add right away.
        schedule: a ``schedules.Schedule``; ``flow.run()`` then runs at each time.
        executor: the default executor (``LocalExecutor`` when None).
        reference_tasks: the tasks whose states decide the flow's final state
            (the terminal tasks by default).
        state_handlers: functions ``(flow, old_state, new_state)`` called on each
            flow-run transition.
        on_failure: a function ``(flow, state)`` called when the run fails.
        validate: check the graph for cycles as edges are added.
        result: the ``Result`` of tasks that have none of their own.
        terminal_state_handler: ``(flow, state, reference_task_states)`` called
            with the final state; a returned state replaces it.
        storage, run_config: where ``register`` and the agent find and run the
            flow (``cairnflow.storage``, ``cairnflow.run_configs``).

    Example:
        >>> from cairnflow import Flow, task
        >>> @task
        ... def add(x, y=1):
        ...     return x + y
        >>> with Flow("My first flow!") as flow:
        ...     first_result = add(1, y=2)
        ...     second_result = add(x=first_result, y=100)
        >>> state = flow.run()
        >>> state.result[second_result].result
        103
    """

    def __init__(self, name: str, schedule: Any = None, executor: Executor | None = None,
                 tasks: Iterable[Task] | None = None, edges: Iterable[Edge] | None = None,
                 reference_tasks: Iterable[Task] | None = None,
                 state_handlers: list[Callable[..., Any]] | None = None,
                 validate: bool = False, run_config: Any = None, storage: Any = None,
                 on_failure: Callable[..., Any] | None = None, result: Any = None,
                 terminal_state_handler: Callable[..., Any] | None = None):
        if not name:
            raise ValueError("A flow needs a name")
        self.name = name
        self.schedule = schedule
        self.executor = executor
        self.run_config = run_config
        self.storage = storage
        self.result = result
        self.on_failure = on_failure
        self.terminal_state_handler = terminal_state_handler
        self.state_handlers = list(state_handlers or ())
        self.eager_validation = validate
        self.constants: dict[Task, dict[str, Any]] = {}
        self.slugs: dict[Task, str] = {}
        self._by_slug: dict[str, Task] = {}
        self._slug_counts: dict[str, int] = {}
        self._tasks: dict[Task, None] = {}
        self._edges: dict[Edge, None] = {}
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self._reference_tasks: set[Task] = set()
        self._sorted: tuple[Task, ...] | None = None
        self.source = _caller_file()
        self.source_variable: str | None = None
        for t in tasks or ():
            self.add_task(t)
        for e in edges or ():
            self.add_edge(e.upstream_task, e.downstream_task, key=e.key, mapped=e.mapped,
                          flattened=e.flattened)
        self.set_reference_tasks(reference_tasks or ())

    def __repr__(self) -> str:
        return f"<Flow: name={self.name!r}>"

    def __getstate__(self) -> dict[str, Any]:
        # Every run pickles its flow (the copy resume falls back on), so the pickle
        # holds only what cannot be derived: edges as plain tuples (a NamedTuple
        # pickles through a Python call), no per-task edge lists, slug index or
        # order, which __setstate__ rebuilds. Measured: about half the time.
        state = dict(self.__dict__)
        for key in _DERIVED:
            state.pop(key, None)
        state["_edges"] = [tuple(e) for e in self._edges]
        state["_compact"] = 1
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # flows pickled by the first release lack the attributes added since
        if state.pop("_compact", None):
            edges = [Edge(*e) for e in state["_edges"]]
            state["_edges"] = dict.fromkeys(edges)
            upstream: dict[Task, list[Edge]] = {t: [] for t in state["_tasks"]}
            downstream: dict[Task, list[Edge]] = {t: [] for t in state["_tasks"]}
            for edge in edges:
                upstream[edge.downstream_task].append(edge)
                downstream[edge.upstream_task].append(edge)
            state.update(_upstream=upstream, _downstream=downstream, _sorted=None,
                         _by_slug={slug: t for t, slug in state["slugs"].items()})
        self.__dict__.update(state)
        for key in ("run_config", "storage", "result", "on_failure", "terminal_state_handler"):
            self.__dict__.setdefault(key, None)

    @property
    def logger(self) -> Any:
        """The flow's logger (Prefect 1's ``flow.logger``)."""
        from cairnflow.context import get_logger

        return get_logger(self.name)

    def __enter__(self) -> Flow:
        self._context_token = _active_flow.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active_flow.reset(self.__dict__.pop("_context_token"))

    # -- the graph ---------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """Every task in the flow."""
        return set(self._tasks)

    @property
    def edges(self) -> set[Edge]:
        """Every edge in the flow."""
        return set(self._edges)

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (once) and give it a slug."""
        if not isinstance(task, Task):
            raise TypeError(f"Flows can only contain Tasks, got {task!r}")
        if task in self._tasks:
            return task
        slug = task.slug or self._next_slug(task)
        if slug in self._by_slug:
            kind = "parameter" if isinstance(task, Parameter) else "task"
            raise ValueError(f'A {kind} with the slug "{slug}" already exists in this flow.')
        self._tasks[task] = None
        self.slugs[task] = slug
        self._by_slug[slug] = task
        self._upstream[task] = []
        self._downstream[task] = []
        self._sorted = None
        # Parameters and constants stay root tasks, outside any case (as in Prefect 1)
        from cairnflow.core.collections import Constant

        if isinstance(task, (Parameter, Constant)) or _active_flow.get() is not self:
            return task
        for block in (_active_case.get(), _active_resource.get()):
            if block is not None:
                block.add_task(task, self)
        return task

    def _next_slug(self, task: Task) -> str:
        """``<name>[-<tags>]-<n>``, numbered per name in the order tasks are added."""
        base = "-".join([task.name, *sorted(task.tags)])
        n = self._slug_counts.get(base, 0) + 1
        while f"{base}-{n}" in self._by_slug:
            n += 1
        self._slug_counts[base] = n
        return f"{base}-{n}"

    def add_edge(self, upstream_task: Task, downstream_task: Task, key: str | None = None,
                 mapped: bool = False, flattened: bool = False,
                 validate: bool | None = None) -> Edge:
        """Make ``downstream_task`` depend on ``upstream_task``."""
        if isinstance(downstream_task, Parameter):
            raise ValueError("Parameters must be root tasks and can not have upstream "
                             f"dependencies ({downstream_task} after {upstream_task}).")
        if upstream_task is downstream_task:
            raise FlowValidationError(f"Cycle found: {upstream_task} cannot depend on itself.")
        self.add_task(upstream_task)
        self.add_task(downstream_task)
        edge = Edge(upstream_task, downstream_task, key, mapped, flattened)
        if edge in self._edges:
            return edge
        if key is not None and any(e.key == key for e in self._upstream[downstream_task]):
            raise ValueError(f'Argument "{key}" for task {downstream_task} has already been '
                             "assigned in this flow. Call the task again to add another copy.")
        self._edges[edge] = None
        self._upstream[downstream_task].append(edge)
        self._downstream[upstream_task].append(edge)
        self._sorted = None
        if self.eager_validation if validate is None else validate:
            self.sorted_tasks()
        return edge

    def set_dependencies(self, task: Task, upstream_tasks: Iterable[Any] | None = None,
                         downstream_tasks: Iterable[Any] | None = None,
                         keyword_tasks: dict[str, Any] | None = None, mapped: bool = False,
                         validate: bool | None = None) -> None:
        """Add ``task`` with its state dependencies and its (possibly mapped) arguments.

        Arguments that are not tasks become constants, except mapped ones, which
        become ``Constant`` tasks so they can be iterated.
        """
        from cairnflow.core.collections import as_task

        self.add_task(task)
        keyword_tasks = keyword_tasks or {}
        for upstream in upstream_tasks or ():
            # as in Prefect 1, a map maps over its upstream tasks too, unless unmapped
            is_mapped = _mapped_edge(upstream, mapped)
            upstream = upstream.task if isinstance(upstream, _EdgeAnnotation) else upstream
            self.add_edge(as_task(upstream, flow=self), task, mapped=is_mapped,
                          validate=validate)
        for downstream in downstream_tasks or ():
            self.add_edge(task, as_task(downstream, flow=self), validate=validate)
        for key, value in keyword_tasks.items():
            is_mapped = _mapped_edge(value, mapped)
            is_flat = isinstance(value, flatten)
            if isinstance(value, _EdgeAnnotation):
                value = value.task
            if isinstance(value, _EdgeAnnotation):  # flatten(unmapped(x)) or the reverse
                is_flat = is_flat or isinstance(value, flatten)
                is_mapped = _mapped_edge(value, is_mapped)
                value = value.task
            if not is_mapped and not is_flat and not _holds_task(value):
                self.constants.setdefault(task, {})[key] = value
                continue
            self.add_edge(as_task(value, flow=self), task, key=key, mapped=is_mapped,
                          flattened=is_flat, validate=validate)

    def upstream_tasks(self, task: Task) -> set[Task]:
        """The tasks ``task`` depends on."""
        return {e.upstream_task for e in self._upstream.get(task, ())}

    def downstream_tasks(self, task: Task) -> set[Task]:
        """The tasks that depend on ``task``."""
        return {e.downstream_task for e in self._downstream.get(task, ())}

    def edges_to(self, task: Task) -> set[Edge]:
        """Edges into ``task``."""
        return set(self._upstream.get(task, ()))

    def edges_from(self, task: Task) -> set[Edge]:
        """Edges out of ``task``."""
        return set(self._downstream.get(task, ()))

    def upstream_edges(self, task: Task) -> list[Edge]:
        """Edges into ``task``, in the order they were added (engine use)."""
        return self._upstream[task]

    def downstream_edges(self, task: Task) -> list[Edge]:
        """Edges out of ``task``, in the order they were added (engine use)."""
        return self._downstream[task]

    def get_tasks(self, name: str | None = None, slug: str | None = None,
                  tags: Iterable[str] | None = None, task_type: type | None = None) -> list[Task]:
        """Tasks matching every criterion given."""
        wanted_tags = set(tags or ())
        return [t for t in self._tasks
                if (name is None or t.name == name) and (slug is None or self.slugs[t] == slug)
                and wanted_tags <= t.tags and (task_type is None or isinstance(t, task_type))]

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return {t for t in self._tasks if isinstance(t, Parameter)}

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream tasks."""
        return {t for t in self._tasks if not self._upstream[t]}

    def terminal_tasks(self) -> set[Task]:
        """Tasks with no downstream tasks."""
        return {t for t in self._tasks if not self._downstream[t]}

    def reference_tasks(self) -> set[Task]:
        """The tasks that decide the final state: those set, else the terminal ones
        (a resource's init and cleanup tasks never count, as in Prefect 1)."""
        if self._reference_tasks:
            return set(self._reference_tasks)
        found = set()
        for t, edges in self._downstream.items():  # all() on a generator per task: 4x slower
            if getattr(t, "_never_reference", False):
                continue
            for e in edges:
                if not getattr(e.downstream_task, "_never_reference", False):
                    break
            else:
                found.add(t)
        return found

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Decide the flow's final state by ``tasks`` (empty: the terminal tasks)."""
        tasks = set(tasks)
        missing = tasks - set(self._tasks)
        if missing:
            raise ValueError(f"Reference tasks must be in the flow: {sorted(map(repr, missing))}")
        self._reference_tasks = tasks

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> tuple[Task, ...]:
        """Tasks in an order where each comes after its upstream tasks.

        Ties keep the order tasks were added, so the order is the same in every
        process. A cycle raises ``FlowValidationError``.
        """
        if root_tasks is not None:
            keep = self._reachable_from(set(root_tasks))
            return tuple(t for t in self.sorted_tasks() if t in keep)
        if self._sorted is None:
            self._sorted = self._toposort()
        return self._sorted

    def _toposort(self) -> tuple[Task, ...]:
        # Most tasks have one edge or none, which need no set to be counted once (sets
        # and generators were two thirds of the sort's time on a 10,000-task chain).
        waiting: dict[Task, int] = {}
        for t in self._tasks:
            edges = self._upstream[t]
            waiting[t] = len(edges) if len(edges) < 2 else len({e.upstream_task for e in edges})
        order: list[Task] = [t for t, n in waiting.items() if n == 0]
        for task in order:  # grows while iterating: a breadth-first Kahn's algorithm
            edges = self._downstream[task]
            targets = ((edges[0].downstream_task,) if len(edges) == 1
                       else dict.fromkeys(e.downstream_task for e in edges))
            for downstream in targets:
                waiting[downstream] -= 1
                if waiting[downstream] == 0:
                    order.append(downstream)
        if len(order) != len(self._tasks):
            stuck = [t.name for t, n in waiting.items() if n > 0][:5]
            raise FlowValidationError(f"Cycle found; flows must be acyclic! (involving {stuck})")
        return tuple(order)

    def _reachable_from(self, roots: set[Task]) -> set[Task]:
        seen, stack = set(roots), list(roots)
        while stack:
            for e in self._downstream[stack.pop()]:
                if e.downstream_task not in seen:
                    seen.add(e.downstream_task)
                    stack.append(e.downstream_task)
        return seen

    def validate(self) -> None:
        """Raise ``FlowValidationError`` if the graph is inconsistent or cyclic."""
        for edge in self._edges:
            if edge.upstream_task not in self._tasks or edge.downstream_task not in self._tasks:
                raise FlowValidationError(f"{edge} refers to a task that is not in the flow.")
        if not self._reference_tasks <= set(self._tasks):
            raise FlowValidationError("Some reference tasks are not in the flow.")
        self.sorted_tasks()

    def copy(self) -> Flow:
        """A copy with its own task and edge collections (the tasks are shared)."""
        new = _copy.copy(self)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new.slugs = dict(self.slugs)
        new._by_slug = dict(self._by_slug)
        new._slug_counts = dict(self._slug_counts)
        new._tasks = dict(self._tasks)
        new._edges = dict(self._edges)
        new._upstream = {t: list(es) for t, es in self._upstream.items()}
        new._downstream = {t: list(es) for t, es in self._downstream.items()}
        new._reference_tasks = set(self._reference_tasks)
        return new

    def visualize(self, flow_state: State | None = None, filename: str | None = None,
                  format: str | None = None) -> str:
        """The graph in DOT; written to ``filename`` if given (``.dot``/``.gv`` as
        text, other formats through the optional ``graphviz`` package). With
        ``flow_state`` (what ``flow.run()`` returned), nodes are coloured by state."""
        from cairnflow.core.visualize import visualize

        return visualize(self, filename, format, flow_state)

    # -- editing (Prefect 1's chain, update, replace) and saving ---------------------

    def chain(self, *tasks: Task, validate: bool | None = None) -> list[Edge]:
        """Make each task depend on the one before it; returns the new edges."""
        return [self.add_edge(up, down, validate=validate) for up, down in zip(tasks, tasks[1:])]

    def update(self, flow: Flow, merge_parameters: bool = False, validate: bool | None = None,
               merge_reference_tasks: bool = False) -> None:
        """Add every task and edge of ``flow`` to this one; with ``merge_parameters``,
        this flow's parameters of the same names are replaced by ``flow``'s."""
        from cairnflow.core.flow_edit import update

        update(self, flow, merge_parameters, validate, merge_reference_tasks)

    def replace(self, old: Task, new: Any, validate: bool = True) -> None:
        """Put ``new`` where ``old`` is, with all of ``old``'s edges and constants."""
        from cairnflow.core.flow_edit import replace

        replace(self, old, new, validate)

    def save(self, fpath: str | None = None) -> str:
        """Write the flow, cloudpickled, to ``fpath`` (default
        ``$CAIRNFLOW_HOME/flows/<name>.prefect``); returns the path."""
        from cairnflow.core.flow_edit import save

        return save(self, fpath)

    @classmethod
    def load(cls, fpath: str) -> Flow:
        """A flow written by ``save``: a path, or a flow name saved by default."""
        from cairnflow.core.flow_edit import load

        return load(fpath)

    # -- running -----------------------------------------------------------------

    def run(self, parameters: dict[str, Any] | None = None, executor: Executor | None = None,
            store: StateStore | str | None = None, run_on_schedule: bool | None = None,
            on_transition: Callable[[Transition], None] | None = None,
            context: dict[str, Any] | None = None, task_states: dict[Task, State] | None = None,
            **kwargs: Any) -> State | None:
        """Run the flow durably and return its final state.

        Keyword arguments that name a parameter are parameter values. Every
        transition is recorded in ``store`` (a ``StateStore`` or a SQLAlchemy
        URL; by default ``$CAIRNFLOW_HOME/cairnflow.db``). With a schedule,
        the flow runs at each scheduled time and the last state is returned.

        Args:
            parameters: parameter values by name.
            executor: how to run tasks (the flow's executor, else LocalExecutor).
            store: where to record the run.
            run_on_schedule: set False to run once now despite a schedule.
            on_transition: called with each transition after it is recorded.
            context: extra values for ``cairnflow.context`` inside tasks; a ``date``
                moves ``today``, ``yesterday``, ``tomorrow`` and their ``_nodash`` forms.
            task_states: states of some tasks, by task; a finished one is taken as
                the task's state and the task does not run.

        Raises:
            ValueError: on a schedule with no more runs, or given ``return_tasks``
                (Prefect 1's rules; ``FlowRunner`` takes ``return_tasks``).
        """
        from cairnflow.runner.api import run_flow

        if "return_tasks" in kwargs:
            raise ValueError(
                "The `return_tasks` keyword cannot be provided to `flow.run()`; all task "
                "states are always returned. If you want to receive a subset of task "
                "states, use a FlowRunner directly.")
        return run_flow(self, parameters=parameters, executor=executor, store=store,
                        run_on_schedule=run_on_schedule, on_transition=on_transition,
                        context=context, task_states=task_states, **kwargs)

    def resume(self, run_id: str | None = None, executor: Executor | None = None,
               store: StateStore | str | None = None,
               on_transition: Callable[[Transition], None] | None = None) -> State:
        """Continue a run of this flow that did not succeed, with this flow's code.

        ``run_id`` None picks the latest run of this flow that did not succeed.
        Tasks that succeeded are not run again; their stored results are used.
        """
        from cairnflow.runner.api import resume_flow

        return resume_flow(self, run_id=run_id, executor=executor, store=store,
                           on_transition=on_transition)

    def register(self, project_name: str | None = None, labels: list[str] | None = None,
                 idempotency_key: str | None = None, set_schedule_active: bool = True,
                 no_url: bool = False, *, store: StateStore | str | None = None,
                 **kwargs: Any) -> str:
        """Store a new version of this flow for the web UI and agents; return its id.

        No server needs to be running. Each call stores a new version (older ones
        are archived) unless ``idempotency_key`` equals the latest version's.
        Prints ``Flow URL: <CAIRNFLOW_UI_URL>/flow/<id>`` unless ``no_url``.

        Args:
            project_name: kept for people to read (Prefect 1's project).
            labels: an agent runs this flow only if it has all of them
                (default: this host's name).
            idempotency_key: registering again with the same key adds nothing.
            set_schedule_active: whether the flow's schedule creates runs.
            no_url: do not print the flow's URL.
            store: the store to register in (default: the default store).
            **kwargs: Prefect 1's other arguments (``build``, ...), accepted and ignored.
        """
        from cairnflow.registration import register_flow

        return register_flow(self, project_name=project_name, labels=labels,
                             idempotency_key=idempotency_key,
                             set_schedule_active=set_schedule_active, no_url=no_url,
                             store=store)


def _mapped_edge(value: Any, mapped: bool) -> bool:
    """Whether an argument is mapped over: ``mapped(x)`` always, ``unmapped(x)``
    never, anything else when the call is a ``.map()`` (Prefect 1's rule)."""
    if isinstance(value, _mapped):
        return True
    return mapped and not isinstance(value, unmapped)


def _holds_task(value: Any) -> bool:
    from cairnflow.core.collections import _contains_task

    return _contains_task(value)


def _caller_file() -> str | None:
    """The file of the code that created the flow (skipping cairnflow's own frames)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("cairnflow."):
        frame = frame.f_back
    return frame.f_globals.get("__file__") if frame is not None else None
