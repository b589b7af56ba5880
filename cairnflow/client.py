"""Read past and current runs from Python: ``cairnflow.client.Client``.

The client reads the checkpoint store through the same query API as the
``cairnflow`` CLI and the web server (``cairnflow.statestore.queries``), so all
three agree on every run, state and result. Its one write is Prefect 1's
``create_flow_run``: a run of a registered flow, asked for through the same action
as the web UI's Run button (an agent starts it).

Example (what did last night's run return?):

    >>> from cairnflow.client import Client                      # doctest: +SKIP
    >>> run = Client().run("last")                               # doctest: +SKIP
    >>> run.state, run.result("report-1")                        # doctest: +SKIP
    ('Success', '2026-11-23: 450 across 3 regions')
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cairnflow.states import State, state_from_name
from cairnflow.statestore import queries
from cairnflow.statestore.base import FlowInfo, LogEntry, StateStore, TaskRunInfo, Transition

__all__ = ["Client", "Run", "FlowRunInfoResult", "TaskRunInfoResult"]


class Client:
    """Reads runs from a checkpoint store.

    Args:
        db: the store: a ``sqlite:///`` or ``postgresql+psycopg://`` URL, a file
            path, or an open ``StateStore`` (left open). By default
            ``$CAIRNFLOW_DB_URL``, else ``$CAIRNFLOW_HOME/cairnflow.db`` (what
            ``flow.run()`` and the CLI use).

    The store is opened read-only for each call and closed after it, so a
    client kept for hours (a notebook) always sees the newest runs and never
    holds the database open. A database that does not exist yet has no runs.

    Example:
        >>> import tempfile
        >>> client = Client(f"sqlite:///{tempfile.mkdtemp()}/none-yet.db")
        >>> client.runs()
        []
    """

    def __init__(self, db: str | StateStore | None = None):
        self.db = db

    @contextmanager
    def _store(self, write: bool = False) -> Iterator[StateStore]:
        if isinstance(self.db, StateStore):
            yield self.db
            return
        from cairnflow.statestore import open_store

        store = open_store(self.db, readonly=not write)
        try:
            yield store
        finally:
            store.close()

    # -- reads ----------------------------------------------------------------------

    def runs(self, flow_name: str | None = None, state: str | None = None,
             limit: int | None = None) -> list[Run]:
        """Runs, newest first, optionally of one flow and in one state (any case).

        Each run's task runs are read when first asked for (``Run.tasks``).
        ``state`` that names no state is a ``ValueError``.
        """
        with self._store() as store:
            found = queries.list_runs(store, flow_name=flow_name, state=state, limit=limit)
        return [Run._from(self, info) for info in found]

    def run(self, ref: str) -> Run:
        """One run: a whole id, a unique prefix of one, or ``"last"`` (the newest).

        Raises ``cairnflow.exceptions.UnknownRunError`` (or ``AmbiguousRunError``)
        with a message saying what to do.
        """
        with self._store() as store:
            detail = queries.run_detail(store, ref)
        return Run._from(self, detail.run, detail.tasks)

    def flows(self) -> list[FlowInfo]:
        """Every flow with runs in the store, by name, each with its newest run."""
        with self._store() as store:
            return queries.list_flows(store)

    # -- Prefect 1's Client methods that local flows use -----------------------------

    def create_flow_run(self, flow_id: str | None = None, parameters: dict[str, Any] | None = None,
                        labels: list[str] | None = None,
                        scheduled_start_time: datetime | None = None,
                        version_group_id: str | None = None) -> str:
        """Ask for a run of a registered flow, as Prefect 1's ``Client.create_flow_run``.

        Args:
            flow_id: the id ``flow.register()`` returned (one version of the flow).
            parameters: the run's parameter values; the registered defaults fill
                the rest.
            labels: the labels an agent needs to run it (default: the flow's).
            scheduled_start_time: when it is due (default: now).
            version_group_id: instead of ``flow_id``, a flow's name: its latest
                version runs.

        The run is ``Scheduled``; an agent whose labels match starts it. Returns
        the run's id. Raises ``UnknownFlowError`` for an unknown flow and
        ``InvalidParametersError`` naming an unknown or missing parameter; no run
        is created then.

        Example:
            >>> run_id = Client().create_flow_run(flow_id, parameters={"name": "Marvin"})  # doctest: +SKIP
        """
        from cairnflow.statestore import actions

        if (flow_id is None) == (version_group_id is None):
            raise ValueError("create_flow_run needs exactly one of flow_id and "
                             "version_group_id (a registered flow's name)")
        with self._store(write=True) as store:
            return actions.create_flow_run(store, flow_id or version_group_id or "",
                                           parameters, labels=labels,
                                           scheduled_start=scheduled_start_time)

    def get_flow_run_info(self, flow_run_id: str) -> FlowRunInfoResult:
        """A run's state and task runs, as Prefect 1's ``Client.get_flow_run_info``.

        ``state`` and each task run's ``state`` are ``cairnflow.states`` objects
        (``info.state.is_successful()``), judged by the same rules as ``run()``
        (a run whose process died is ``Crashed``). Raises ``UnknownRunError``.
        """
        with self._store() as store:
            detail = queries.run_detail(store, flow_run_id)
        info = detail.run
        return FlowRunInfoResult(
            id=info.id, flow_id=info.flow_version_id, flow_name=info.flow_name,
            parameters=info.parameters, labels=list(info.labels),
            scheduled_start_time=_pendulum(info.scheduled_start),
            state=_state(info.state, info.message),
            task_runs=[TaskRunInfoResult(task_slug=t.task_slug, map_index=t.map_index,
                                         state=_state(t.state, t.message))
                       for t in detail.tasks])


def _pendulum(when: datetime | None) -> datetime | None:
    """A pendulum DateTime, as Prefect 1's client returned (the query API's are stdlib)."""
    import pendulum

    return None if when is None else pendulum.instance(when)


@dataclass(frozen=True)
class TaskRunInfoResult:
    """One task run in ``Client.get_flow_run_info`` (a mapped child has its ``map_index``)."""

    task_slug: str
    map_index: int | None
    state: State


@dataclass(frozen=True)
class FlowRunInfoResult:
    """What ``Client.get_flow_run_info`` returns, with Prefect 1's field names.

    ``flow_id`` is the registered flow version's id (None for a run of an
    unregistered flow); ``state`` is a ``cairnflow.states`` object.
    """

    id: str
    flow_id: str | None
    flow_name: str
    parameters: dict[str, Any]
    labels: list[str]
    scheduled_start_time: datetime | None
    state: State
    task_runs: list[TaskRunInfoResult]


def _state(name: str, message: str | None) -> State:
    return state_from_name(name)(message)


@dataclass(frozen=True)
class Run:
    """A flow run as the store knew it when it was read (``refresh()`` reads it again).

    Attributes:
        id: the run's uuid.
        flow_name: its flow's name.
        state: its state by class name (``Success``, ``Failed``, ``Crashed`` ...).
        message: the state's message.
        parameters: the parameters it ran with.
        attempt: 1, plus one per resume.
        started_at: when it first started (UTC).
        ended_at: when its latest attempt ended, or None.
    """

    id: str
    flow_name: str
    state: str
    message: str | None
    parameters: dict[str, Any]
    attempt: int
    started_at: datetime
    ended_at: datetime | None
    _client: Client = field(repr=False, compare=False)
    _tasks: list[TaskRunInfo] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _from(cls, client: Client, info: Any, tasks: list[TaskRunInfo] | None = None) -> Run:
        return cls(id=info.id, flow_name=info.flow_name, state=info.state,
                   message=info.message, parameters=info.parameters, attempt=info.attempt,
                   started_at=info.created_at, ended_at=info.ended_at, _client=client,
                   _tasks=tasks)

    @property
    def tasks(self) -> list[TaskRunInfo]:
        """The run's task runs in recorded order, mapped children included (each with
        ``task_slug``, ``map_index``, ``state``, ``attempts``, ``message`` ...)."""
        if self._tasks is None:
            with self._client._store() as store:
                info = store.get_flow_run(self.id)
                object.__setattr__(self, "_tasks",
                                   queries.presented_tasks(info, store.get_task_runs(self.id)))
        return list(self._tasks or [])

    def refresh(self) -> Run:
        """The same run read again (a live run moves on)."""
        return self._client.run(self.id)

    def history(self, task: str | None = None) -> list[Transition]:
        """Every state transition, oldest first; of one task (``"fetch-1"``, its mapped
        children included) or one mapped child (``"fetch-1[7]"``) when given."""
        with self._client._store() as store:
            slug, index = _task(store, self.id, task)
            return queries.history(store, self.id, slug, map_index=index)

    def logs(self, task: str | None = None, level: int | str | None = None) -> list[LogEntry]:
        """The log records stored with the run, oldest first; of one task or mapped
        child (as ``history``), at ``level`` (``"WARNING"`` or 30) and above."""
        if isinstance(level, str):
            import logging

            number = logging.getLevelName(level.upper())
            if not isinstance(number, int):
                raise ValueError(f"{level!r} is not a log level: use DEBUG, INFO, WARNING, "
                                 "ERROR or CRITICAL")
            level = number
        with self._client._store() as store:
            slug, index = _task(store, self.id, task)
            return queries.logs(store, self.id, slug, level=level, map_index=index)

    def result(self, slug: str, map_index: int | None = None) -> Any:
        """A task run's checkpointed result, unpickled: ``run.result("total-1")``,
        ``run.result("fetch-1[7]")`` or ``run.result("fetch-1", map_index=7)``.

        Raises ``cairnflow.exceptions.ResultNotFoundError`` saying why there is
        none (the task failed, ran with ``checkpoint=False``, is mapped ...).
        """
        with self._client._store() as store:
            slug, index = queries.task_ref(store, self.id, slug, map_index)
            return queries.result_value(store, self.id, slug, index)


def _task(store: StateStore, run_id: str, text: str | None) -> tuple[str | None, int | None]:
    if text is None:
        return None, None
    return queries.task_ref(store, run_id, text)
