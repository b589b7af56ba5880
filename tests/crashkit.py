"""Crash-test kit: run flows in real subprocesses, SIGKILL them, and read back what
the store says happened.

A child process is ``python -c "import crashkit; crashkit.child_main()" MODE TARGET URL``
(MODE ``run`` with a flow file, or ``resume`` with a run id); it exits 0 when the
flow run ends in Success. With ``CRASHKIT_KILL_AT=when:method:n`` in its
environment it SIGKILLs itself just ``before`` or ``after`` the n-th call of a
``SQLiteStore`` method (``after`` record_transitions: that batch is committed;
``before``: it is not), which puts a kill exactly on a commit boundary; with
``pause:method:n`` it waits there until the test lets it go.

The checks (``history_problems``, ``execution_problems``, ``integrity``) encode
the durability promise: every history reads without gaps, no task whose Success
was committed runs again, no task runs without its Running committed first.

This module is imported by the children too, so it imports nothing heavy at
module level.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent

CHILD_CODE = "import crashkit; crashkit.child_main()"

# -- children -------------------------------------------------------------------------


def child_main() -> None:
    """The body of a child process: run or resume one flow run, exit 0 on Success."""
    mode, target, url = sys.argv[1:4]
    _arm(os.environ.get("CRASHKIT_KILL_AT"))
    if mode == "run":
        from cairnflow.runner.loading import load_flow_from_file

        state = load_flow_from_file(target).run(store=url)
    elif mode == "resume":
        from cairnflow.runner.api import resume_run

        state = resume_run(target, store=url)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.exit(0 if state is not None and state.is_successful() else 1)


def _arm(spec: str | None) -> None:
    """SIGKILL this process, or pause it, before/after the n-th call of a SQLiteStore
    method: ``before:METHOD:N``, ``after:METHOD:N``, or ``pause:METHOD:N`` (before the
    call: touch ``$CRASHKIT_PAUSED``, then wait until ``$CRASHKIT_RELEASE`` exists)."""
    if not spec:
        return
    when, method, nth = spec.split(":")
    from cairnflow.statestore.sqlite import SQLiteStore

    original = getattr(SQLiteStore, method)
    calls = 0

    def armed(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == int(nth):
            if when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            if when == "pause":
                _pause(Path(os.environ["CRASHKIT_PAUSED"]), Path(os.environ["CRASHKIT_RELEASE"]))
        value = original(self, *args, **kwargs)
        if when == "after" and calls == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return value

    setattr(SQLiteStore, method, armed)


def _pause(paused: Path, release: Path) -> None:
    paused.touch()
    deadline = time.monotonic() + 120
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.01)


@dataclass
class Child:
    """A child process with its output in files (a pipe nobody reads could block it)."""

    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float = 120.0) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap it, so its pid is really gone."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def err(self) -> str:
        return self.stderr.read_text()


def child_env(home: Path, **extra: str | None) -> dict[str, str]:
    """The environment of a child: its own CAIRNFLOW_HOME, this checkout importable."""
    env = dict(os.environ)
    env["CAIRNFLOW_HOME"] = str(home)
    env.pop("CAIRNFLOW_DB_URL", None)
    env.pop("CAIRNFLOW_DURABILITY", None)
    env.pop("CRASHKIT_KILL_AT", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR), str(REPO_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


_spawned = 0


def spawn(mode: str, target: str | Path, url: str, workdir: Path,
          env: dict[str, str]) -> Child:
    """Start a child that runs (``mode="run"``, a flow file) or resumes (a run id)."""
    global _spawned
    _spawned += 1
    out = workdir / f"child-{_spawned}.out"
    err = workdir / f"child-{_spawned}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", CHILD_CODE, mode, str(target), url],
                                cwd=workdir, env=env, stdout=stdout, stderr=stderr)
    return Child(proc, out, err)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# -- reading the store ----------------------------------------------------------------


def open_reader(url: str):
    from cairnflow.statestore import open_store

    return open_store(url, readonly=True)


def find_run_id(url: str) -> str | None:
    """The id of the only run in the store, or None while there is none."""
    store = open_reader(url)
    try:
        runs = store.list_runs()
    finally:
        store.close()
    assert len(runs) <= 1, f"expected at most one run, found {len(runs)}"
    return runs[0].id if runs else None


def integrity(db_path: Path) -> str:
    """``PRAGMA integrity_check`` through the stdlib driver: 'ok' when sound."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


# -- what a valid history is --------------------------------------------------------------

START = None

TASK_NEXT: dict[str | None, set[str]] = {
    START: {"Pending"},  # from when the run knew of it (a mapped child: its map expanded)
    "Running": {"Success", "Failed", "TimedOut", "Retrying", "Looped", "Crashed", "Skipped",
                "Cancelled", "Paused"},
    "Retrying": {"Running", "Failed", "TriggerFailed", "Crashed", "Cancelled"},
    "Looped": {"Running", "Crashed", "Cancelled", "Failed"},
    "Crashed": {"Running"},  # the next attempt runs it again
    "Failed": {"Running", "TriggerFailed", "Skipped"},  # a later attempt
    "TimedOut": {"Running", "TriggerFailed", "Skipped"},
    "TriggerFailed": {"Running", "TriggerFailed", "Skipped"},
    "Paused": {"Running", "TriggerFailed", "Skipped"},
    "Pending": {"Running", "Mapped", "TriggerFailed", "Skipped", "Cached", "Paused",
                "Failed"},  # Failed: a map that could not expand
    "Cancelled": {"Running"},
    "Success": set(), "Cached": set(), "Skipped": set(), "Mapped": set(),
}
"""Which state may follow which in a task run's history (START: the first one, always
``Pending``).
A Running followed by a Running is a gap: the first attempt's end is missing."""

FLOW_NEXT: dict[str | None, set[str]] = {
    START: {"Running"},
    "Running": {"Success", "Failed", "Crashed", "Paused", "Cancelled"},
    "Crashed": {"Running"},
    "Failed": {"Running"},
    "Paused": {"Running"},
    "Cancelled": {"Running"},
    "Success": set(),
}
"""The same for the flow run's own history."""

ENDS_AN_ATTEMPT = {"Crashed", "Failed", "TimedOut", "TriggerFailed", "Paused", "Cancelled"}


KNOWN_FLOW_GAP_BUG = False
"""The engine bug the boundary tests in test_crash.py pin (strict xfail while True).

A SIGKILL between two commits that should be one leaves the flow run's history
with a gap: after ``record_flow_run`` of a new run but before its Running
(the history then starts with Crashed); after a resume recorded the crash but
before its own run record, or after its run record but before its Running (the
next resume records a second Crashed). Set this to False once the engine
commits those steps together; the random kill tests then stop tolerating it.
"""


def history_problems(run_id: str, store: Any, tolerate_known: bool = False,
                     tolerated: list[str] | None = None) -> list[str]:
    """Every way the run's recorded histories break the rules above, in words.

    Per task run (and for the flow run, key ``(None, None)``): the first state
    and each step are allowed; attempts never decrease; a Crashed closes the
    attempt of the Running it follows; a Running after an attempt ended belongs
    to a later attempt. For the flow run also: its Running transitions are
    attempts 1, 2, ..., N with N the run's recorded attempt (an attempt that
    started without its Running recorded is a gap).

    With ``tolerate_known`` (and ``KNOWN_FLOW_GAP_BUG``), the flow-run gaps of
    that bug are appended to ``tolerated`` instead of being reported.
    """
    by_key: dict[tuple[str | None, int | None], list[Any]] = defaultdict(list)
    for t in store.get_history(run_id):
        by_key[(t.task_slug, t.map_index)].append(t)
    problems = []
    tolerate = tolerate_known and KNOWN_FLOW_GAP_BUG
    for key, transitions in by_key.items():
        allowed = FLOW_NEXT if key[0] is None else TASK_NEXT
        what = "flow run" if key[0] is None else f"task run {key}"
        seq = [(t.state, t.attempt) for t in transitions]
        previous, prev_attempt = START, 0
        for state, attempt in seq:
            step = f"{what}: {previous or 'start'} -> {state} in {seq}"
            if state not in allowed.get(previous, set()):
                if tolerate and key[0] is None and state == "Crashed" and \
                        previous in (START, "Crashed"):
                    tolerated.append(step)  # type: ignore[union-attr]
                else:
                    problems.append(step)
            if attempt < prev_attempt:
                problems.append(f"{what}: attempt went back {prev_attempt} -> {attempt} in {seq}")
            if previous == "Running" and state == "Crashed" and attempt != prev_attempt:
                problems.append(f"{what}: Crashed recorded for attempt {attempt}, the Running "
                                f"was attempt {prev_attempt}, in {seq}")
            if previous in ENDS_AN_ATTEMPT and state == "Running" and attempt <= prev_attempt:
                problems.append(f"{what}: Running again in attempt {attempt} after "
                                f"{previous} in the same attempt, in {seq}")
            previous, prev_attempt = state, attempt
    flow = by_key.get((None, None), [])
    runs = [t.attempt for t in flow if t.state == "Running"]
    recorded = store.get_flow_run(run_id).attempt
    if runs != list(range(1, recorded + 1)):
        gap = (f"flow run: Running recorded for attempts {runs}, but the run started "
               f"{recorded} attempts; flow history {[(t.state, t.attempt) for t in flow]}")
        if tolerate and runs == sorted(set(runs)) and runs and runs[-1] == recorded:
            tolerated.append(gap)  # type: ignore[union-attr]
        else:
            problems.append(gap)
    return problems


# -- executions ---------------------------------------------------------------------------


def read_executions(path: Path) -> list[tuple[str, int | None, int]]:
    """Lines ``slug map_index attempt`` that the flow's tasks appended, as tuples.

    A line cut short by a kill has no newline and is ignored; it never reached
    the file whole, so the task's code had barely started.
    """
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete
    found = []
    for line in lines:
        slug, index, attempt = line.split(" ")
        found.append((slug, None if index == "None" else int(index), int(attempt)))
    return found


def execution_problems(run_id: str, store: Any,
                       executions: list[tuple[str, int | None, int]]) -> list[str]:
    """Executions the store's history says should not have happened, in words.

    * a task run executed in an attempt after the one whose Success was committed
      (committed work was repeated);
    * a task run executed in an attempt with no Running of its own recorded for
      that attempt (the code ran before its Running was committed);
    * a task run executed twice in one attempt (these flows have no retries);
    * a Success recorded for an attempt in which the task did not run (for tasks
      that write the log at all).
    """
    success_attempt: dict[tuple[str, int | None], int] = {}
    running_attempts: dict[tuple[str, int | None], set[int]] = defaultdict(set)
    for t in store.get_history(run_id):
        if t.task_slug is None:
            continue
        key = (t.task_slug, t.map_index)
        if t.state == "Running":
            running_attempts[key].add(t.attempt)
        if t.state in ("Success", "Cached") and key not in success_attempt:
            success_attempt[key] = t.attempt
    problems = []
    seen: dict[tuple[str, int | None, int], int] = defaultdict(int)
    for slug, index, attempt in executions:
        key = (slug, index)
        seen[(slug, index, attempt)] += 1
        done = success_attempt.get(key)
        if done is not None and attempt > done:
            problems.append(f"{key} ran again in attempt {attempt} after its Success was "
                            f"committed in attempt {done}")
        if attempt not in running_attempts[key]:
            problems.append(f"{key} ran in attempt {attempt} without a Running recorded for "
                            f"that attempt (recorded: {sorted(running_attempts[key])})")
    problems += [f"{(s, i)} ran {n} times in attempt {a}"
                 for (s, i, a), n in seen.items() if n > 1]
    logging = {slug for slug, _, _ in executions}  # tasks whose code writes the log
    problems += [f"{key} has a Success recorded in attempt {attempt} but did not run in it"
                 for key, attempt in success_attempt.items()
                 if key[0] in logging and (key[0], key[1], attempt) not in seen]
    return problems


# -- flows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LayeredFlow:
    """A flow mixing a chain, a fan-out/fan-in, two mapped levels and glue.

    Each task appends ``slug map_index attempt`` to ``$CRASHKIT_EXECUTIONS`` (fsynced)
    before a tiny random sleep, and returns a deterministic value.
    ``$CRASHKIT_EXECUTOR=threads`` runs it with a thread pool instead of in order;
    ``$CRASHKIT_BARRIER=directory:count`` holds each process's first task until
    ``count`` processes have reached theirs (so they certainly run at the same time).
    """

    name: str
    chain: int
    fan: int
    items: int
    glue: int
    big: int = 0  # tasks returning a result over 1 MiB (stored in a file), each consumed
    max_sleep: float = 0.004

    @property
    def tasks(self) -> int:
        # chain, root + leaves + the List of leaves + join, numbers + 2 mapped + reduce,
        # glue, and per big result: the task, its consumer, and a glue task
        return self.chain + (self.fan + 3) + 4 + self.glue + 3 * self.big

    @property
    def task_runs(self) -> int:
        return self.tasks + 2 * self.items

    def source(self) -> str:
        return textwrap.dedent(f'''\
            import os
            import random
            import time

            from cairnflow import Flow, context, task
            from cairnflow.executors import LocalDaskExecutor

            EXECUTIONS = os.environ["CRASHKIT_EXECUTIONS"]
            MAX_SLEEP = {self.max_sleep!r}
            BARRIER = os.environ.get("CRASHKIT_BARRIER")  # "directory:count"
            waited = []


            def barrier():
                """Wait (once per process) until `count` processes are running tasks."""
                if BARRIER and not waited:
                    waited.append(True)
                    directory, count = BARRIER.rsplit(":", 1)
                    open(os.path.join(directory, str(os.getpid())), "w").close()
                    deadline = time.monotonic() + 120
                    while len(os.listdir(directory)) < int(count):
                        if time.monotonic() > deadline:
                            raise TimeoutError("the other processes never came")
                        time.sleep(0.005)


            def executed():
                barrier()
                ctx = context
                with open(EXECUTIONS, "a") as f:
                    f.write(f"{{ctx.task_slug}} {{ctx.map_index}} {{ctx.flow_run_attempt}}\\n")
                    f.flush()
                    os.fsync(f.fileno())
                if MAX_SLEEP:
                    time.sleep(random.uniform(0, MAX_SLEEP))


            @task
            def link(previous, i):
                executed()
                return (previous * 31 + i) % 1_000_003


            @task
            def root():
                executed()
                return 7


            @task
            def leaf(base, i):
                executed()
                return base * i + i * i


            @task
            def join(values):
                executed()
                return sum(values)


            @task
            def numbers(n):
                executed()
                return list(range(n))


            @task
            def double(x):
                executed()
                return 2 * x + 1


            @task
            def bump(y):
                executed()
                return y + 3


            @task
            def reduce(values):
                executed()
                return sum(values)


            @task
            def mix(a, b):
                executed()
                return (a * 17 + b) % 1_000_003


            @task
            def blob(i):
                executed()
                return bytes([i % 256]) * ((1 << 20) + 4096)


            @task
            def size(data):
                executed()
                return len(data) + data[0]


            threads = os.environ.get("CRASHKIT_EXECUTOR") == "threads"
            executor = LocalDaskExecutor(scheduler="threads", num_workers=3) if threads else None

            with Flow({self.name!r}, executor=executor) as flow:
                value = 0
                chain = []
                for i in range({self.chain}):
                    value = link(value, i)
                    chain.append(value)
                base = root()
                leaves = [leaf(base, i) for i in range({self.fan})]
                fanned = join(leaves)
                reduced = reduce(bump.map(double.map(numbers({self.items}))))
                glue = mix(mix(chain[-1], fanned), reduced)
                for i in range({self.big}):
                    glue = mix(glue, size(blob(i)))
                for i in range({self.glue - 2}):
                    glue = mix(glue, leaves[i % {self.fan}] if i % 2 else chain[i % {self.chain}])
            ''')

    def write(self, path: Path) -> Path:
        path.write_text(self.source())
        return path


def final_results(url: str, run_id: str) -> dict[tuple[str, int | None], Any]:
    """Every checkpointed result of the run, deserialized, by (slug, map index)."""
    from cairnflow.statestore import serialize

    store = open_reader(url)
    try:
        found = {}
        for info in store.get_task_runs(run_id):
            if info.has_result:
                blob = store.load_result(run_id, info.task_slug, info.map_index)
                found[(info.task_slug, info.map_index)] = serialize.load(blob, "a result")
        return found
    finally:
        store.close()


# -- the kill loop --------------------------------------------------------------------


@dataclass
class KillLoop:
    """What ``kill_until_done`` did: the run, how often it killed, and how."""

    run_id: str
    kills: int
    children: int
    events: list[str]


@dataclass
class _Pace:
    """What the loop has learnt about its children, to time the next kill."""

    startup: float = 0.5  # seconds from spawn until a child has recorded its attempt
    per_execution: float = 0.01  # seconds per task execution once it has


def kill_until_done(flow_file: Path, url: str, workdir: Path, env: dict[str, str],
                    executions: Path, total_runs: int, min_kills: int, rng: Any,
                    max_children: int = 1000, blind_share: float = 0.2,
                    max_delay: float = 0.3) -> KillLoop:
    """Run the flow in a child, SIGKILL it at a random moment, resume it in a new
    child, and so on until a child finishes on its own (it must exit 0).

    Each child gets a random executor (in order, or a thread pool). A share
    (``blind_share``) of kills land blind during start-up: loading the flow,
    recording the previous attempt's crash, the run record. The others wait
    until the child has recorded its attempt, then a random 0..``max_delay`` s.
    While fewer than ``min_kills`` kills happened, that delay is drawn within
    the time the child needs for its share of the remaining work (learnt as the
    loop goes), and a child that executed its share anyway is killed after a few
    ms of jitter: so at least ``min_kills`` kills happen before the run finishes.
    """
    run_id: str | None = None
    kills = children = 0
    pace = _Pace()
    events: list[str] = []
    store = None
    try:
        while True:
            children += 1
            assert children <= max_children, f"no finish after {max_children} children: {events}"
            before = store.get_flow_run(run_id).attempt if run_id else 0
            remaining = total_runs if run_id is None else total_runs - _finished(store, run_id)
            executor = rng.choice(["local", "threads"])
            offset = executions.stat().st_size if executions.exists() else 0
            started = time.monotonic()
            child = spawn("run" if run_id is None else "resume", flow_file if run_id is None
                          else run_id, url, workdir, {**env, "CRASHKIT_EXECUTOR": executor})
            how = _drive(child, rng, url, run_id, before, started, pace, executions, offset,
                         remaining, min_kills - kills, blind_share, max_delay)
            code = child.poll()
            if code is not None:
                if code != 0:
                    raise AssertionError(f"child exited {code} on its own ({how}):\n"
                                         f"{child.output()}")
                events.append(f"{executor} child finished on its own ({how})")
                break
            child.kill()
            kills += 1
            events.append(f"killed {executor} child ({how})")
            if run_id is None:
                run_id = find_run_id(url)
                if run_id is not None:
                    store = open_reader(url)
        if run_id is None:
            run_id = find_run_id(url)
        assert run_id is not None
        return KillLoop(run_id, kills, children, events)
    finally:
        if store is not None:
            store.close()


def _finished(store: Any, run_id: str) -> int:
    return sum(1 for t in store.get_task_runs(run_id) if t.state in ("Success", "Mapped"))


def _drive(child: Child, rng: Any, url: str, run_id: str | None, before: int, started: float,
           pace: _Pace, executions: Path, offset: int, remaining: int, kills_needed: int,
           blind_share: float, max_delay: float) -> str:
    """Wait for the moment to kill ``child`` (or for it to exit); say which moment.

    While kills are still needed, the child may execute at most ``cap`` tasks
    (its share of the remaining work, with slack for the kills after it): once
    it has, it is killed after a few ms of jitter, whatever the planned moment.
    """
    cap = max(1, remaining // (kills_needed + 2)) if kills_needed > 0 else None

    def capped() -> bool:
        return cap is not None and _lines_since(executions, offset) >= cap

    def wait(seconds: float, since: float) -> str | None:
        while time.monotonic() - since < seconds and child.poll() is None:
            if capped():
                jitter = rng.uniform(0.0, 0.003)
                time.sleep(jitter)
                return f"{cap} executions + {jitter * 1000:.1f}ms"
            time.sleep(0.001)
        return None

    if rng.random() < blind_share:
        delay = rng.uniform(0.0, pace.startup)
        return f"blind, {wait(delay, started) or f'{delay:.3f}s'} after spawn"
    reader = open_reader(url) if run_id is not None else None
    try:
        def recorded() -> bool:
            if child.poll() is not None or capped():
                return True
            if reader is None:
                return find_run_id(url) is not None
            return reader.get_flow_run(run_id).attempt > before
        wait_until(recorded, timeout=120, what="the child to record its attempt")
    finally:
        if reader is not None:
            reader.close()
    since = time.monotonic()
    took = since - started
    pace.startup = 0.7 * pace.startup + 0.3 * took
    window = max_delay if cap is None else min(max_delay, 1.5 * cap * pace.per_execution)
    delay = rng.uniform(0.0, window)
    how = wait(delay, since) or f"{delay * 1000:.1f}ms"
    lines = _lines_since(executions, offset)
    if lines >= 3 and child.poll() is None:
        pace.per_execution = 0.7 * pace.per_execution + 0.3 * (time.monotonic() - since) / lines
    return f"attempt recorded after {took:.3f}s, then {how}"


def _lines_since(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


# -- processes --------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children, their children, and so on (Linux ``/proc``)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[ppid].append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
