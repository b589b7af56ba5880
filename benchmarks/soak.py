"""Soak: SIGKILL a 200-task flow at random instants, over and over, resuming after each.

Each round runs the flow in a child process and kills it at a random moment
(during start-up, inside a task, on a commit), then resumes the run in a new
child, and so on until a child finishes on its own; rounds repeat until at
least ``--kills`` kills happened in all (``tests/crashkit.py`` has the children,
the kill loop and the checks). Then it prints what the durability promise
says must be zero:

* committed Successes re-executed (a task whose Success was committed ran again);
* other execution errors (task code that ran without its Running committed
  first, or twice in one attempt);
* results differing from an uninterrupted run of the same flow;
* invalid histories (a gap, or a step no run can take);
* integrity errors (``PRAGMA integrity_check``) and runs that did not end in Success.

    python benchmarks/soak.py                  # 1,000 kills or more (tens of minutes)
    python benchmarks/soak.py --kills 50       # a quick look
    python benchmarks/soak.py --seed 1234      # replay one sequence of kills
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

import crashkit  # noqa: E402  (tests/crashkit.py, found through the path above)
from cairnflow.statestore import open_store  # noqa: E402

SPEC = crashkit.LayeredFlow("soak200", chain=60, fan=60, items=40, glue=67, big=2)


def reference_results(workdir: Path, home: Path, flow_file: Path) -> dict:
    """The results of one uninterrupted run: what every killed run must end with."""
    url = f"sqlite:///{workdir / 'reference.db'}"
    env = crashkit.child_env(home, CRASHKIT_EXECUTIONS=str(workdir / "reference.txt"))
    child = crashkit.spawn("run", flow_file, url, workdir, env)
    if child.wait(timeout=600) != 0:
        raise SystemExit(f"the uninterrupted run failed:\n{child.output()}")
    return crashkit.final_results(url, crashkit.find_run_id(url))


def one_round(workdir: Path, home: Path, flow_file: Path, kills: int, rng: random.Random,
              expected: dict) -> dict[str, int]:
    workdir.mkdir()
    db = workdir / "crashed.db"
    url = f"sqlite:///{db}"
    executions = workdir / "executions.txt"
    env = crashkit.child_env(home, CRASHKIT_EXECUTIONS=str(executions))
    loop = crashkit.kill_until_done(flow_file, url, workdir, env, executions,
                                    SPEC.task_runs, kills, rng)
    (workdir / "kills.txt").write_text("\n".join(loop.events))
    store = open_store(url, readonly=True)
    try:
        problems = crashkit.execution_problems(
            loop.run_id, store, crashkit.read_executions(executions))
        again = [p for p in problems if "ran again" in p]
        results = crashkit.final_results(url, loop.run_id)
        differing = sum(1 for key in expected.keys() | results.keys()
                        if results.get(key, object()) != expected.get(key))
        histories = crashkit.history_problems(loop.run_id, store)
        not_success = int(store.get_flow_run(loop.run_id).state != "Success")
    finally:
        store.close()
    for line in again + problems + histories:
        print(f"  {workdir.name}: {line}", flush=True)
    return {"kills": loop.kills, "resumes": loop.children - 1, "re-executed": len(again),
            "other execution errors": len(problems) - len(again), "differing": differing,
            "invalid histories": len(histories),
            "integrity errors": int(crashkit.integrity(db) != "ok"),
            "not Success": not_success}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="kills in all, at least")
    parser.add_argument("--per-round", type=int, default=100,
                        help="kills in each run before it may finish")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    started = time.monotonic()
    totals: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="cairnflow-soak-") as tmp:
        root = Path(tmp)
        home = root / "home"
        flow_file = SPEC.write(root / "soak200.py")
        expected = reference_results(root, home, flow_file)
        assert len(expected) == SPEC.task_runs - 2, len(expected)  # all but mapped parents
        n = 0
        while totals.get("kills", 0) < args.kills:
            n += 1
            want = min(args.per_round, args.kills - totals.get("kills", 0))
            counts = one_round(root / f"round-{n}", home, flow_file, want, rng, expected)
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            print(f"round {n}: {counts['kills']} kills, {counts['resumes']} resumes "
                  f"({time.monotonic() - started:.0f} s so far)", flush=True)
    print()
    print(f"Soak of a {SPEC.tasks}-task flow ({SPEC.task_runs} task runs), seed {seed}, "
          f"{n} runs, {time.monotonic() - started:.0f} s")
    print()
    width = max(map(len, ROWS.values()))
    for key, label in ROWS.items():
        print(f"{label:<{width}}  {totals.get(key, 0):>6}")
    bad = sum(totals.get(k, 0) for k in ROWS if k not in ("kills", "resumes"))
    sys.exit(1 if bad else 0)


ROWS = {
    "kills": "kills (SIGKILL at random instants)",
    "resumes": "resumes",
    "re-executed": "committed Successes re-executed (must be 0)",
    "other execution errors": "code run without its Running, or twice (must be 0)",
    "differing": "results differing from an uninterrupted run (must be 0)",
    "invalid histories": "invalid histories (must be 0)",
    "integrity errors": "integrity errors (must be 0)",
    "not Success": "runs not ending in Success (must be 0)",
}

if __name__ == "__main__":
    main()
