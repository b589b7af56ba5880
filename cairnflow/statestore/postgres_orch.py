"""The PostgreSQL store's orchestration methods: the SQLite store's, with row locks.

``PostgresStore`` inherits ``OrchestrationSQL`` (its SQL is written for both
stores) and this overrides what PostgreSQL does its own way:

* **Row locks instead of a database lock.** A transaction that changes a run
  or a flow first selects it ``FOR UPDATE``, so two writers of one run take
  turns (a cancel waits for a claim, a new version's clean-up for an agent).
* **The claim** (``claim_flow_runs``): the due runs that this agent may take
  are read without locks, then up to ``limit`` of them are locked with
  ``FOR UPDATE SKIP LOCKED`` and re-checked (PostgreSQL re-reads a row it
  waited for: a run that another agent claimed meanwhile is no longer due).
  Rows another agent holds are skipped, not waited for, so agents claiming at
  once split the queue instead of queueing behind each other. Hence an empty
  claim does not mean an empty queue: rows may have been locked by peers,
  which either claim them (a commit, which ``data_version`` shows) or roll back
  (they are claimable on the next look; the agent looks at least once a second).
* **The change check** (``data_version``): PostgreSQL has no ``PRAGMA
  data_version``; the server's WAL insert position serves instead. Every commit
  that wrote anything moves it, and reading it is one cheap query. It also
  moves for writes to other databases of the same server, which costs an idle
  agent a look more, never a missed change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cairnflow.statestore import sqlite_rows as rows
from cairnflow.statestore.base import FlowRunInfo, Transition, labels_match
from cairnflow.statestore.sqlite_batch import RunCaches, plan_transitions, ts
from cairnflow.statestore.sqlite_orch import (
    _INSERT_RUN, OrchestrationSQL, _json_list, agent_gone_rule,
)

__all__ = ["OrchestrationPG"]

# PostgreSQL types a SELECT list's bare parameters as text: the blob and the
# NULL-able parameters need their columns' types said.
_INSERT_RUN_PG = _INSERT_RUN.replace(":p_data,", "CAST(:p_data AS bytea),").replace(
    "'Scheduled', :message,", "'Scheduled', CAST(:message AS varchar),").replace(
    ":p_ser,", "CAST(:p_ser AS varchar),").replace(":p_py,", "CAST(:p_py AS varchar),").replace(
    ":p_cp,", "CAST(:p_cp AS varchar),").replace(
    ":scheduled_start, :schedule_key", "CAST(:scheduled_start AS varchar), "
    "CAST(:schedule_key AS varchar)")

_DUE = "((state = 'Scheduled' AND scheduled_start <= ?) OR state = 'Submitted')"

_CANDIDATES = (f"SELECT pk, state, labels, agent_id FROM flow_run WHERE {_DUE} "
               "ORDER BY scheduled_start, pk")

# Re-checked under the lock: PostgreSQL evaluates the WHERE again on a row's newest
# version, so a run claimed (or cancelled) by another transaction meanwhile drops out.
_LOCK_DUE = (f"SELECT pk, id, state, agent_id, attempt FROM flow_run WHERE pk = ANY(?) "
             f"AND {_DUE} ORDER BY scheduled_start, pk LIMIT ? FOR UPDATE SKIP LOCKED")


class OrchestrationPG(OrchestrationSQL):
    """``StateStore``'s orchestration methods over PostgreSQL (mixed into ``PostgresStore``)."""

    _for_update = " FOR UPDATE"
    _insert_run_sql = _INSERT_RUN_PG

    def claim_flow_runs(self, agent_id: str, labels: Sequence[str], limit: int,
                        now: datetime) -> list[FlowRunInfo]:
        due = ts(now, "now")
        stamp = ts(rows.utc_now())
        clock = rows.utc_now()
        if limit <= 0:
            return []

        def write(cur: Any) -> list[str]:
            gone = agent_gone_rule(cur, clock)
            wanted = [pk for pk, state, run_labels, owner in cur.execute(_CANDIDATES, (due,))
                      if labels_match(_json_list(run_labels), labels)
                      and (state == "Scheduled" or gone(owner))]
            if not wanted:
                return []
            claimed: list[str] = []
            for run in cur.execute(_LOCK_DUE, (wanted, due, limit)).fetchall():
                _, rid, state, owner, _ = run
                if state == "Submitted" and not gone(owner):
                    continue  # claimed by a live agent since it was read
                self._submit(cur, agent_id, run, stamp)
                claimed.append(rid)
            return claimed

        return self._claim_with(write, labels, due)

    def _write_closing(self, cur: Any, closing: Sequence[Transition]) -> None:
        from cairnflow.statestore.postgres_batch import execute_plan

        plan = plan_transitions(cur, RunCaches(), closing, None)
        execute_plan(cur.cursor.connection, plan, closing)

    def data_version(self) -> int | None:
        """The server's WAL insert position: it moves whenever anything is committed."""
        if getattr(self, "_closed", False):
            return None

        def read(cur: Any) -> int | None:
            if cur is None:
                return None
            found = cur.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
                                ).fetchone()
            return int(found[0])

        try:
            return self._transact(read, write=False, doing="read")
        except Exception:  # noqa: BLE001 - e.g. a standby in recovery: poll instead
            return None
