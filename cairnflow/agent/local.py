"""The local agent: a small loop of claim, deploy, reap and heartbeat over the store.

* **claim**: due ``Scheduled`` runs whose labels are all among the agent's
  (Prefect 1's rule) are claimed atomically (``Submitted``), at most ``limit``
  running at once; a ``Submitted`` run whose agent died is claimed again.
* **deploy**: each claimed run runs in its own process (``python -m
  cairnflow.agent.deploy RUN_ID``, the CLI's resume path, so the same engine records it), in
  its own process group, its output kept in a file under
  ``$CAIRNFLOW_HOME/agent/``.
* **reap**: a process that exited without closing its run leaves the run
  ``Crashed`` (``Cancelled`` if a cancel was asked), with its exit code and
  the tail of its output in the run's logs.
* **cancel**: a ``Running`` run whose cancel was asked gets SIGINT (the engine
  records ``Cancelled`` for it and its running task runs), then, after
  ``grace`` seconds, its process group is killed and the agent records it.
* **heartbeat**: the agent's row in the store (``/agents`` shows it).

Idle, it costs almost nothing: on SQLite it reads ``PRAGMA data_version``
(which changes when another connection commits) every ``poll`` seconds and
looks for due runs when it changed, or once a second for runs that came due.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum

from cairnflow.agent.deploy import EXIT_REFUSED
from cairnflow.agent.scheduling import top_up_schedules
from cairnflow.registration import UPCOMING_RUNS, host_name
from cairnflow.statestore import actions
from cairnflow.statestore.base import AgentRecord, FlowRunInfo, LogEntry, StateStore

__all__ = ["LocalAgent", "OUTPUT_TAIL_LINES"]

log = logging.getLogger("cairnflow.agent")

OUTPUT_TAIL_LINES = 40
"""How many last lines of a dead process's output go into its run's logs."""


@dataclass
class _Child:
    run_id: str
    attempt: int
    process: Any  # subprocess.Popen or _Forked: .pid and .poll()
    output: Path
    cancel_sent: float | None = None
    killed: bool = False


@dataclass
class _Foreign:
    """A run on this host not started by this agent, whose cancel was asked."""

    pid: int
    sent: float = field(default_factory=time.monotonic)
    killed: bool = False


class LocalAgent:
    """Claims due runs from the store and runs each in its own process.

    Args:
        db: the store's URL (default: the default store); passed to each run's process.
        labels: the agent's labels; a run is taken only if it has all of the run's.
        limit: at most this many runs at once.
        name: a name for people (default ``agent@<host>``).
        poll: seconds between looks at the store's change counter.
        heartbeat: seconds between heartbeats.
        grace: seconds a cancelled run's process has to stop before it is killed.
        store: an open store to use instead of opening ``db``.
        fork: start each run's process by forking (cairnflow already imported:
            a trivial run starts in milliseconds, not the ~0.5 s or more of a new
            interpreter), from a fork server that never opens a
            store (see ``_fork_context``). Off by default (``CAIRNFLOW_AGENT_FORK=1``
            turns it on). Either way the run gets its own process and process
            group, and runs the CLI's resume path.

    Example:
        >>> agent = LocalAgent(db="sqlite://", labels=["etl"])  # doctest: +SKIP
        >>> agent.run_forever()  # doctest: +SKIP
    """

    def __init__(self, db: str | None = None, labels: list[str] | tuple = (), limit: int = 10,
                 name: str | None = None, poll: float = 0.1, heartbeat: float = 5.0,
                 grace: float = 5.0, store: StateStore | None = None,
                 fork: bool | None = None):
        from cairnflow.statestore import cairnflow_home, open_store

        self.db = db
        if fork is None:
            fork = hasattr(os, "fork") and os.environ.get("CAIRNFLOW_AGENT_FORK") == "1"
        self.fork = fork
        self.labels = sorted(set(labels))
        self.limit = limit
        self.id = str(uuid.uuid4())
        self.host = host_name()
        self.name = name or f"agent@{self.host}"
        self.poll, self.heartbeat_every, self.grace = poll, heartbeat, grace
        self.store = store or open_store(db)
        self.children: dict[str, _Child] = {}
        self.foreign: dict[str, _Foreign] = {}
        self.output_dir = cairnflow_home() / "agent"
        self.started_at = pendulum.now("UTC")
        self.stopping = threading.Event()
        self._next_heartbeat = 0.0
        self._next_look = 0.0
        self._next_schedules = 0.0
        self._seen_version: int | None = None

    # -- the loop ---------------------------------------------------------------------

    def run_forever(self) -> None:
        """Loop until ``stop()`` or Ctrl-C; runs already started keep running."""
        _console_logging()
        log.info("Agent %s started with labels %s (at most %d runs at once); waiting for "
                 "flow runs...", self.name, self.labels, self.limit)
        try:
            while not self.stopping.is_set():
                self.step()
                self.stopping.wait(self.poll)
        except KeyboardInterrupt:
            log.info("Agent %s stopping (runs it started keep running).", self.name)
        finally:
            self.close()

    def step(self) -> None:
        """One turn of the loop: reap, cancel, heartbeat, schedules, claim and deploy."""
        now = time.monotonic()
        self.reap()
        self.cancel_requested()
        if now >= self._next_heartbeat:
            self.beat()
            self._next_heartbeat = now + self.heartbeat_every
        if now >= self._next_schedules:
            self.top_up_schedules()
            self._next_schedules = now + 30.0
        version = self.store.data_version()
        if version is None or version != self._seen_version or now >= self._next_look:
            self._seen_version = version
            self._next_look = now + 1.0
            for run in self.claim():
                self.deploy(run)

    def stop(self) -> None:
        """Ask ``run_forever`` to return after the current turn."""
        self.stopping.set()

    def close(self) -> None:
        """Forget this agent in the store and close the store."""
        try:
            self.store.remove_agent(self.id)
        finally:
            self.store.close()

    # -- the steps ------------------------------------------------------------------------

    def beat(self) -> None:
        """Record (or refresh) this agent in the store."""
        self.store.record_agent(AgentRecord(self.id, self.name, self.labels, self.host,
                                            os.getpid(), self.started_at))

    def top_up_schedules(self) -> None:
        """Create the upcoming runs of active schedules (each once, whoever does it)."""
        try:
            top_up_schedules(self.store, UPCOMING_RUNS)
        except Exception as exc:  # noqa: BLE001 - a bad schedule must not stop the agent
            log.warning("Could not create scheduled runs: %s", exc)

    def claim(self) -> list[FlowRunInfo]:
        """Claim as many due runs as there is room for."""
        room = self.limit - len(self.children)
        if room <= 0:
            return []
        runs = self.store.claim_flow_runs(self.id, self.labels, room, pendulum.now("UTC"))
        if runs:
            log.info("Found %d flow run(s) to submit for execution.", len(runs))
        return runs

    def deploy(self, run: FlowRunInfo) -> None:
        """Start a process that runs ``run``, its output kept in a file."""
        log.info("Deploying flow run %s", run.id)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        output = self.output_dir / f"{run.id}-{run.attempt + 1}.log"
        command = [sys.executable, "-m", "cairnflow.agent.deploy", run.id]
        if self.db:
            command += ["--db", self.db]
        if self.fork:
            process: Any = _fork_run(run.id, self.db, output)
        else:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with open(output, "wb") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env,
                                           start_new_session=True)
        self.children[run.id] = _Child(run.id, run.attempt, process, output)

    def reap(self) -> None:
        """Close the runs of processes that exited without closing them."""
        for run_id, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[run_id]
            if code != EXIT_REFUSED:
                self._close_if_open(child, code)

    def _close_if_open(self, child: _Child, code: int) -> None:
        info = self.store.get_flow_run(child.run_id)
        ours = info.attempt in (child.attempt, child.attempt + 1)
        if not ours or info.stored_state not in ("Running", "Submitted"):
            return  # the run recorded its own end (or another attempt owns it)
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        cancelled = child.cancel_sent is not None or info.cancel_requested
        state = "Cancelled" if cancelled else "Crashed"
        message = (f"Cancelled: its process (pid {child.process.pid}) was stopped"
                   if cancelled else
                   f"The process running this flow run (pid {child.process.pid}) {how}")
        tail = _tail(child.output, OUTPUT_TAIL_LINES)
        self.store.record_logs([LogEntry(
            child.run_id, None, None, pendulum.now("UTC"), logging.ERROR if not cancelled
            else logging.WARNING, "cairnflow.agent",
            f"{message}. Last lines of its output ({child.output}):\n{tail}")])
        actions.close_attempt(self.store, child.run_id, state, message)
        log.info("Flow run %s: %s; recorded %s", child.run_id, message, state)

    def cancel_requested(self) -> None:
        """Stop the runs on this host whose cancel was asked: SIGINT, then a kill."""
        for info in self.store.list_cancel_requests(self.host):
            child = self.children.get(info.id)
            if child is not None:
                self._stop_child(child)
            elif info.agent_id in (None, self.id) or info.agent_id not in self._live_agents():
                self._stop_foreign(info)

    def _stop_child(self, child: _Child) -> None:
        now = time.monotonic()
        if child.cancel_sent is None:
            child.cancel_sent = now
            log.info("Cancelling flow run %s (pid %d)", child.run_id, child.process.pid)
            _signal_group(child.process.pid, signal.SIGINT)
        elif not child.killed and now - child.cancel_sent > self.grace:
            child.killed = True
            log.info("Flow run %s did not stop within %g s: killing it", child.run_id,
                     self.grace)
            _signal_group(child.process.pid, signal.SIGKILL)

    def _stop_foreign(self, info: FlowRunInfo) -> None:
        known = self.foreign.get(info.id)
        if known is None:
            self.foreign[info.id] = _Foreign(info.pid)
            _signal_pid(info.pid, signal.SIGINT)
        elif time.monotonic() - known.sent > self.grace:
            if not known.killed:
                known.killed = True
                _signal_pid(info.pid, signal.SIGKILL)
            else:
                actions.close_attempt(self.store, info.id, "Cancelled",
                                      f"Cancelled: its process (pid {info.pid}) was stopped")
                del self.foreign[info.id]

    def _live_agents(self) -> set[str]:
        from cairnflow.statestore.queries import agent_is_live

        return {a.id for a in self.store.list_agents() if agent_is_live(a)}


class _Forked:
    """A run process forked by the fork server, with ``subprocess.Popen``'s ``pid``
    and ``poll()``."""

    def __init__(self, process: Any):
        self._process = process
        self.pid: int = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode


_fork_server: Any = None


def _fork_context() -> Any:
    """The fork server's context, started on first use with cairnflow imported.

    Run processes are forked from this server, never from the agent: a process
    forked from one that has the store open inherits SQLite's in-process record
    of that connection's file locks without holding them, so other processes
    judge it gone and may delete the WAL file it is still committing to: its
    runs' records were lost and their tasks run again (seen under a SIGKILL of
    the agent). The server is a fresh interpreter that never opens a store.
    """
    global _fork_server
    if _fork_server is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["cairnflow.agent.deploy", "cairnflow.runner.api"])
        _fork_server = context
    return _fork_server


def _fork_run(run_id: str, db: str | None, output: Path) -> _Forked:
    """Fork a process that runs ``run_id`` (in its own session), output to ``output``."""
    import multiprocessing.process

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    process = _fork_context().Process(target=_run_forked, args=(run_id, db, str(output)),
                                      name=f"cairnflow-run-{run_id}")
    process.start()
    # A run outlives its agent: multiprocessing must not join or stop it at the
    # agent's exit, as it does with the children it knows of.
    multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
    return _Forked(process)


def _run_forked(run_id: str, db: str | None, output: str) -> None:
    """In the forked process: its own session, its output to ``output``, then the run."""
    code = 1
    try:
        os.setsid()
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from cairnflow.agent.deploy import execute_run

        code = execute_run(run_id, db)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report it in the run's output, then leave
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # each run's process leads its own group (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a file (at most 64 KiB read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            data = f.read()
    except OSError as exc:
        return f"(its output could not be read: {exc})"
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _console_logging() -> None:
    """The agent's own lines on stderr, as Prefect 1's agent printed them."""
    if any(getattr(h, "_cairnflow_agent", False) for h in log.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s - agent | %(message)s"))
    handler._cairnflow_agent = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
