"""The SQL stores' orchestration methods: registered flows, runs for agents, agents.

``SQLiteStore`` inherits these (see ``StateStore`` for each method's contract),
and so does ``PostgresStore`` (``postgres_orch`` overrides what is PostgreSQL's
own: row locks, the claim, the change check). The SQL is written for both
(``?``/``:name`` placeholders, which the PostgreSQL cursor translates; booleans
as ``TRUE``/``FALSE``). On SQLite each method is one write transaction
(``BEGIN IMMEDIATE``), so of several agents claiming at once each run goes to
exactly one, and a schedule's run is created once however many processes
create it (``flow_run.schedule_key`` is unique).

A flow-run transition written here (``Scheduled``, ``Submitted``, ``Cancelled``)
takes the run's next history id under the write lock; a store in another
process whose cache of that run is now stale finds out on its next write and
reads the run again (see ``sqlite_batch``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cairnflow import states
from cairnflow.exceptions import RunStillAliveError, UnknownFlowError, UnknownRunError
from cairnflow.statestore import sqlite_rows as rows
from cairnflow._lazy import lazy_module
from cairnflow.statestore.base import Transition, is_owner_alive, labels_match
from cairnflow.statestore.serialize import SerializedResult
from cairnflow.statestore.sqlite_batch import run_range, ts

if TYPE_CHECKING:
    from cairnflow.statestore.orch_records import (
        AgentInfo, AgentRecord, FlowVersionInfo, FlowVersionRecord, NewFlowRun,
    )
    from cairnflow.statestore.read_records import FlowRunInfo

# made when a registration or agent method is first used (see orch_records)
records = lazy_module("cairnflow.statestore.orch_records")

__all__ = ["OrchestrationSQL"]

_VERSION_COLUMNS = """v.id, f.name, v.version, v.flow_hash, v.parameters, v.labels, v.graph,
    v.created_at, v.project_name, v.idempotency_key, v.source_file, v.source_variable,
    v.schedule_blob IS NOT NULL, v.schedule_description, v.schedule_active, v.archived"""

_VERSION_FROM = "FROM flow_version v JOIN flow f ON f.id = v.flow_id"

_RUN_FROM = "FROM flow_run r JOIN flow f ON f.id = r.flow_id"

# A run of a version: the version's flow, hash, source and pickled flow, attempt 0.
_INSERT_RUN = """
INSERT INTO flow_run (id, flow_id, flow_hash, state, message, parameters, parameters_blob,
    parameters_serializer, parameters_python_version, parameters_cloudpickle_version,
    source_file, source_variable, flow_blob, flow_serializer, flow_python_version,
    flow_cloudpickle_version, attempt, pid, host, created_at, started_at, updated_at,
    flow_version_id, labels, scheduled_start, schedule_key)
SELECT :id, v.flow_id, v.flow_hash, 'Scheduled', :message, :parameters, :p_data, :p_ser,
    :p_py, :p_cp, v.source_file, v.source_variable, v.flow_blob, v.flow_serializer,
    v.flow_python_version, v.flow_cloudpickle_version, 0, 0, '', :now, :now, :now,
    v.id, :labels, :scheduled_start, :schedule_key
FROM flow_version v WHERE v.id = :version_id
ON CONFLICT (schedule_key) DO NOTHING
RETURNING pk"""

_DELETE_RUN_ROWS = (
    "DELETE FROM state_transition WHERE id BETWEEN ? AND ?",
    "DELETE FROM task_result WHERE task_run_id BETWEEN ? AND ?",
    "DELETE FROM task_run WHERE id BETWEEN ? AND ?",
    "DELETE FROM log_record WHERE id BETWEEN ? AND ?",
)


def _json_list(text: str | None) -> list[Any]:
    return json.loads(text) if text else []


def _version_info(row: tuple) -> FlowVersionInfo:
    (vid, name, version, flow_hash, parameters, labels, graph, created_at, project,
     key, source_file, source_variable, has_schedule, description, active, archived) = row
    return records.FlowVersionInfo(
        id=vid, flow_name=name, version=version, flow_hash=flow_hash,
        parameters=json.loads(parameters), labels=json.loads(labels), graph=json.loads(graph),
        created_at=rows.from_ts(created_at), project_name=project, idempotency_key=key,
        source_file=source_file, source_variable=source_variable,
        has_schedule=bool(has_schedule), schedule_description=description,
        schedule_active=bool(active), archived=bool(archived))


def _blob_params(prefix: str, blob: SerializedResult | None) -> dict[str, Any]:
    values = (None,) * 4 if blob is None else (
        blob.data, blob.serializer, blob.python_version, blob.cloudpickle_version)
    return dict(zip((f"{prefix}_data", f"{prefix}_ser", f"{prefix}_py", f"{prefix}_cp"),
                    values))


def append_flow_transition(cur: sqlite3.Cursor, pk: int, attempt: int, state: str,
                           message: str | None, now: str) -> None:
    """Append a transition of the flow run ``pk`` and make it the run's state.

    The caller holds the run: SQLite's write lock, or PostgreSQL's row lock."""
    low, high = run_range(pk)
    last = cur.execute("SELECT MAX(id) FROM state_transition WHERE id BETWEEN ? AND ?",
                       (low, high)).fetchone()[0]
    cur.execute("INSERT INTO state_transition (id, task_run_id, attempt, state, message, "
                "timestamp) VALUES (?, NULL, ?, ?, ?, ?)",
                ((last or low) + 1, attempt, state, message, now))
    ended = now if states.is_finished(state) else None
    cur.execute("UPDATE flow_run SET state = ?, message = ?, ended_at = ? WHERE pk = ?",
                (state, message, ended, pk))


def delete_run_rows(cur: sqlite3.Cursor, pk: int) -> None:
    """Delete run ``pk`` with every row it owns."""
    span = run_range(pk)
    for sql in _DELETE_RUN_ROWS:
        cur.execute(sql, span)
    cur.execute("DELETE FROM flow_run WHERE pk = ?", (pk,))


def delete_runs_by_id(cur: sqlite3.Cursor, run_ids: Sequence[str], lock: str = "") -> list[str]:
    """Delete the runs of ``run_ids`` that exist (``lock``: the store's row lock
    clause); return their ids."""
    gone = []
    for rid in run_ids:
        found = cur.execute(f"SELECT pk FROM flow_run WHERE id = ?{lock}", (rid,)).fetchone()
        if found is not None:
            delete_run_rows(cur, found[0])
            gone.append(rid)
    return gone


def prune_finished(cur: sqlite3.Cursor, cutoff: str, lock: str = "") -> list[str]:
    """Delete the runs created before ``cutoff`` that have ended (as readers see
    them: a dead process's run counts as Crashed); return their ids."""
    now = rows.utc_now()
    old = cur.execute(
        "SELECT id, state, pid, host, updated_at, pk, process_start FROM flow_run "
        f"WHERE created_at < ?{lock}", (cutoff,)).fetchall()
    gone = []
    for rid, state, pid, host, updated_at, pk, started in old:
        if states.is_finished(rows.reported_state(state, pid, host, updated_at, now, started)):
            delete_run_rows(cur, pk)
            gone.append(rid)
    return gone


def agent_gone_rule(cur: sqlite3.Cursor, now: datetime) -> Callable[[str | None], bool]:
    """``gone(agent_id)``: whether the agent that claimed a run is gone (no row, or its
    process dead by ``is_owner_alive``), so that its ``Submitted`` run is claimable
    again. Reads the agents once, in the claim's transaction."""
    agents = {a: (pid, host, rows.from_ts(seen)) for a, pid, host, seen in cur.execute(
        "SELECT id, pid, host, last_seen FROM agent")}

    def gone(agent: str | None) -> bool:
        known = agents.get(agent) if agent else None
        return known is None or not is_owner_alive(*known, now=now)

    return gone


class OrchestrationSQL:
    """``StateStore``'s orchestration methods over SQLite (mixed into ``SQLiteStore``)."""

    _transact: Any
    _read: Any
    _runs: Any
    _lock: Any

    _for_update = ""
    """Appended to a SELECT of rows the transaction will change: PostgreSQL's
    ``FOR UPDATE`` (SQLite's write transaction holds the whole database)."""

    _insert_run_sql = _INSERT_RUN

    # -- registered flows ----------------------------------------------------------

    def record_flow_version(self, version: FlowVersionRecord,
                            upcoming: Sequence[NewFlowRun] = ()) -> tuple[str, bool]:
        import uuid  # only to register: every command opening a store imports this module

        now = ts(rows.utc_now())
        new_id = str(uuid.uuid4())

        def write(cur: sqlite3.Cursor) -> tuple[str, bool]:
            cur.execute("INSERT INTO flow (name, created_at) VALUES (?, ?) "
                        "ON CONFLICT (name) DO NOTHING", (version.flow_name, now))
            flow_id = cur.execute(f"SELECT id FROM flow WHERE name = ?{self._for_update}",
                                  (version.flow_name,)).fetchone()[0]
            latest = cur.execute("SELECT id, version, idempotency_key FROM flow_version "
                                 "WHERE flow_id = ? ORDER BY version DESC LIMIT 1",
                                 (flow_id,)).fetchone()
            if (latest is not None and version.idempotency_key is not None
                    and latest[2] == version.idempotency_key):
                return latest[0], False
            self._drop_schedule_runs(cur, "r.flow_id = ?", (flow_id,))
            cur.execute("UPDATE flow_version SET archived = TRUE WHERE flow_id = ?", (flow_id,))
            cur.execute(
                "INSERT INTO flow_version (id, flow_id, version, project_name, "
                "idempotency_key, flow_hash, source_file, source_variable, flow_blob, "
                "flow_serializer, flow_python_version, flow_cloudpickle_version, parameters, "
                "labels, graph, schedule_blob, schedule_serializer, schedule_python_version, "
                "schedule_cloudpickle_version, schedule_description, schedule_active, "
                "archived, created_at) VALUES (:id, :flow_id, :version, :project, :key, "
                ":hash, :file, :variable, :f_data, :f_ser, :f_py, :f_cp, :parameters, "
                ":labels, :graph, :s_data, :s_ser, :s_py, :s_cp, :description, :active, FALSE, "
                ":created_at)",
                {"id": new_id, "flow_id": flow_id, "version": (latest[1] if latest else 0) + 1,
                 "project": version.project_name, "key": version.idempotency_key,
                 "hash": version.flow_hash, "file": version.source_file,
                 "variable": version.source_variable, **_blob_params("f", version.flow_blob),
                 "parameters": json.dumps(version.parameters, default=repr),
                 "labels": json.dumps(list(version.labels)),
                 "graph": json.dumps(version.graph, default=repr),
                 **_blob_params("s", version.schedule_blob),
                 "description": version.schedule_description,
                 "active": bool(version.schedule_active),
                 "created_at": ts(version.created_at, "created_at")})
            self._insert_runs(cur, [_with_version(r, new_id) for r in upcoming], now)
            return new_id, True

        return self._transact(write, write=True)

    def get_flow_version(self, version_id: str) -> FlowVersionInfo:
        def read(cur: sqlite3.Cursor | None) -> FlowVersionInfo:
            row = None if cur is None else cur.execute(
                f"SELECT {_VERSION_COLUMNS} {_VERSION_FROM} WHERE v.id = ?",
                (version_id,)).fetchone()
            if row is None:
                raise UnknownFlowError(f"no registered flow with id {version_id!r} "
                                       "(see `cairnflow flows ls`)")
            return _version_info(row)
        return self._read(read)

    def list_flow_versions(self, flow_name: str | None = None,
                           include_archived: bool = False) -> list[FlowVersionInfo]:
        def read(cur: sqlite3.Cursor | None) -> list[FlowVersionInfo]:
            if cur is None:
                return []
            where, params = [], []
            if flow_name is not None:
                where.append("f.name = ?")
                params.append(flow_name)
            if not include_archived:
                where.append("NOT v.archived")
            sql = (f"SELECT {_VERSION_COLUMNS} {_VERSION_FROM}"
                   + (" WHERE " + " AND ".join(where) if where else "")
                   + " ORDER BY f.name, v.version DESC")
            return [_version_info(r) for r in cur.execute(sql, params)]
        return self._read(read)

    def load_flow_version_blobs(self, version_id: str
                                ) -> tuple[SerializedResult | None, SerializedResult | None]:
        def read(cur: sqlite3.Cursor | None) -> tuple:
            row = None if cur is None else cur.execute(
                "SELECT flow_blob, flow_serializer, flow_python_version, "
                "flow_cloudpickle_version, schedule_blob, schedule_serializer, "
                "schedule_python_version, schedule_cloudpickle_version FROM flow_version "
                "WHERE id = ?", (version_id,)).fetchone()
            if row is None:
                raise UnknownFlowError(f"no registered flow with id {version_id!r}")
            return rows._blob(*row[:4]), rows._blob(*row[4:])
        return self._read(read)

    def set_schedule_active(self, version_id: str, active: bool) -> int:
        def write(cur: sqlite3.Cursor) -> int:
            cur.execute("UPDATE flow_version SET schedule_active = ? WHERE id = ?",
                        (bool(active), version_id))
            if not cur.rowcount:
                raise UnknownFlowError(f"no registered flow with id {version_id!r}")
            if active:
                return 0
            return self._drop_schedule_runs(cur, "r.flow_version_id = ?", (version_id,))
        return self._transact(write, write=True)

    def _drop_schedule_runs(self, cur: sqlite3.Cursor, where: str, params: tuple) -> int:
        """Delete the still-Scheduled runs that a schedule made, matching ``where``."""
        found = cur.execute(f"SELECT r.pk, r.id FROM flow_run r WHERE {where} AND "
                            "r.state = 'Scheduled' AND r.schedule_key IS NOT NULL"
                            f"{self._for_update}", params).fetchall()
        for pk, rid in found:
            delete_run_rows(cur, pk)
            self._runs.forget(rid)
        return len(found)

    # -- runs for agents -------------------------------------------------------------

    def create_flow_runs(self, runs: Sequence[NewFlowRun]) -> list[str]:
        now = ts(rows.utc_now())
        return self._transact(lambda cur: self._insert_runs(cur, runs, now), write=True)

    def _insert_runs(self, cur: sqlite3.Cursor, runs: Sequence[NewFlowRun],
                     now: str) -> list[str]:
        created = []
        archived: dict[str, bool] = {}
        for run in runs:
            if run.flow_version_id not in archived:
                row = cur.execute("SELECT archived FROM flow_version WHERE id = ?",
                                  (run.flow_version_id,)).fetchone()
                if row is None or row[0]:
                    raise UnknownFlowError(
                        f"no registered flow with id {run.flow_version_id!r}"
                        + (" (that version is archived: run its latest version)"
                           if row else ""))
                archived[run.flow_version_id] = False
            found = cur.execute(self._insert_run_sql, {
                "id": run.id, "message": run.message,
                "parameters": json.dumps(run.parameters, default=repr),
                **_blob_params("p", run.parameters_blob), "now": now,
                "labels": json.dumps(list(run.labels)),
                "scheduled_start": ts(run.scheduled_start, "scheduled_start"),
                "schedule_key": run.schedule_key, "version_id": run.flow_version_id,
            }).fetchone()
            if found is None:
                continue  # this schedule's run exists already
            append_flow_transition(cur, found[0], 0, "Scheduled", run.message, now)
            created.append(run.id)
        return created

    def claim_flow_runs(self, agent_id: str, labels: Sequence[str], limit: int,
                        now: datetime) -> list[FlowRunInfo]:
        due = ts(now, "now")
        stamp = ts(rows.utc_now())
        clock = rows.utc_now()

        def write(cur: sqlite3.Cursor) -> list[str]:
            gone = agent_gone_rule(cur, clock)
            claimed: list[str] = []
            candidates = cur.execute(
                "SELECT pk, id, state, labels, agent_id, attempt FROM flow_run "
                "WHERE (state = 'Scheduled' AND scheduled_start <= ?) OR state = 'Submitted' "
                "ORDER BY scheduled_start, pk", (due,)).fetchall()
            for pk, rid, state, run_labels, owner, attempt in candidates:
                if len(claimed) >= limit:
                    break
                if not labels_match(_json_list(run_labels), labels):
                    continue
                if state == "Submitted" and not gone(owner):
                    continue
                self._submit(cur, agent_id, (pk, rid, state, owner, attempt), stamp)
                claimed.append(rid)
            return claimed

        return self._claim_with(write, labels, due)

    def _claim_with(self, write: Any, labels: Sequence[str], due: str) -> list[FlowRunInfo]:
        """Run the claim ``write`` (which returns the claimed ids) once a read-only
        look found something claimable: an idle agent never takes a write lock."""
        if not self._claimable(labels, due):
            return []
        ids = self._transact(write, write=True)
        return [self.get_flow_run(rid) for rid in ids]  # type: ignore[attr-defined]

    def _submit(self, cur: sqlite3.Cursor, agent_id: str, run: tuple, stamp: str) -> None:
        """Claim one run for ``agent_id``: ``Submitted`` by it (``run`` is its pk, id,
        state, agent and attempt)."""
        pk, rid, state, owner, attempt = run
        note = (f"Submitted for execution by agent {agent_id}" if state == "Scheduled"
                else f"Claimed again by agent {agent_id}: agent {owner} is gone")
        cur.execute("UPDATE flow_run SET agent_id = ? WHERE pk = ?", (agent_id, pk))
        append_flow_transition(cur, pk, attempt, "Submitted", note, stamp)
        self._runs.forget(rid)

    def _claimable(self, labels: Sequence[str], due: str) -> bool:
        """A read-only look first: an idle agent never takes the write lock."""
        def read(cur: sqlite3.Cursor | None) -> bool:
            if cur is None:
                return False
            found = cur.execute(
                "SELECT labels, state FROM flow_run WHERE (state = 'Scheduled' AND "
                "scheduled_start <= ?) OR state = 'Submitted'", (due,)).fetchall()
            return any(labels_match(_json_list(lab), labels) for lab, _ in found)
        return self._read(read)

    def request_cancel(self, run_id: str) -> str:
        now = ts(rows.utc_now())

        def write(cur: sqlite3.Cursor) -> str:
            row = cur.execute("SELECT pk, state, attempt FROM flow_run WHERE id = ?"
                              f"{self._for_update}", (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(f"no run with id {run_id!r}")
            pk, state, attempt = row
            if state in states.QUEUED:
                append_flow_transition(cur, pk, attempt, "Cancelled",
                                       "Cancelled before it started", now)
                self._runs.forget(run_id)
                return "Cancelled"
            if state == "Running":
                cur.execute("UPDATE flow_run SET cancel_requested_at = ? WHERE pk = ?",
                            (now, pk))
            return state

        return self._transact(write, write=True)

    def request_resume(self, run_id: str, labels: Sequence[str], closing: Sequence[Transition],
                       now: datetime) -> None:
        due = ts(now, "now")
        stamp = ts(rows.utc_now())

        def write(cur: sqlite3.Cursor) -> None:
            found = cur.execute(f"SELECT pk FROM flow_run WHERE id = ?{self._for_update}",
                                (run_id,)).fetchone()
            info = rows.flow_run_info(cur, run_id)
            if info.state in states.QUEUED or info.state == "Running" \
                    or info.stored_state == "Success":
                raise RunStillAliveError(
                    f"run {run_id} is {info.state}: only a run that ended without success "
                    "can be resumed")
            pk = found[0]
            if closing:
                self._write_closing(cur, closing)
            append_flow_transition(cur, pk, info.attempt, "Scheduled",
                                   "Resume requested: waiting for an agent", stamp)
            cur.execute("UPDATE flow_run SET scheduled_start = ?, labels = ?, agent_id = NULL, "
                        "cancel_requested_at = NULL WHERE pk = ?",
                        (due, json.dumps(list(labels)), pk))
            self._runs.forget(run_id)

        self._transact(write, write=True)

    def _write_closing(self, cur: sqlite3.Cursor, closing: Sequence[Transition]) -> None:
        """Write the Crashed records that close a dead attempt, in this transaction."""
        from cairnflow.statestore.sqlite_batch import RunCaches, write_transitions

        write_transitions(cur, RunCaches(), closing, None)

    def list_cancel_requests(self, host: str) -> list[FlowRunInfo]:
        def read(cur: sqlite3.Cursor | None) -> list[FlowRunInfo]:
            if cur is None:
                return []
            now = rows.utc_now()
            return [rows._run_info(r, now) for r in cur.execute(
                f"SELECT {rows._RUN_INFO_COLUMNS} {_RUN_FROM} WHERE r.state = 'Running' AND "
                "r.cancel_requested_at IS NOT NULL AND r.host = ?", (host,))]
        return self._read(read)

    # -- agents ------------------------------------------------------------------------

    def record_agent(self, agent: AgentRecord) -> None:
        now = ts(rows.utc_now())
        self._transact(lambda cur: cur.execute(
            "INSERT INTO agent (id, name, labels, host, pid, started_at, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "last_seen = excluded.last_seen, labels = excluded.labels",
            (agent.id, agent.name, json.dumps(list(agent.labels)), agent.host, agent.pid,
             ts(agent.started_at, "started_at"), now)), write=True)

    def remove_agent(self, agent_id: str) -> None:
        self._transact(lambda cur: cur.execute("DELETE FROM agent WHERE id = ?", (agent_id,)),
                       write=True)

    def list_agents(self) -> list[AgentInfo]:
        def read(cur: sqlite3.Cursor | None) -> list[AgentInfo]:
            if cur is None:
                return []
            return [records.AgentInfo(id=a, name=n, labels=json.loads(lab), host=h, pid=p,
                              started_at=rows.from_ts(s), last_seen=rows.from_ts(seen))
                    for a, n, lab, h, p, s, seen in cur.execute(
                        "SELECT id, name, labels, host, pid, started_at, last_seen FROM agent "
                        "ORDER BY last_seen DESC")]
        return self._read(read)


def _with_version(run: NewFlowRun, version_id: str) -> NewFlowRun:
    import dataclasses

    return dataclasses.replace(run, flow_version_id=version_id)
