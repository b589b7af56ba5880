"""The web server on a large store, and one agent, as a user meets them.

Builds a store with 10,000 runs (one a minute over the last week) plus one run
of 10,000 task runs (records written through the store API, as
``benchmarks/cli.py`` does), starts ``cairnflow server start`` and ``cairnflow
agent local start`` as subprocesses, and prints:

* server time (median over ``--repeat`` requests, over HTTP on 127.0.0.1) of the
  dashboard, the runs list, the big run's page and its JSON;
* click to Running: from ``POST /api/flows/{id}/runs`` to the run's ``Running``
  (median of 5);
* one agent's throughput of trivial runs, in runs per minute.

    python benchmarks/server.py [--runs 10000] [--tasks 10000] [--repeat 10] [--burst 40]

Targets: each page under 200 ms; click to Running under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pendulum

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import cli as cli_bench  # noqa: E402  (benchmarks/cli.py: the same store builder)

TRIVIAL_FLOW = """
from cairnflow import Flow, task

@task
def one():
    return 1

with Flow("trivial") as flow:
    one()
"""


def build(path: str, runs: int, tasks: int) -> str:
    """The store: ``runs`` runs a minute apart, ending now, and a run of ``tasks`` tasks."""
    cli_bench.T0 = pendulum.now("UTC") - timedelta(minutes=runs + 2)
    _mapped, wide = cli_bench.build(path, runs, tasks)
    return wide


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cairnflow.cli", *args], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit("timed out")


def median_ms(url: str, repeat: int) -> tuple[float, int]:
    get(url)  # warm
    times = []
    size = 0
    for _ in range(repeat):
        t = time.perf_counter()
        size = len(get(url))
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, size


def state_of(base: str, run_id: str) -> str:
    return json.loads(get(f"{base}/api/runs/{run_id}"))["state"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--burst", type=int, default=40, help="runs for the throughput row")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cairnflow-server-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        db = str(work / "cairnflow.db")
        url = f"sqlite:///{db}"
        t = time.perf_counter()
        big = build(db, args.runs, args.tasks)
        print(f"store: {args.runs:,} runs + 1 run of {args.tasks:,} task runs "
              f"(built in {time.perf_counter() - t:.0f} s)")
        env = dict(os.environ, PYTHONPATH=str(REPO), CAIRNFLOW_HOME=str(work / "home"))
        flow_file = work / "trivial.py"
        flow_file.write_text(textwrap.dedent(TRIVIAL_FLOW))
        subprocess.run([sys.executable, "-m", "cairnflow.cli", "register", str(flow_file),
                        "--label", "bench", "--db", url], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        procs.append(start(["server", "start", "--port", str(port), "--db", url], env,
                           work / "server.log"))
        wait_for(lambda: _up(base))
        rows = []
        for name, path in [("dashboard  /", "/"), ("runs list  /runs", "/runs"),
                           ("run page   /flow-run/<big>", f"/flow-run/{big}"),
                           ("run JSON   /api/runs/<big>", f"/api/runs/{big}")]:
            ms, size = median_ms(base + path, args.repeat)
            rows.append((name, f"{ms:.0f} ms", f"{size / 1024:.0f} KiB", "< 200 ms",
                         "ok" if ms < 200 else "OVER"))

        flow_id = json.loads(get(f"{base}/api/flows"))[0]["id"]
        procs.append(start(["agent", "local", "start", "--label", "bench", "--db", url], env,
                           work / "agent.log"))
        wait_for(lambda: json.loads(get(f"{base}/api/agents")))
        latencies = []
        for _ in range(5):
            t = time.perf_counter()
            run_id = post(f"{base}/api/flows/{flow_id}/runs", {"parameters": {}})["id"]
            wait_for(lambda: state_of(base, run_id) not in ("Scheduled", "Submitted"))
            latencies.append(time.perf_counter() - t)
            wait_for(lambda: state_of(base, run_id) == "Success")
        click = statistics.median(latencies)
        rows.append(("click to Running", f"{click * 1000:.0f} ms", "", "< 2 s",
                     "ok" if click < 2 else "OVER"))

        t = time.perf_counter()
        ids = [post(f"{base}/api/flows/{flow_id}/runs", {"parameters": {}})["id"]
               for _ in range(args.burst)]
        wait_for(lambda: all(state_of(base, i) == "Success" for i in ids[-1:])
                 and all(state_of(base, i) == "Success" for i in ids), timeout=900)
        per_minute = args.burst / (time.perf_counter() - t) * 60
        rows.append((f"one agent, {args.burst} trivial runs", f"{per_minute:.0f} runs/min",
                     "", "", ""))
        _table(rows)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def _up(base: str) -> bool:
    try:
        return get(base + "/api/health") == b'{"status": "ok"}'
    except OSError:
        return False


def _table(rows: list[tuple[str, ...]]) -> None:
    headers = ("measure", "median", "size", "target", "")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for r in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
