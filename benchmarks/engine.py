"""Engine overhead per task, with the in-memory store.

Runs chain, fan-out and map flows of 100, 1,000 and 10,000 trivial tasks, each
in a fresh subprocess, and prints the time ``flow.run()`` takes per task (µs)
and the peak memory Python allocated during the run (tracemalloc, measured in a
second run so it does not slow the timed one).

    python benchmarks/engine.py            # the full table
    python benchmarks/engine.py --quick    # 100 and 1,000 only

Target: under 60 µs per task on the 10,000-task chain. For scale (measured on
this kind of machine, not here): Prefect 1.4 needs about 9,000 µs per task on a
100-task chain and about 17,000 on a 1,000-task chain.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc

SHAPES = ("chain", "fan-out", "map")


def build(shape: str, n: int):
    from cairnflow import Flow, task

    @task
    def inc(x):
        return x + 1

    @task
    def numbers(count):
        return list(range(count))

    with Flow(f"bench-{shape}-{n}") as flow:
        if shape == "chain":
            value = inc(0)
            for _ in range(n - 1):
                value = inc(value)
        elif shape == "fan-out":
            root = inc(0)
            for _ in range(n - 1):
                inc(root)
        else:  # map: one task producing n items, n mapped children
            inc.map(numbers(n))
    return flow


def measure(shape: str, n: int) -> dict:
    """In this process: time one run, then trace the memory of another."""
    import logging

    from cairnflow.statestore.memory import MemoryStore

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    flow = build(shape, n)
    flow.run(store=MemoryStore())  # warm-up: imports, caches
    start = time.perf_counter()
    state = flow.run(store=MemoryStore())
    elapsed = time.perf_counter() - start
    assert state.is_successful(), state
    tracemalloc.start()
    flow.run(store=MemoryStore())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"shape": shape, "n": n, "us_per_task": elapsed / n * 1e6,
            "seconds": elapsed, "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-task flows")
    parser.add_argument("--one", nargs=2, metavar=("SHAPE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    sizes = (100, 1_000) if args.quick else (100, 1_000, 10_000)
    print(f"{'flow':<10}{'tasks':>8}{'µs/task':>10}{'run (s)':>10}{'peak MiB':>10}")
    for shape in SHAPES:
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--one", shape, str(n)],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{shape:<10}{n:>8}{row['us_per_task']:>10.1f}{row['seconds']:>10.3f}"
                  f"{row['peak_mib']:>10.1f}")


if __name__ == "__main__":
    main()
