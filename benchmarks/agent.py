"""One local agent's speed: trivial runs per minute, and the time from creating a
run (what ``POST /api/flows/{id}/runs`` does) to its ``Running``.

A real agent process (``cairnflow agent local start``) on a fresh SQLite store
(or, with ``--pg``, a fresh schema on the PostgreSQL server of
``CAIRNFLOW_BENCH_PG_URL`` / ``CAIRNFLOW_TEST_PG_URL``) runs a registered one-task
flow. Also printed: the idle agent's CPU use (it reads the store's change check,
``data_version``, every 0.1 s and looks for due runs once a second).

    python benchmarks/agent.py [--runs 200] [--latency-samples 10] [--fork] [--pg]

Target: creating a run to its Running well under 2 s; an idle agent near zero CPU.
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


def setup(directory: Path, db: str | None = None) -> tuple[str, str]:
    """A store (``db``, else a SQLite file) with the trivial flow registered:
    (db URL, flow id)."""
    source = directory / "trivial.py"
    source.write_text(TRIVIAL)
    db = db or f"sqlite:///{directory / 'cairnflow.db'}"
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


def idle_cpu(agent: subprocess.Popen, seconds: float) -> float:
    """The agent process's CPU use (percent of one core) over ``seconds`` of idling."""
    def cpu() -> float:
        fields = Path(f"/proc/{agent.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before, started = cpu(), time.perf_counter()
    time.sleep(seconds)
    return (cpu() - before) / (time.perf_counter() - started) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=10)
    parser.add_argument("--fork", action="store_true",
                        help="fork each run's process from the agent (CAIRNFLOW_AGENT_FORK=1)")
    parser.add_argument("--pg", action="store_true",
                        help="on PostgreSQL (CAIRNFLOW_BENCH_PG_URL or CAIRNFLOW_TEST_PG_URL)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    from contextlib import nullcontext

    sys.path.insert(0, str(REPO / "benchmarks"))
    from store import _pg_schema, pg_server_url

    if args.pg and not pg_server_url():
        raise SystemExit("set CAIRNFLOW_BENCH_PG_URL to a PostgreSQL server's URL")
    with tempfile.TemporaryDirectory() as tmp, (_pg_schema() if args.pg else nullcontext()
                                                ) as schema:
        directory = Path(tmp)
        db, flow_id = setup(directory, schema[0] if schema else None)
        agent = start_agent(db, directory, fork=args.fork)
        try:
            time.sleep(2.0)  # the agent is up
            idle = idle_cpu(agent, args.idle_seconds)
            latency = create_to_running(db, flow_id, args.latency_samples)
            per_minute = throughput(db, flow_id, args.runs)
        finally:
            agent.terminate()
            agent.wait()
    mode = "fork" if args.fork else "spawn"
    print(f"{'measure':<40} {'value':>12}")
    print(f"{'store':<40} {'PostgreSQL' if args.pg else 'SQLite':>12}")
    print(f"{'deploy mode':<40} {mode:>12}")
    print(f"{'idle agent CPU (% of one core)':<40} {idle:>12.2f}")
    print(f"{'create -> Running, median (s)':<40} {statistics.median(latency):>12.3f}")
    print(f"{'create -> Running, max (s)':<40} {max(latency):>12.3f}")
    print(f"{'trivial runs per minute (one agent)':<40} {per_minute:>12.0f}")


if __name__ == "__main__":
    main()
