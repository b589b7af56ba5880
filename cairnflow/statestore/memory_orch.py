"""The in-memory store's orchestration methods (see ``StateStore`` for the contracts).

``MemoryStore`` inherits these; everything happens under the store's lock, so
each method is atomic like the SQLite store's transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pendulum

from cairnflow import states
from cairnflow.exceptions import RunStillAliveError, UnknownFlowError
from cairnflow.statestore.base import (
    AgentInfo, AgentRecord, FlowRunInfo, FlowRunRecord, FlowVersionInfo, FlowVersionRecord,
    NewFlowRun, Transition, is_owner_alive, labels_match, require_aware,
)
from cairnflow.statestore.serialize import SerializedResult

__all__ = ["OrchestrationMemory", "RunOrchestration"]


@dataclass
class RunOrchestration:
    """What a run created for an agent carries besides its run record."""

    flow_version_id: str | None = None
    labels: list[str] = field(default_factory=list)
    scheduled_start: datetime | None = None
    schedule_key: str | None = None
    agent_id: str | None = None
    cancel_requested: bool = False


@dataclass
class _Version:
    info: FlowVersionInfo
    record: FlowVersionRecord


class OrchestrationMemory:
    """``StateStore``'s orchestration methods in memory (mixed into ``MemoryStore``)."""

    _runs: dict[str, Any]
    _lock: Any
    _info: Any
    _apply: Any
    _run: Any

    def _init_orchestration(self) -> None:
        self._versions: dict[str, _Version] = {}
        self._agents: dict[str, AgentInfo] = {}

    # -- registered flows ----------------------------------------------------------

    def record_flow_version(self, version: FlowVersionRecord,
                            upcoming: Sequence[NewFlowRun] = ()) -> tuple[str, bool]:
        require_aware(version.created_at, "created_at")
        with self._lock:
            mine = [v for v in self._versions.values()
                    if v.info.flow_name == version.flow_name]
            latest = max(mine, key=lambda v: v.info.version, default=None)
            if (latest is not None and version.idempotency_key is not None
                    and latest.info.idempotency_key == version.idempotency_key):
                return latest.info.id, False
            for v in mine:
                v.info = replace(v.info, archived=True)
            self._drop_schedule_runs(lambda run: run.record.flow_name == version.flow_name)
            new_id = str(uuid.uuid4())
            self._versions[new_id] = _Version(FlowVersionInfo(
                id=new_id, flow_name=version.flow_name,
                version=(latest.info.version if latest else 0) + 1,
                flow_hash=version.flow_hash, parameters=list(version.parameters),
                labels=list(version.labels), graph=dict(version.graph),
                created_at=version.created_at, project_name=version.project_name,
                idempotency_key=version.idempotency_key, source_file=version.source_file,
                source_variable=version.source_variable,
                has_schedule=version.schedule_blob is not None,
                schedule_description=version.schedule_description,
                schedule_active=version.schedule_active, archived=False), version)
            self._insert_runs([replace(r, flow_version_id=new_id) for r in upcoming])
            return new_id, True

    def _version(self, version_id: str) -> _Version:
        found = self._versions.get(version_id)
        if found is None:
            raise UnknownFlowError(f"no registered flow with id {version_id!r} "
                                   "(see `cairnflow flows ls`)")
        return found

    def get_flow_version(self, version_id: str) -> FlowVersionInfo:
        with self._lock:
            return self._version(version_id).info

    def list_flow_versions(self, flow_name: str | None = None,
                           include_archived: bool = False) -> list[FlowVersionInfo]:
        with self._lock:
            infos = [v.info for v in self._versions.values()
                     if (flow_name is None or v.info.flow_name == flow_name)
                     and (include_archived or not v.info.archived)]
        return sorted(infos, key=lambda i: (i.flow_name, -i.version))

    def load_flow_version_blobs(self, version_id: str
                                ) -> tuple[SerializedResult | None, SerializedResult | None]:
        with self._lock:
            record = self._version(version_id).record
        return record.flow_blob, record.schedule_blob

    def set_schedule_active(self, version_id: str, active: bool) -> int:
        with self._lock:
            v = self._version(version_id)
            v.info = replace(v.info, schedule_active=bool(active))
            if active:
                return 0
            return self._drop_schedule_runs(
                lambda run: run.orch.flow_version_id == version_id)

    def _drop_schedule_runs(self, matches: Any) -> int:
        gone = [rid for rid, run in self._runs.items()
                if matches(run) and run.state == "Scheduled" and run.orch.schedule_key]
        for rid in gone:
            del self._runs[rid]
        return len(gone)

    # -- runs for agents -------------------------------------------------------------

    def create_flow_runs(self, runs: Sequence[NewFlowRun]) -> list[str]:
        with self._lock:
            return self._insert_runs(runs)

    def _insert_runs(self, runs: Sequence[NewFlowRun]) -> list[str]:
        from cairnflow.statestore.memory import _Run

        for run in runs:
            require_aware(run.scheduled_start, "scheduled_start")
            version = self._version(run.flow_version_id)
            if version.info.archived:
                raise UnknownFlowError(f"no registered flow with id {run.flow_version_id!r} "
                                       "(that version is archived: run its latest version)")
        keys = {r.orch.schedule_key for r in self._runs.values() if r.orch.schedule_key}
        now = pendulum.now("UTC")
        created = []
        for run in runs:
            if run.schedule_key is not None and run.schedule_key in keys:
                continue
            v = self._versions[run.flow_version_id].record
            record = FlowRunRecord(
                id=run.id, flow_name=v.flow_name, flow_hash=v.flow_hash,
                parameters=dict(run.parameters), parameters_blob=run.parameters_blob,
                source_file=v.source_file, source_variable=v.source_variable,
                flow_blob=v.flow_blob, attempt=0, pid=0, host="", started_at=now)
            stored = self._runs[run.id] = _Run(record=record, created_at=now,
                                               state="Scheduled", updated_at=now)
            stored.orch = RunOrchestration(run.flow_version_id, list(run.labels),
                                           run.scheduled_start, run.schedule_key)
            self._apply(stored, Transition(run.id, 0, None, v.flow_name, None, "Scheduled",
                                           run.message, now))
            if run.schedule_key:
                keys.add(run.schedule_key)
            created.append(run.id)
        return created

    def claim_flow_runs(self, agent_id: str, labels: Sequence[str], limit: int,
                        now: datetime) -> list[FlowRunInfo]:
        require_aware(now, "now")
        with self._lock:
            def gone(agent: str | None) -> bool:
                known = self._agents.get(agent) if agent else None
                return known is None or not is_owner_alive(known.pid, known.host,
                                                           known.last_seen)

            candidates = sorted(
                (r for r in self._runs.values()
                 if (r.state == "Scheduled" and r.orch.scheduled_start is not None
                     and r.orch.scheduled_start <= now) or r.state == "Submitted"),
                key=lambda r: r.orch.scheduled_start or r.created_at)
            claimed = []
            for run in candidates:
                if len(claimed) >= limit:
                    break
                if not labels_match(run.orch.labels, labels):
                    continue
                if run.state == "Submitted" and not gone(run.orch.agent_id):
                    continue
                note = (f"Submitted for execution by agent {agent_id}" if run.state == "Scheduled"
                        else f"Claimed again by agent {agent_id}: agent {run.orch.agent_id} "
                             "is gone")
                run.orch.agent_id = agent_id
                self._apply(run, Transition(run.record.id, run.record.attempt, None,
                                            run.record.flow_name, None, "Submitted", note,
                                            pendulum.now("UTC")))
                claimed.append(self._info(run))
            return claimed

    def request_cancel(self, run_id: str) -> str:
        with self._lock:
            run = self._run(run_id)
            if run.state in states.QUEUED:
                self._apply(run, Transition(run_id, run.record.attempt, None,
                                            run.record.flow_name, None, "Cancelled",
                                            "Cancelled before it started",
                                            pendulum.now("UTC")))
                return "Cancelled"
            if run.state == "Running":
                run.orch.cancel_requested = True
            return run.state

    def request_resume(self, run_id: str, labels: Sequence[str], closing: Sequence[Transition],
                       now: datetime) -> None:
        require_aware(now, "now")
        with self._lock:
            run = self._run(run_id)
            info = self._info(run)
            if info.state in states.QUEUED or info.state == "Running" \
                    or info.stored_state == "Success":
                raise RunStillAliveError(
                    f"run {run_id} is {info.state}: only a run that ended without success "
                    "can be resumed")
            for t in closing:
                self._apply(run, t)
            self._apply(run, Transition(run_id, run.record.attempt, None, run.record.flow_name,
                                        None, "Scheduled",
                                        "Resume requested: waiting for an agent",
                                        pendulum.now("UTC")))
            run.orch.scheduled_start = now
            run.orch.labels = list(labels)
            run.orch.agent_id = None
            run.orch.cancel_requested = False

    def list_cancel_requests(self, host: str) -> list[FlowRunInfo]:
        with self._lock:
            return [self._info(r) for r in self._runs.values()
                    if r.state == "Running" and r.orch.cancel_requested
                    and r.record.host == host]

    # -- agents ------------------------------------------------------------------------

    def record_agent(self, agent: AgentRecord) -> None:
        with self._lock:
            self._agents[agent.id] = AgentInfo(
                id=agent.id, name=agent.name, labels=list(agent.labels), host=agent.host,
                pid=agent.pid, started_at=agent.started_at, last_seen=pendulum.now("UTC"))

    def remove_agent(self, agent_id: str) -> None:
        with self._lock:
            self._agents.pop(agent_id, None)

    def list_agents(self) -> list[AgentInfo]:
        with self._lock:
            return sorted(self._agents.values(), key=lambda a: a.last_seen, reverse=True)
