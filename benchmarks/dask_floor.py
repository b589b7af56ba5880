"""DaskExecutor against bare Dask on the same cluster, per trivial task.

Each row runs in a fresh subprocess with its own ``LocalCluster`` (2 worker
processes of 4 threads, as in ``all.py``), started before the clock; rounds
alternate the rows, and the table shows medians. Per task: wall time, the CPU
time of the client's process (which also hosts the LocalCluster's scheduler)
and of the worker processes.

    python benchmarks/dask_floor.py              # 1,000 tasks, 3 rounds
    python benchmarks/dask_floor.py -n 2000 --rounds 5

Rows:

* bare ``client.map`` of a trivial function (one call for all tasks);
* bare ``client.submit`` in a loop, then waiting for all;
* the durable map on ``DaskExecutor`` (``all.py``'s row).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLUSTER = {"n_workers": 2, "threads_per_worker": 4}


def inc(x):
    return x + 1


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_workers(cluster) -> float:
    import psutil

    total = 0.0
    for worker in cluster.workers.values():
        process = getattr(worker, "process", None)
        pid = getattr(process, "pid", None)
        if pid is None:
            continue
        for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _timed(cluster, fn) -> dict:
    cpu, workers, begin = _cpu_self(), _cpu_workers(cluster), time.perf_counter()
    fn()
    wall = time.perf_counter() - begin
    return {"wall": wall, "cpu": _cpu_self() - cpu, "workers": _cpu_workers(cluster) - workers}


def bare(kind: str, n: int) -> dict:
    from distributed import Client, LocalCluster, wait

    with LocalCluster(host="127.0.0.1", dashboard_address="127.0.0.1:0", **CLUSTER) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(inc, range(100), pure=False))  # warm: code and connections

        def run() -> None:
            if kind == "map":
                futures = client.map(inc, range(n), pure=False)
            else:
                futures = [client.submit(inc, i, pure=False) for i in range(n)]
            wait(futures)
            assert client.gather(futures)[-1] == n

        return _timed(cluster, run)


def cairnflow_map(n: int) -> dict:
    import logging

    sys.path.insert(0, HERE)
    from all import _flow

    from cairnflow.executors import DaskExecutor
    from cairnflow.statestore import open_store

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    executor = DaskExecutor(cluster_kwargs=dict(CLUSTER))
    with tempfile.TemporaryDirectory() as d, executor.start():
        cluster = executor._client.cluster
        started = executor.start
        executor.start = _reuse  # the run reuses the started cluster
        store = open_store(f"sqlite:///{os.path.join(d, 'cairnflow.db')}")
        state = {}
        result = _timed(cluster, lambda: state.setdefault(
            "final", _flow("map", n).run(store=store, executor=executor)))
        executor.start = started
        assert state["final"].is_successful(), state["final"]
        return result


def _reuse():
    from contextlib import nullcontext

    return nullcontext()


ROWS = {"bare client.map": ("bare", "map"), "bare client.submit loop": ("bare", "submit"),
        "cairnflow DaskExecutor map": ("cairnflow",)}


def _child(row: str, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, __file__, "--one", row, str(n)], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{row} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="tasks per row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row, n = args.one[0], int(args.one[1])
        kind, *rest = ROWS[row]
        print(json.dumps(bare(rest[0], n) if kind == "bare" else cairnflow_map(n)))
        return
    results: dict[str, list[dict]] = {row: [] for row in args.rows}
    for _ in range(args.rounds):
        for row in args.rows:
            results[row].append(_child(row, args.n))
            print(f"  {row}: {results[row][-1]['wall'] / args.n * 1e3:.2f} ms/task",
                  file=sys.stderr, flush=True)
    print(f"{args.n:,} trivial tasks, LocalCluster {CLUSTER}, medians of {args.rounds} rounds")
    print(f"{'what':<28} {'wall ms/task':>12} {'client CPU':>11} {'workers CPU':>12}")
    for row, runs in results.items():
        wall, cpu, workers = (statistics.median(r[k] for r in runs) / args.n * 1e3
                              for k in ("wall", "cpu", "workers"))
        print(f"{row:<28} {wall:12.2f} {cpu:11.2f} {workers:12.2f}")


if __name__ == "__main__":
    main()
