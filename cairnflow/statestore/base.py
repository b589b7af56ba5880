"""The checkpoint store interface: what the runner writes and what the CLI reads.

The runner reports every state transition of a flow run and of its task runs
through a ``StateStore``. The store sees plain records (names, slugs, state
names, bytes), never Task objects or Python results: serialization happens in
``cairnflow.statestore.serialize``, before a record reaches the store.

Contract, for every implementation (``tests/test_store_contract.py`` checks it):

* Each ``record_*`` call is one atomic unit: when it returns, everything it was
  given is stored (durably, for a persistent store); if it raises, nothing of it
  is. A write that fails raises ``StoreError``; it is never swallowed.
* History is append-only. ``record_transitions`` appends each transition in the
  order given and updates the current state of its task run (or of the flow run,
  for a transition whose ``task_slug`` is None).
* A task run is keyed by (flow run id, task slug, map index). ``map_index`` is
  None for a task that is not a mapped child.
* A task run's ``attempts`` counts its ``Running`` transitions: 2 after one retry.
* Times are timezone-aware UTC; naive datetimes are refused with ``ValueError``.
* Reads return plain records (dataclasses; NamedTuples for history and logs), newest
  first where a list of runs is returned.
* All methods are safe to call from several threads of one process.
* Fencing: only the run's current attempt may write to it. Every write of an
  attempt (``record_transitions``, ``record_logs``, ``heartbeat``) checks, in
  the same transaction as the write, that the run's stored attempt is still
  the writer's; if another process has started a later attempt, the write
  raises ``FencedOutError`` and stores nothing. (``record_flow_run`` is the
  claim itself: it may close the previous attempt's history.)
* Liveness: a Running run belongs to the process named by its ``pid``,
  ``process_start`` and ``host``. On this host (``host_name()``) the owner is
  alive while a process with that pid and that start time exists, whatever
  its heartbeat says (a stopped process is alive; a reused pid is not the
  owner). On another host only the heartbeat can tell (``is_owner_alive``).

Example:
    >>> from cairnflow.statestore.memory import MemoryStore
    >>> store = MemoryStore()
    >>> store.list_runs()
    []
"""

from __future__ import annotations

import importlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from cairnflow.statestore.serialize import SerializedResult
from cairnflow._lazy import lazy_module

pendulum = lazy_module("pendulum")  # imported on first use: see cairnflow._lazy

if TYPE_CHECKING:  # at run time, module __getattr__ below
    from cairnflow.statestore.read_records import FlowInfo, FlowRunInfo, ResumeData, TaskRunInfo

__all__ = [
    "StateStore", "FlowRunRecord", "Transition", "LogEntry", "TaskRunInfo", "FlowRunInfo",
    "FlowInfo", "TaskKey", "task_label", "split_task_label", "HEARTBEAT_SECONDS",
    "is_owner_alive", "require_aware", "host_name", "process_start_time", "stale_after_seconds",
    "LazyResults", "ResumeData",
    "FlowVersionRecord", "FlowVersionInfo", "NewFlowRun", "AgentRecord", "AgentInfo",
    "labels_match",
]

# Records a flow run never makes live in modules of their own, imported on first use
# (making a dataclass costs about a millisecond): what a store reads back
# (read_records; the package statestore names them too) and registration's and
# agents' records (orch_records).
READ_RECORDS = ("TaskRunInfo", "FlowRunInfo", "FlowInfo", "ResumeData")
_LAZY_RECORDS = {
    **dict.fromkeys(READ_RECORDS, "cairnflow.statestore.read_records"),
    **dict.fromkeys(("FlowVersionRecord", "FlowVersionInfo", "NewFlowRun", "AgentRecord",
                     "AgentInfo"), "cairnflow.statestore.orch_records"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY_RECORDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads are plain
    return value


HEARTBEAT_SECONDS = 5.0
"""How often a live run refreshes its heartbeat."""

STALE_AFTER_SECONDS = 6 * HEARTBEAT_SECONDS
"""A run on another host whose heartbeat is older than this is taken as crashed
(``CAIRNFLOW_STALE_SECONDS`` overrides it, for tests that simulate two hosts)."""

TaskKey = tuple[str, "int | None"]
"""(task slug, map index) — a task run's identity within its flow run."""


def task_label(slug: str, map_index: int | None) -> str:
    """How a task run is named wherever it is shown: ``slug``, or ``slug[3]`` for a
    mapped child. ``split_task_label`` reads it back."""
    return slug if map_index is None else f"{slug}[{map_index}]"


def split_task_label(label: str) -> TaskKey:
    """``"fetch-1[7]"`` -> ``("fetch-1", 7)``; ``"fetch-1"`` -> ``("fetch-1", None)``.

    Only a trailing ``[digits]`` is a map index: ``Constant[list]-1`` is a slug.
    """
    match = _LABEL.fullmatch(label)
    if match is None:
        return label, None
    return match.group(1), int(match.group(2))


_LABEL = re.compile(r"(.+)\[(\d+)\]")


class FlowRunRecord(NamedTuple):
    """What the runner records when a flow run starts or resumes.

    Attributes:
        id: the run's uuid, the same across attempts.
        flow_name: the flow's name.
        flow_hash: a hash of the flow's structure (slugs and edges).
        parameters: the parameters as JSON-safe values, for people to read.
        parameters_blob: the parameters serialized, for resume to use as they were.
        source_file: the file the flow was loaded from, if known.
        source_variable: the flow's variable name in that file, if known.
        flow_blob: the flow serialized, the fallback when the source is gone.
        attempt: 1 for the first run, +1 for each resume.
        pid: the process running this attempt.
        host: that process's host name (``host_name()``).
        started_at: when this attempt started.
        process_start: that process's start time (``process_start_time``), which
            tells it from a later process given the same pid; None where the
            platform cannot say.

    Records of what happened (this, ``Transition``, ``LogEntry``) are NamedTuples,
    immutable as the dataclasses a store reads back are, and made in a run's
    process for a fraction of a dataclass's cost.
    """

    id: str
    flow_name: str
    flow_hash: str
    parameters: dict[str, Any]
    parameters_blob: SerializedResult | None
    source_file: str | None
    source_variable: str | None
    flow_blob: SerializedResult | None
    attempt: int
    pid: int
    host: str
    started_at: datetime
    process_start: int | None = None


class Transition(NamedTuple):
    """One state change of a flow run (``task_slug`` None) or of a task run.

    ``result`` is set only with a checkpointed ``Success`` (or ``Cached``): the
    result and its state are stored in the same transaction. (A NamedTuple, not
    a dataclass: the engine makes two per task, and this is the cheapest record.)
    """

    flow_run_id: str
    attempt: int
    task_slug: str | None
    task_name: str | None
    map_index: int | None
    state: str
    message: str | None
    timestamp: datetime
    result: SerializedResult | None = None


class LogEntry(NamedTuple):
    """One log record emitted through the run logger.

    ``attempt`` is the attempt that wrote it: a store refuses the record
    (``FencedOutError``) once the run has moved on to a later attempt. None
    (a record written outside any attempt) is not checked.
    """

    flow_run_id: str
    task_slug: str | None
    map_index: int | None
    timestamp: datetime
    level: int
    logger: str
    message: str
    attempt: int | None = None


def labels_match(run_labels: Sequence[str], agent_labels: Sequence[str]) -> bool:
    """Prefect 1's rule: an agent may run a run only if it has all the run's labels."""
    return set(run_labels) <= set(agent_labels)


class LazyResults(Mapping):
    """A run's results, read from the store on first use, each one at most once.

    Args:
        rows: returns, once, what ``read`` needs of each result, by key (one query).
        read: turns one of those into the result (reading a result file if it is one).
    """

    def __init__(self, rows: Callable[[], dict[TaskKey, Any]],
                 read: Callable[[TaskKey, Any], SerializedResult]):
        self._load_rows, self._read = rows, read
        self._rows: dict[TaskKey, Any] | None = None
        self._done: dict[TaskKey, SerializedResult] = {}

    def _all(self) -> dict[TaskKey, Any]:
        if self._rows is None:
            self._rows = self._load_rows()
        return self._rows

    def __getitem__(self, key: TaskKey) -> SerializedResult:
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = self._read(key, self._all()[key])
        return found

    def __iter__(self) -> Iterator[TaskKey]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class StateStore(ABC):
    """Where every transition of every run is recorded. See the module docstring."""

    # -- writes -----------------------------------------------------------------

    @abstractmethod
    def record_flow_run(self, run: FlowRunRecord,
                        transitions: Sequence[Transition] = ()) -> None:
        """Start attempt ``run.attempt`` of a flow run, atomically with ``transitions``.

        Attempt 1 creates the run. A later attempt claims an existing run, and
        is refused with ``RunStillAliveError`` (nothing written) unless the
        stored attempt is ``run.attempt - 1`` and no live process owns the run:
        of two processes resuming one run, exactly one wins. ``transitions``
        (the dead attempt's ``Crashed`` records, the new attempt's ``Running``)
        are appended in the same transaction, so a kill at any instant leaves
        either all of it or none. Also records the flow by name and sets the
        run's heartbeat, pid, process start time and host to this attempt's.
        """

    @abstractmethod
    def record_transitions(self, transitions: Sequence[Transition],
                           logs: Sequence[LogEntry] = ()) -> None:
        """Append ``transitions`` in order, atomically, with their results and ``logs``.

        Fenced: if a run of the batch is now at another attempt than a
        transition's ``attempt``, nothing of the batch is stored and
        ``FencedOutError`` is raised. ``logs`` are stored in the same
        transaction, after the transitions (a log record never lands before
        the transitions it follows).
        """

    @abstractmethod
    def record_logs(self, entries: Sequence[LogEntry]) -> None:
        """Store log records with their run and task run (fenced by ``entry.attempt``)."""

    @abstractmethod
    def heartbeat(self, flow_run_id: str, attempt: int | None = None) -> None:
        """Refresh the run's ``updated_at``: its process is still alive.

        With ``attempt``, fenced: ``FencedOutError`` (nothing written) if the
        run is now at another attempt.
        """

    @abstractmethod
    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete runs with all they own (history, results, logs); return how many."""

    @abstractmethod
    def prune(self, older_than: datetime) -> int:
        """Delete finished runs that started before ``older_than``; return how many."""

    # -- reads ------------------------------------------------------------------

    @abstractmethod
    def get_flow_run(self, run_id: str) -> FlowRunInfo:
        """The run with this exact id; ``UnknownRunError`` if there is none."""

    @abstractmethod
    def list_runs(self, flow_name: str | None = None, state: str | None = None,
                  limit: int | None = None, *, since: datetime | None = None,
                  before: str | None = None) -> list[FlowRunInfo]:
        """Runs, newest first, optionally of one flow or in one (reported) state.

        ``since``: only runs created at or after it. ``before``: only the runs
        that come after the run with this id in that order (keyset pagination);
        an unknown id gives no runs.
        """

    def latest_run_id(self) -> str | None:
        """The id of the run created most recently (what ``last`` names), by the order
        runs were created, never by a clock reading; None in an empty store.

        This default goes by ``created_at``; stores override it with their order of
        creation.
        """
        latest = self.list_runs(limit=1)
        return latest[0].id if latest else None

    @abstractmethod
    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` run ids starting with ``prefix``."""

    @abstractmethod
    def get_task_runs(self, run_id: str) -> list[TaskRunInfo]:
        """The run's task runs, in the order they were first recorded."""

    @abstractmethod
    def get_history(self, run_id: str, task_slug: str | None = None) -> list[Transition]:
        """Every transition of the run (or of one task's runs), oldest first.

        The returned transitions carry no result.
        """

    @abstractmethod
    def load_result(self, run_id: str, task_slug: str,
                    map_index: int | None = None) -> SerializedResult:
        """The checkpointed result; ``ResultNotFoundError`` if there is none."""

    @abstractmethod
    def load_resume_data(self, run_id: str) -> ResumeData:
        """The run record, its task runs and all its results, for resume."""

    @abstractmethod
    def get_logs(self, run_id: str, task_slug: str | None = None) -> list[LogEntry]:
        """The run's log records (or one task's), oldest first."""

    @abstractmethod
    def list_flows(self) -> list[FlowInfo]:
        """Every flow with runs in the store, by name."""

    # -- orchestration: registered flows, runs for agents, agents --------------------
    # Not abstract: a store without them still records and reads runs; the agent,
    # register and the server need them (the contract suite checks them where present).

    def _no_orchestration(self) -> Exception:
        from cairnflow.exceptions import StoreError

        return StoreError(f"{type(self).__name__} does not support registered flows and "
                          "agents yet: use a SQLite store for them")


    def record_flow_version(self, version: FlowVersionRecord,
                            upcoming: Sequence[NewFlowRun] = ()) -> tuple[str, bool]:
        """Register a new version of a flow; return ``(version id, created)``.

        Atomically: if ``version.idempotency_key`` is not None and equals the
        latest version's key, nothing is written and ``(latest id, False)`` is
        returned. Otherwise the version is stored as the flow's latest
        (numbered 1, 2, ... per flow name), every older version is archived, the
        ``Scheduled`` runs made by their schedules (those with a
        ``schedule_key``) are deleted, and ``upcoming`` (runs of the new
        version, see ``create_flow_runs``; their ``flow_version_id`` is
        replaced by the new version's) are created.
        """
        raise self._no_orchestration()

    def get_flow_version(self, version_id: str) -> FlowVersionInfo:
        """The version with this id; ``UnknownFlowError`` if there is none."""
        raise self._no_orchestration()

    def list_flow_versions(self, flow_name: str | None = None,
                           include_archived: bool = False) -> list[FlowVersionInfo]:
        """Registered versions by flow name, newest version first within a flow."""
        raise self._no_orchestration()

    def load_flow_version_blobs(self, version_id: str
                                ) -> tuple[SerializedResult | None, SerializedResult | None]:
        """The version's pickled flow and pickled schedule (for agents, never the server)."""
        raise self._no_orchestration()

    def set_schedule_active(self, version_id: str, active: bool) -> int:
        """Switch a version's schedule on or off; return how many runs were removed.

        Switching off deletes, in the same transaction, the version's runs that a
        schedule made (a ``schedule_key``) and that are still ``Scheduled``.
        ``UnknownFlowError`` for an unknown version.
        """
        raise self._no_orchestration()

    def create_flow_runs(self, runs: Sequence[NewFlowRun]) -> list[str]:
        """Create runs of registered versions, each ``Scheduled``; return the ids created.

        Each run gets the version's flow name, hash and source, attempt 0 and
        one ``Scheduled`` transition. A run whose ``schedule_key`` exists
        already is skipped (not an error): however many processes create a
        schedule's runs, each is created once. ``UnknownFlowError`` for an
        unknown or archived version (nothing written).
        """
        raise self._no_orchestration()

    def claim_flow_runs(self, agent_id: str, labels: Sequence[str], limit: int,
                        now: datetime) -> list[FlowRunInfo]:
        """Claim up to ``limit`` due runs for an agent, atomically; return them.

        A run is claimable when it is ``Scheduled`` with ``scheduled_start <=
        now`` and ``labels_match(run labels, labels)``, or when it is
        ``Submitted`` by an agent that is gone (``is_owner_alive`` of its pid,
        host and last heartbeat is false). A claimed run is ``Submitted`` by
        ``agent_id`` (one transition, attempt unchanged). Of several agents
        claiming at once, each run goes to exactly one. Oldest due first.
        """
        raise self._no_orchestration()

    def request_cancel(self, run_id: str) -> str:
        """Cancel a run; return its state afterwards (``Cancelled`` or the live state).

        Atomically: a ``Scheduled`` or ``Submitted`` run becomes ``Cancelled``
        (one transition); a ``Running`` run is marked ``cancel_requested`` (its
        process, or an agent, stops it and records ``Cancelled``); a finished
        run is left as it is. ``UnknownRunError`` for an unknown run.
        """
        raise self._no_orchestration()

    def request_resume(self, run_id: str, labels: Sequence[str], closing: Sequence[Transition],
                       now: datetime) -> None:
        """Queue a finished, unsuccessful run for an agent to resume.

        Atomically: ``closing`` (the Crashed records of a dead attempt) is
        appended, then one ``Scheduled`` transition; the run is due at ``now``
        with ``labels``, and its cancel request is cleared. Refused with
        ``RunStillAliveError`` (nothing written) if the run is live, queued
        already, or succeeded.
        """
        raise self._no_orchestration()

    def record_agent(self, agent: AgentRecord) -> None:
        """Create the agent or refresh its heartbeat (``last_seen`` = now)."""
        raise self._no_orchestration()

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent that stopped (a missing one is not an error)."""
        raise self._no_orchestration()

    def list_agents(self) -> list[AgentInfo]:
        """Every agent, most recently seen first."""
        raise self._no_orchestration()

    def list_cancel_requests(self, host: str) -> list[FlowRunInfo]:
        """Runs stored ``Running`` on ``host`` whose cancel was requested."""
        raise self._no_orchestration()

    def data_version(self) -> int | None:
        """A number that changes when another connection commits; None if unknown.

        Long-lived readers (agents, the server) use it to do nothing until
        something changed. A store that cannot tell returns None: poll instead.
        """
        return None

    def close(self) -> None:
        """Release connections and files. The store is unusable afterwards."""

    # -- shared helpers ---------------------------------------------------------

    def resolve_run_id(self, ref: str) -> str:
        """A whole run id, a unique prefix of one, or ``last`` -> the run id.

        Raises ``UnknownRunError`` or ``AmbiguousRunError`` with a message for people.
        """
        from cairnflow.statestore.queries import resolve_run_id

        return resolve_run_id(self, ref)


def check_claim(run_id: str, attempt: int, stored_attempt: int, stored_state: str,
                pid: int, host: str, updated_at: datetime,
                process_start: int | None = None) -> None:
    """Refuse to start ``attempt`` of a run over what is stored (see ``record_flow_run``)."""
    from cairnflow.exceptions import RunStillAliveError

    if stored_state == "Running" and is_owner_alive(pid, host, updated_at,
                                                    process_start=process_start):
        raise RunStillAliveError(
            f"run {run_id} is still running (pid {pid} on {host}); wait for it to end, "
            "or stop that process, before resuming")
    if stored_attempt != attempt - 1:
        raise RunStillAliveError(
            f"run {run_id} was resumed by another process (it is at attempt "
            f"{stored_attempt}); see `cairnflow runs show {run_id}`")


def require_aware(when: datetime, what: str = "timestamp") -> datetime:
    """Return ``when`` if it is timezone-aware, else raise ``ValueError``."""
    if when.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {when!r}")
    return when


def fenced_out_message(run_id: str, attempt: int, current: int | None) -> str:
    """What a store says to an attempt that lost its claim (``FencedOutError``)."""
    if current is None:
        return f"run {run_id} was deleted while attempt {attempt} was running it"
    if current > attempt:
        return (f"run {run_id} was taken over by attempt {current} (another process resumed "
                f"it); this attempt ({attempt}) stops and records nothing more")
    return f"run {run_id} is at attempt {current}, not {attempt}: nothing was recorded"


def host_name() -> str:
    """This host's name as the store records it: ``$CAIRNFLOW_HOSTNAME``, else the
    system's host name. (The override lets tests simulate several hosts.)"""
    return os.environ.get("CAIRNFLOW_HOSTNAME") or _system_host_name()


def _system_host_name() -> str:
    # gethostname() is uname's nodename on POSIX; importing socket for it cost 5 ms
    # of every run's process
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def stale_after_seconds() -> float:
    """How old a heartbeat from another host may be before its run is taken as crashed."""
    value = os.environ.get("CAIRNFLOW_STALE_SECONDS")
    if value:
        try:
            return float(value)
        except ValueError:
            pass
    return STALE_AFTER_SECONDS


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux: field 22 of
    ``/proc/PID/stat``); None if there is no such live process (a zombie is dead)
    or the platform cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat[stat.rfind(b")") + 2:].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    try:
        return int(fields[19])  # field 22 counted from the one after the name (field 3)
    except (IndexError, ValueError):
        return None


_HAS_PROC = os.path.isdir("/proc/self")


def is_owner_alive(pid: int, host: str, updated_at: datetime,
                   now: datetime | None = None, process_start: int | None = None) -> bool:
    """Whether the process that owns a Running run is still alive.

    On this host: a process with that pid exists and, when the run recorded
    its start time, started at that time (so a stopped process is alive, and
    a later process given the same pid is not the owner); the heartbeat is not
    looked at, so a clock that jumps or a process stopped for minutes changes
    nothing. Only a run recorded without a start time (an older cairnflow, a
    platform without ``/proc``) also needs a fresh heartbeat. On another host
    only the heartbeat can tell.
    """
    if host != host_name():
        now = now or pendulum.now("UTC")
        return (now - updated_at).total_seconds() < stale_after_seconds()
    if process_start is not None and _HAS_PROC:
        return process_start_time(pid) == process_start
    now = now or pendulum.now("UTC")
    fresh = (now - updated_at).total_seconds() < stale_after_seconds()
    return fresh and _pid_exists(pid)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
