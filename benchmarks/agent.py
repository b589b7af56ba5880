"""One local agent's speed: trivial runs per minute, and the time from creating a
run (what ``POST /api/flows/{id}/runs`` does) to its ``Running``.

A real agent process (``cairnflow agent local start``) on a fresh SQLite store
runs a registered one-task flow.

    python benchmarks/agent.py [--runs 200] [--latency-samples 10] [--fork]

Target: creating a run to its Running well under 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cairnflow.runner.loading import load_flow_from_file  # noqa: E402
from cairnflow.statestore import actions, open_store  # noqa: E402

TRIVIAL = textwrap.dedent("""
    from cairnflow import Flow, task

    @task
    def one():
        return 1

    with Flow("trivial") as flow:
        one()
""")

__all__ = ["setup", "start_agent", "throughput", "create_to_running"]


def setup(directory: Path) -> tuple[str, str]:
    """A store with the trivial flow registered: (db URL, flow id)."""
    source = directory / "trivial.py"
    source.write_text(TRIVIAL)
    db = f"sqlite:///{directory / 'cairnflow.db'}"
    flow_id = load_flow_from_file(str(source)).register(store=db, no_url=True)
    return db, flow_id


def start_agent(db: str, directory: Path, fork: bool = False,
                limit: int = 10) -> subprocess.Popen:
    """A real agent process on ``db``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRNFLOW_HOME": str(directory / "home")}
    env["CAIRNFLOW_AGENT_FORK"] = "1" if fork else "0"
    return subprocess.Popen([sys.executable, "-m", "cairnflow.cli", "agent", "local", "start",
                             "--db", db, "--limit", str(limit)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(store, run_ids, done) -> None:
    while True:
        if all(done(store.get_flow_run(r).state) for r in run_ids):
            return
        time.sleep(0.02)


def throughput(db: str, flow_id: str, runs: int) -> float:
    """Trivial runs per minute: create ``runs`` at once, time until all succeeded."""
    store = open_store(db)
    try:
        started = time.perf_counter()
        ids = [actions.create_flow_run(store, flow_id) for _ in range(runs)]
        _wait(store, ids, lambda s: s in ("Success", "Failed", "Crashed"))
        return runs / (time.perf_counter() - started) * 60
    finally:
        store.close()


def create_to_running(db: str, flow_id: str, samples: int) -> list[float]:
    """Seconds from creating a run to its stored Running, one run at a time."""
    store = open_store(db)
    times = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            run_id = actions.create_flow_run(store, flow_id)
            _wait(store, [run_id], lambda s: s not in ("Scheduled", "Submitted"))
            times.append(time.perf_counter() - started)
            _wait(store, [run_id], lambda s: s in ("Success", "Failed", "Crashed"))
        return times
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=10)
    parser.add_argument("--fork", action="store_true",
                        help="fork each run's process from the agent (CAIRNFLOW_AGENT_FORK=1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db, flow_id = setup(directory)
        agent = start_agent(db, directory, fork=args.fork)
        try:
            time.sleep(1.0)  # the agent is up
            latency = create_to_running(db, flow_id, args.latency_samples)
            per_minute = throughput(db, flow_id, args.runs)
        finally:
            agent.terminate()
            agent.wait()
    mode = "fork" if args.fork else "spawn"
    print(f"{'measure':<40} {'value':>12}")
    print(f"{'deploy mode':<40} {mode:>12}")
    print(f"{'create -> Running, median (s)':<40} {statistics.median(latency):>12.3f}")
    print(f"{'create -> Running, max (s)':<40} {max(latency):>12.3f}")
    print(f"{'trivial runs per minute (one agent)':<40} {per_minute:>12.0f}")


if __name__ == "__main__":
    main()
