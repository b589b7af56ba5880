"""Whole-process timings of the CLI's read commands on a large store.

Builds a store with 10,000 runs, one of them with 10,000 mapped task runs and
one with 10,000 distinct (unmapped) task runs, writing records directly
through the store API, then times ``cairnflow runs ls`` and ``cairnflow runs
show`` as users run them: a new process each time, median of 5.

    python benchmarks/cli.py [--runs 10000] [--tasks 10000] [--repeat 5] [--keep DIR]

Targets: ``runs ls`` < 0.5 s, ``runs show`` < 1 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import pendulum

from cairnflow.statestore.base import FlowRunRecord, Transition
from cairnflow.statestore.serialize import dump
from cairnflow.statestore.sqlite import SQLiteStore

T0 = pendulum.datetime(2024, 5, 1, tz="UTC")
HOST = socket.gethostname()
BATCH = 2000


def _record(run_id: str, flow: str, at: pendulum.DateTime) -> FlowRunRecord:
    return FlowRunRecord(
        id=run_id, flow_name=flow, flow_hash="bench", parameters={"day": at.to_date_string()},
        parameters_blob=None, source_file=None, source_variable=None, flow_blob=None,
        attempt=1, pid=os.getpid(), host=HOST, started_at=at)


def _flow(run_id: str, state: str, at: pendulum.DateTime, message: str) -> Transition:
    return Transition(run_id, 1, None, None, None, state, message, at)


def build(path: str, runs: int, tasks: int) -> tuple[str, str]:
    """Fill the store; return the ids of the mapped run and of the wide run."""
    store = SQLiteStore(path)
    try:
        batch: list[Transition] = []
        for i in range(runs - 2):
            run_id = f"{i:08x}-0000-4000-8000-{i:012x}"
            at = T0 + timedelta(minutes=i)
            store.record_flow_run(_record(run_id, f"flow-{i % 20}", at))
            batch += [_flow(run_id, "Running", at, "Running flow."),
                      _flow(run_id, "Success" if i % 7 else "Failed", at + timedelta(seconds=42),
                            "All reference tasks succeeded.")]
            if len(batch) >= BATCH:
                store.record_transitions(batch)
                batch = []
        store.record_transitions(batch)
        mapped = _task_run(store, "aaaaaaaa-0000-4000-8000-000000000001", runs, tasks,
                           mapped=True)
        wide = _task_run(store, "bbbbbbbb-0000-4000-8000-000000000002", runs + 1, tasks,
                         mapped=False)
    finally:
        store.close()
    return mapped, wide


def _task_run(store: SQLiteStore, run_id: str, minute: int, tasks: int, mapped: bool) -> str:
    at = T0 + timedelta(minutes=minute)
    store.record_flow_run(_record(run_id, "big", at))
    batch = [_flow(run_id, "Running", at, "Running flow.")]
    if mapped:
        batch.append(Transition(run_id, 1, "work-1", "work", None, "Mapped",
                                f"Mapped {tasks} task runs.", at))
    result = dump(list(range(10)))
    for i in range(tasks):
        slug, index = ("work-1", i) if mapped else (f"work-{i + 1}", None)
        start = at + timedelta(milliseconds=i)
        state = "Failed" if i % 1000 == 999 else "Success"
        batch += [Transition(run_id, 1, slug, "work", index, "Running", "Starting task run.",
                             start),
                  Transition(run_id, 1, slug, "work", index, state,
                             "Task run succeeded." if state == "Success"
                             else "Error during execution of task: ValueError('bad row')",
                             start + timedelta(milliseconds=3),
                             result if state == "Success" else None)]
        if len(batch) >= BATCH:
            store.record_transitions(batch)
            batch = []
    batch.append(_flow(run_id, "Failed", at + timedelta(seconds=30), "Some reference tasks "
                                                                       "failed."))
    store.record_transitions(batch)
    return run_id


def timed(args: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of a whole process.

    CPU time is shown too because wall time on a busy machine says more about
    the machine than about the command.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    opts = parser.parse_args()

    directory = opts.keep or tempfile.mkdtemp(prefix="cairnflow-bench-")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "cairnflow.db")
    if os.path.exists(path):
        os.remove(path)
    started = time.perf_counter()
    mapped, wide = build(path, opts.runs, opts.tasks)
    print(f"built {opts.runs:,} runs and 2 runs of {opts.tasks:,} task runs in "
          f"{time.perf_counter() - started:.1f} s ({os.path.getsize(path) / 1e6:.1f} MB)")

    # Bytecode cached in the temporary directory, as an installed package has its .pyc
    # files (PYTHONDONTWRITEBYTECODE would make every process compile cairnflow).
    env = {**os.environ, "CAIRNFLOW_DB_URL": f"sqlite:///{path}",
           "PYTHONPYCACHEPREFIX": os.path.join(directory, "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cli = [sys.executable, "-m", "cairnflow.cli"]
    cases = [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"], None),
        ("cairnflow --version", [*cli, "--version"], None),
        ("runs ls", [*cli, "runs", "ls"], 0.5),
        ("runs ls --json", [*cli, "runs", "ls", "--json"], 0.5),
        ("runs ls --limit 0 --json (all)", [*cli, "runs", "ls", "--limit", "0", "--json"], None),
        ("runs show (10k mapped children)", [*cli, "runs", "show", mapped[:8]], 1.0),
        ("runs show --all (10k mapped)", [*cli, "runs", "show", mapped[:8], "--all"], 1.0),
        ("runs show --json (10k mapped)", [*cli, "runs", "show", mapped[:8], "--json"], 1.0),
        ("runs show (10k unmapped tasks)", [*cli, "runs", "show", wide[:8]], 1.0),
        ("runs show --json (10k unmapped)", [*cli, "runs", "show", wide[:8], "--json"], 1.0),
    ]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; median of "
          f"{opts.repeat}\n")
    print(f"{'command':<36} {'wall':>8} {'cpu':>8}  target (wall)")
    failed = False
    for label, args, target in cases:
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, cpu = timed(args, env, opts.repeat)
        verdict = ""
        if target is not None:
            ok = wall < target
            failed |= not ok
            verdict = f"< {target:.1f} s {'ok' if ok else 'MISSED'}"
        print(f"{label:<36} {wall:>6.3f} s {cpu:>6.3f} s  {verdict}")
    if not opts.keep:
        shutil.rmtree(directory, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
