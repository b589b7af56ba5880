"""An in-memory ``StateStore``: the reference implementation, for tests and speed.

It keeps everything in dicts for the life of the object and follows the same
contract as the SQLite store (``tests/test_store_contract.py`` runs both).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cairnflow.exceptions import FencedOutError, ResultNotFoundError, UnknownRunError
from cairnflow.states import FINISHED, is_finished as _is_finished
from cairnflow.statestore.base import (
    FlowInfo, FlowRunInfo, FlowRunRecord, LogEntry, ResumeData, StateStore, TaskKey,
    TaskRunInfo, Transition, check_claim, fenced_out_message, is_owner_alive, require_aware,
)
from cairnflow.statestore.memory_orch import OrchestrationMemory, RunOrchestration
from cairnflow.statestore.serialize import SerializedResult
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy


@dataclass(slots=True)  # one per task run, made and updated on every transition
class _TaskRun:
    slug: str
    name: str | None
    map_index: int | None
    state: str = "Pending"
    message: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def info(self, has_result: bool) -> TaskRunInfo:
        return TaskRunInfo(self.slug, self.name, self.map_index, self.state, self.message,
                           self.attempts, self.started_at, self.ended_at, has_result)


@dataclass
class _Run:
    record: FlowRunRecord
    created_at: datetime
    state: str = "Running"
    message: str | None = None
    ended_at: datetime | None = None
    updated_at: datetime = field(default_factory=lambda: pendulum.now("UTC"))
    task_runs: dict[TaskKey, _TaskRun] = field(default_factory=dict)
    results: dict[TaskKey, SerializedResult] = field(default_factory=dict)
    history: list[Transition] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    orch: RunOrchestration = field(default_factory=RunOrchestration)


class MemoryStore(OrchestrationMemory, StateStore):
    """Keeps runs in memory; nothing survives the process.

    Example:
        >>> from cairnflow import Flow, task
        >>> from cairnflow.statestore.memory import MemoryStore
        >>> @task
        ... def one():
        ...     return 1
        >>> with Flow("f") as flow:
        ...     one()
        <Task: one>
        >>> store = MemoryStore()
        >>> flow.run(store=store).is_successful()
        True
        >>> [t.state for t in store.get_history(store.list_runs()[0].id)]
        ['Running', 'Pending', 'Running', 'Success', 'Success']
    """

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._lock = threading.RLock()
        self._init_orchestration()

    # -- writes -----------------------------------------------------------------

    def record_flow_run(self, run: FlowRunRecord,
                        transitions: Sequence[Transition] = ()) -> None:
        require_aware(run.started_at, "started_at")
        for t in transitions:  # a run's start carries every task run's first Pending
            if t.timestamp.tzinfo is None:
                require_aware(t.timestamp)
        with self._lock:
            existing = self._runs.get(run.id)
            if existing is None:
                self._runs[run.id] = existing = _Run(record=run, created_at=run.started_at)
            else:
                prior = existing.record
                check_claim(run.id, run.attempt, prior.attempt, existing.state, prior.pid,
                            prior.host, existing.updated_at, prior.process_start)
                existing.record = run._replace(flow_blob=run.flow_blob or prior.flow_blob)
                existing.updated_at = pendulum.now("UTC")
            target = None
            for t in transitions:
                if target is None or target.record.id != t.flow_run_id:
                    target = self._run(t.flow_run_id)
                self._apply(target, t)

    def record_transitions(self, transitions: Sequence[Transition],
                           logs: Sequence[LogEntry] = ()) -> None:
        with self._lock:
            checked = None  # a batch is nearly always one attempt's: check it once
            for items in (transitions, logs):
                for t in items:
                    if t.timestamp.tzinfo is None:
                        require_aware(t.timestamp)
                    if checked is None or checked[0] != t.flow_run_id \
                            or checked[1] != t.attempt:
                        self._fence(self._run(t.flow_run_id), t.flow_run_id, t.attempt)
                        checked = (t.flow_run_id, t.attempt)
            for t in transitions:
                self._apply(self._runs[t.flow_run_id], t)
            for e in logs:
                self._runs[e.flow_run_id].logs.append(e)

    @staticmethod
    def _fence(run: _Run, run_id: str, attempt: int | None) -> None:
        if attempt is not None and run.record.attempt != attempt:
            raise FencedOutError(fenced_out_message(run_id, attempt, run.record.attempt))

    def _apply(self, run: _Run, t: Transition) -> None:
        run.history.append(t)  # results are stripped when history is read
        _, _, slug, name, map_index, state, message, timestamp, result = t
        if slug is None:
            run.state, run.message = state, message
            run.ended_at = timestamp if state in FINISHED else None
            return
        key = (slug, map_index)
        task_run = run.task_runs.get(key)
        if task_run is None:
            task_run = run.task_runs[key] = _TaskRun(slug, name, map_index)
        task_run.state, task_run.message = state, message
        if state == "Running":
            task_run.attempts += 1
            task_run.started_at = task_run.started_at or timestamp
            task_run.ended_at = None
        else:
            task_run.ended_at = timestamp if state in FINISHED else None
        if result is not None:
            run.results[key] = result

    def record_logs(self, entries: Sequence[LogEntry]) -> None:
        self.record_transitions((), entries)

    def heartbeat(self, flow_run_id: str, attempt: int | None = None) -> None:
        with self._lock:
            run = self._run(flow_run_id)
            self._fence(run, flow_run_id, attempt)
            run.updated_at = pendulum.now("UTC")

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        with self._lock:
            return sum(self._runs.pop(rid, None) is not None for rid in run_ids)

    def prune(self, older_than: datetime) -> int:
        require_aware(older_than, "older_than")
        with self._lock:
            old = [rid for rid, run in self._runs.items()
                   if run.created_at < older_than and _is_finished(self._info(run).state)]
            return self.delete_runs(old)

    # -- reads ------------------------------------------------------------------

    def _run(self, run_id: str) -> _Run:
        try:
            return self._runs[run_id]
        except KeyError:
            raise UnknownRunError(f"no run with id {run_id!r}") from None

    def _info(self, run: _Run) -> FlowRunInfo:
        r = run.record
        state = run.state
        if state == "Running" and not is_owner_alive(r.pid, r.host, run.updated_at,
                                                     process_start=r.process_start):
            state = "Crashed"
        return FlowRunInfo(
            id=r.id, flow_name=r.flow_name, flow_hash=r.flow_hash, state=state,
            stored_state=run.state, message=run.message, parameters=r.parameters,
            attempt=r.attempt, source_file=r.source_file, source_variable=r.source_variable,
            pid=r.pid, host=r.host, created_at=run.created_at, started_at=r.started_at,
            ended_at=run.ended_at, updated_at=run.updated_at, process_start=r.process_start,
            flow_version_id=run.orch.flow_version_id, labels=tuple(run.orch.labels),
            scheduled_start=run.orch.scheduled_start, agent_id=run.orch.agent_id,
            cancel_requested=run.orch.cancel_requested,
        )

    def get_flow_run(self, run_id: str) -> FlowRunInfo:
        with self._lock:
            return self._info(self._run(run_id))

    def list_runs(self, flow_name: str | None = None, state: str | None = None,
                  limit: int | None = None, *, since: datetime | None = None,
                  before: str | None = None) -> list[FlowRunInfo]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.created_at, reverse=True)
            if before is not None:
                ids = [r.record.id for r in runs]
                runs = runs[ids.index(before) + 1:] if before in ids else []
            infos = [self._info(r) for r in runs
                     if (flow_name is None or r.record.flow_name == flow_name)
                     and (since is None or r.created_at >= since)]
        if state is not None:
            infos = [i for i in infos if i.state == state]
        return infos[:limit] if limit is not None else infos

    def latest_run_id(self) -> str | None:
        with self._lock:
            return next(reversed(self._runs), None)  # dicts keep creation order

    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        with self._lock:
            return sorted(rid for rid in self._runs if rid.startswith(prefix))[:limit]

    def get_task_runs(self, run_id: str) -> list[TaskRunInfo]:
        with self._lock:
            run = self._run(run_id)
            return [tr.info(key in run.results) for key, tr in run.task_runs.items()]

    def get_history(self, run_id: str, task_slug: str | None = None) -> list[Transition]:
        with self._lock:
            history = list(self._run(run_id).history)
        return [t if t.result is None else t._replace(result=None) for t in history
                if task_slug is None or t.task_slug == task_slug]

    def load_result(self, run_id: str, task_slug: str,
                    map_index: int | None = None) -> SerializedResult:
        with self._lock:
            run = self._run(run_id)
            try:
                return run.results[(task_slug, map_index)]
            except KeyError:
                raise ResultNotFoundError(
                    f"task {task_slug!r}{_index(map_index)} of run {run_id} has no "
                    "checkpointed result") from None

    def load_resume_data(self, run_id: str) -> ResumeData:
        with self._lock:
            run = self._run(run_id)
            task_runs = {key: tr.info(key in run.results) for key, tr in run.task_runs.items()}
            return ResumeData(run=run.record, task_runs=task_runs, results=dict(run.results))

    def get_logs(self, run_id: str, task_slug: str | None = None) -> list[LogEntry]:
        with self._lock:
            logs = list(self._run(run_id).logs)
        return [e for e in logs if task_slug is None or e.task_slug == task_slug]

    def list_flows(self) -> list[FlowInfo]:
        flows: dict[str, FlowInfo] = {}
        for info in reversed(self.list_runs()):
            prior = flows.get(info.flow_name)
            flows[info.flow_name] = FlowInfo(
                name=info.flow_name, runs=(prior.runs if prior else 0) + 1,
                last_run_id=info.id, last_state=info.state, last_run_at=info.created_at)
        return [flows[name] for name in sorted(flows)]


def _index(map_index: int | None) -> str:
    return "" if map_index is None else f"[{map_index}]"
