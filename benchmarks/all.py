"""Every speed target of the engine in one table, measured in one run.

Each row runs in a fresh subprocess on a fresh database in a temporary
directory; ratios compare rows of the same run, so a busy machine slows the
row and its baseline alike.

    python benchmarks/all.py            # the full table (a few minutes)
    python benchmarks/all.py --quick    # smaller flows
    python benchmarks/all.py --fixed    # only the whole-process rows
    python benchmarks/all.py --repeat 5 --runs 5   # five tables, then each row's
                                                   # median and range over them

This kind of machine's speed swings between runs a minute apart more than within
one (the ratios of one run, 1.6x to 2.4x for the same chain); ``--runs`` shows
how far.

Rows (targets in brackets):

* durable 10,000-task chain and 10,000-child map, per task, against the raw
  sqlite3 floor (two INSERT+COMMITs per task) [at most 2x, aim 1.5x]; medians of
  interleaved rounds, on a store a small run has already used;
* a 2,000-child map on LocalExecutor, threads, processes and a local Dask
  cluster, per task and against local [threads at most 1.5x local; processes
  under 0.5 ms; Dask under 2 ms]; local and threads are medians of interleaved
  rounds;
* 200 tasks that each sleep 50 ms, local against 8 threads [speed-up 6x];
* whole processes against ``python -c "import sqlite3"`` doing two commits:
  ``import cairnflow``, a one-task flow on an existing store [3x], the first
  run on a new store, ``cairnflow runs ls --json`` on 1,000 runs [4x];
* a 1,000-child map on DaskExecutor, per task [under 2 ms];
* the engine alone (in-memory store), 10,000-task chain, per task, in the floor's
  rounds [20 µs].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

ONE_TASK_FLOW = """\
from cairnflow import Flow, task

@task
def one():
    return 1

with Flow("one") as flow:
    one()
"""

BARE_SQLITE = """\
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("PRAGMA synchronous=NORMAL")
c.execute("CREATE TABLE IF NOT EXISTS t (x)")
for _ in range(2):
    c.execute("BEGIN")
    c.execute("INSERT INTO t VALUES (1)")
    c.execute("COMMIT")
"""


# -- measured in a child process -------------------------------------------------------------


def _flow(shape: str, n: int, sleep: float = 0.0):
    from cairnflow import Flow, task

    @task
    def inc(x):
        if sleep:
            time.sleep(sleep)
        return x + 1

    @task
    def numbers(count):
        return list(range(count))

    with Flow(f"bench-{shape}-{n}") as flow:
        if shape == "chain":
            value = inc(0)
            for _ in range(n - 1):
                value = inc(value)
        else:
            inc.map(numbers(n))
    return flow


def _executor(name: str):
    from cairnflow import executors

    if name == "local":
        return executors.LocalExecutor()
    if name == "threads":
        return executors.LocalDaskExecutor(scheduler="threads", num_workers=8)
    if name == "processes":
        return executors.LocalDaskExecutor(scheduler="processes", num_workers=2)
    return executors.DaskExecutor(cluster_kwargs={"n_workers": 2, "threads_per_worker": 4})


def _reuse():
    yield


def durable_run(directory: str, shape: str, n: str, executor: str = "local",
                sleep: str = "0") -> dict:
    """One durable run on a new SQLite file that one small run has already used (its
    schema built, the store's modules imported: the first run on a new store is its
    own row), with the executor started before the clock, so a Dask cluster's
    start-up is not counted either; seconds and µs per task."""
    import logging
    from contextlib import contextmanager

    from cairnflow.statestore import open_store

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    count = int(n)
    flow = _flow(shape, count, float(sleep))
    chosen = _executor(executor)
    store = open_store(f"sqlite:///{os.path.join(directory, 'cairnflow.db')}")
    assert _flow("chain", 2).run(store=store).is_successful()
    started = chosen.start()
    started.__enter__()  # keep the cluster (or pool) up around the timed run
    chosen.start = contextmanager(_reuse)  # the run reuses it
    begin = time.perf_counter()
    state = flow.run(store=store, executor=chosen)
    elapsed = time.perf_counter() - begin
    started.__exit__(None, None, None)
    assert state.is_successful(), state
    return {"seconds": elapsed, "us_per_task": elapsed / count * 1e6}


def memory_chain(directory: str, n: str) -> dict:
    import logging

    from cairnflow.statestore.memory import MemoryStore

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    flow = _flow("chain", int(n))
    flow.run(store=MemoryStore())  # warm-up
    begin = time.perf_counter()
    state = flow.run(store=MemoryStore())
    elapsed = time.perf_counter() - begin
    assert state.is_successful(), state
    return {"seconds": elapsed, "us_per_task": elapsed / int(n) * 1e6}


def raw_floor(directory: str, n: str) -> dict:
    sys.path.insert(0, HERE)
    from store import raw_floor as floor

    return floor(int(n), directory)


MEASURES = {"run": durable_run, "memory": memory_chain, "raw": raw_floor}


def _child(kind: str, *args: str) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        out = subprocess.run([sys.executable, __file__, "--one", kind, directory, *args],
                             capture_output=True, text=True, env=_env())
        if out.returncode != 0:
            raise SystemExit(f"{kind} {args} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def _interleaved(kinds: list[tuple[str, ...]], repeat: int) -> list[float]:
    """The median µs per task of each child measure over ``repeat`` rounds; a round
    runs each once, so the floor and the rows compared with it share the machine's
    slow and fast moments."""
    samples: list[list[float]] = [[] for _ in kinds]
    for _ in range(repeat):
        for i, kind in enumerate(kinds):
            samples[i].append(_child(*kind)["us_per_task"])
    return [statistics.median(s) for s in samples]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env.pop("CAIRNFLOW_DB_URL", None)
    return env


# -- whole processes ------------------------------------------------------------------------


def _wall(argv: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall time of ``argv`` as a new process."""
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def _fill_runs(db: str, runs: int) -> None:
    code = f"""
import os, socket, pendulum
from datetime import timedelta
from cairnflow.statestore.base import FlowRunRecord, Transition
from cairnflow.statestore import open_store
store = open_store({f"sqlite:///{db}"!r})
t0 = pendulum.datetime(2024, 5, 1, tz="UTC")
batch = []
for i in range({runs}):
    rid = f"{{i:08x}}-0000-4000-8000-{{i:012x}}"
    at = t0 + timedelta(minutes=i)
    store.record_flow_run(FlowRunRecord(id=rid, flow_name=f"flow-{{i % 20}}", flow_hash="b",
        parameters={{}}, parameters_blob=None, source_file=None, source_variable=None,
        flow_blob=None, attempt=1, pid=os.getpid(), host=socket.gethostname(), started_at=at),
        [Transition(rid, 1, None, None, None, "Running", "Running flow.", at)])
    batch.append(Transition(rid, 1, None, None, None, "Success", "done", at + timedelta(seconds=3)))
store.record_transitions(batch)
store.close()
"""
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True)


def _compiled_env(directory: str, **extra: str) -> dict[str, str]:
    """``_env``, with bytecode written to (and read from) a cache in ``directory``: an
    installed cairnflow has its ``.pyc`` files, so a process row must not measure
    compiling its source (which ``PYTHONDONTWRITEBYTECODE`` would make it do every time).

    The processes run without ``site`` (``-S``, see ``_python``), so the packages'
    directories are named here."""
    import site

    env = _env(PYTHONPYCACHEPREFIX=os.path.join(directory, "pycache"), **extra)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *site.getsitepackages()])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _python() -> list[str]:
    """The interpreter for the whole-process rows, bare and cairnflow alike, without
    ``site`` (``-S``): an editable install of cairnflow (``pip install -e``) makes
    ``site`` import its finder, with pathlib and more, in every process, the bare one
    too. That was 40% of the bare process's instructions here, and hid as much of
    cairnflow's own cost from the ratios. ``-S`` leaves both processes just what
    they import themselves, whether cairnflow was installed editable or not."""
    return [sys.executable, "-S"]


def process_rows(repeat: int) -> list[tuple[str, float, float, str]]:
    """Whole processes, interleaved: each round runs every command once, so a busy
    machine slows a command and the bare process alike; medians over ``repeat`` rounds."""
    with tempfile.TemporaryDirectory() as d:
        py, *flags = _python()
        flow_file = os.path.join(d, "one.py")
        with open(flow_file, "w") as f:
            f.write(ONE_TASK_FLOW)
        run = [py, *flags, "-c", "import sys, cairnflow.runner.loading as l; "
               "l.load_flow_from_file(sys.argv[1]).run()", flow_file]
        db = os.path.join(d, "runs.db")
        _fill_runs(db, 1000)
        home = _compiled_env(d, CAIRNFLOW_HOME=os.path.join(d, "home"))
        commands = {
            "bare": ([py, *flags, "-c", BARE_SQLITE, os.path.join(d, "bare.db")], _compiled_env(d)),
            "import": ([py, *flags, "-c", "import cairnflow"], _compiled_env(d)),
            "existing": (run, home),
            "ls": ([py, *flags, "-m", "cairnflow.cli", "runs", "ls", "--json", "--db", db],
                   _compiled_env(d)),
        }
        for argv, env in commands.values():  # warm: compiled once; the store exists
            subprocess.run(argv, env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in [*commands, "first"]}
        for i in range(repeat):
            for name, (argv, env) in commands.items():
                times[name].append(_wall(argv, env, 1))
            fresh = _compiled_env(d, CAIRNFLOW_HOME=os.path.join(d, f"fresh-{i}"))
            times["first"].append(_wall(run, fresh, 1))
    bare, imported, existing, ls, first_run = (
        statistics.median(times[k]) for k in ("bare", "import", "existing", "ls", "first"))
    return [
        ('bare "import sqlite3" + 2 commits', bare, 1.0, ""),
        ("import cairnflow", imported, imported / bare, ""),
        ("one-task flow, existing store", existing, existing / bare, "<= 3x"),
        ("one-task flow, first run on a new store", first_run, first_run / bare, ""),
        ("cairnflow runs ls --json (1,000 runs)", ls, ls / bare, "<= 4x"),
    ]


# -- the table --------------------------------------------------------------------------------


class Row(NamedTuple):
    """One row of the table: ``value`` in ``unit``, and its ``ratio`` (if any) to the
    row named by ``against``."""

    what: str
    value: float
    unit: str
    ratio: float | None = None
    against: str = ""
    target: str = ""

    def cells(self) -> tuple[str, str, str, str]:
        return (self.what, _value_text(self.value, self.unit), _ratio_text(self.ratio,
                                                                           self.against),
                self.target)


def _value_text(value: float, unit: str) -> str:
    if unit == "µs/task":
        return f"{value:.0f} µs/task" if value >= 1000 else f"{value:.1f} µs/task"
    return f"{value:.0f} ms" if unit == "ms" else f"{value:.2f} s"


def _ratio_text(ratio: float | None, against: str) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.1f}x faster" if against == "faster" else f"{ratio:.2f}x {against}"


def table(args: argparse.Namespace) -> list[Row]:
    """Every row, measured in this order (each also shown on stderr as it is done)."""
    big = 2_000 if args.quick else 10_000
    mid = 500 if args.quick else 2_000
    dask_n = 200 if args.quick else 1_000
    rows: list[Row] = []

    def add(*row: Any) -> None:
        rows.append(Row(*row))
        what, value, ratio, _ = rows[-1].cells()
        print(f"  {what}: {value} {ratio}", file=sys.stderr, flush=True)

    # The whole-process rows first: they time ~100 ms processes, which the worker
    # processes and Dask clusters of the rows below slow while they wind down.
    for what, seconds, ratio, target in process_rows(args.repeat):
        add(what, seconds * 1000, "ms", ratio, "bare", target)
    # The engine alone is timed in the same rounds: a row timed once, after the Dask
    # rows, measured their clusters winding down as much as the engine.
    floor_rows = _interleaved([("raw", str(big)), ("run", "chain", str(big)),
                               ("run", "map", str(big)), ("memory", str(big))], args.repeat)
    raw, engine_alone = floor_rows[0], floor_rows.pop()
    add("raw sqlite3 floor (2 INSERT+COMMIT per task)", raw, "µs/task", 1.0, "floor")
    for shape, us in zip(("chain", "map"), floor_rows[1:]):
        add(f"durable {big:,}-task {shape}", us, "µs/task", us / raw, "floor", "<= 2x")
    # Local and threads in interleaved rounds too: the threads target is a ratio to
    # local, and one run of each swung it by a tenth either way.
    local, threads = _interleaved([("run", "map", str(mid), "local"),
                                   ("run", "map", str(mid), "threads")], args.repeat)
    for name in ("local", "threads", "processes", "dask"):
        us = {"local": local, "threads": threads}.get(name) \
            or _child("run", "map", str(mid), name)["us_per_task"]
        target = {"threads": "<= 1.5x local", "processes": "< 500 µs",
                  "dask": "< 2,000 µs"}.get(name, "")
        add(f"{mid:,}-child map, {name}", us, "µs/task", us / local, "local", target)
    slow_local = _child("run", "map", "200", "local", "0.05")["seconds"]
    slow_threads = _child("run", "map", "200", "threads", "0.05")["seconds"]
    add("200 x 50 ms map, local", slow_local, "s")
    add("200 x 50 ms map, 8 threads", slow_threads, "s", slow_local / slow_threads, "faster",
        ">= 6x")
    us = _child("run", "map", str(dask_n), "dask")["us_per_task"]
    add(f"{dask_n:,}-child map, DaskExecutor (local cluster)", us, "µs/task", None, "",
        "< 2,000 µs")
    add(f"engine alone, {big:,}-task chain, in-memory store", engine_alone, "µs/task", None,
        "", "< 20 µs")
    return rows


def summary(runs: list[list[Row]]) -> list[Row]:
    """Each row's median over whole runs of the table (its value and its ratio)."""
    rows = []
    for same in zip(*runs):
        ratio = None if same[0].ratio is None else statistics.median(r.ratio for r in same)
        rows.append(same[0]._replace(value=statistics.median(r.value for r in same),
                                     ratio=ratio))
    return rows


def print_table(rows: list[Row], spread: list[str] | None = None) -> None:
    header = ("what", "value", "ratio", "target")
    cells = [row.cells() for row in rows]
    widths = [max(len(c[i]) for c in cells + [header]) for i in range(4)]
    for i, (what, value, ratio, target) in enumerate([header, *cells]):
        line = f"{what:<{widths[0]}}  {value:>{widths[1]}}  {ratio:>{widths[2]}}  {target}"
        if spread is not None:
            line = f"{line:<{sum(widths) + 6}}  {'range' if i == 0 else spread[i - 1]}"
        print(line.rstrip())


def _spread(same: list[Row]) -> str:
    """The lowest and highest of a row over runs: its ratio, or its value where it has
    no ratio or its target is in µs."""
    first = same[0]
    if first.ratio is not None and "µs" not in first.target:
        return f"{min(r.ratio for r in same):.2f}-{max(r.ratio for r in same):.2f}x"
    low = _value_text(min(r.value for r in same), first.unit).split()[0]
    return f"{low}-{_value_text(max(r.value for r in same), first.unit)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller flows")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds for the floor rows and the process rows (medians)")
    parser.add_argument("--fixed", action="store_true",
                        help="only the whole-process (fixed cost) rows")
    parser.add_argument("--runs", type=int, default=1,
                        help="whole runs of the table: each is printed, then every row's "
                             "median and range over them")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, directory, *rest = args.one
        print(json.dumps(MEASURES[kind](directory, *rest)))
        return
    if args.fixed:
        for what, seconds, ratio, target in process_rows(args.repeat):
            print(f"{what:<42} {seconds * 1000:6.0f} ms {ratio:6.2f}x bare  {target}")
        return

    runs = [table(args) for _ in range(args.runs)]
    for i, rows in enumerate(runs, 1):
        if args.runs > 1:
            print(f"\nrun {i} of {args.runs}")
        print_table(rows)
    if args.runs > 1:
        print(f"\nmedian of {args.runs} runs of the table, and each row's range")
        print_table(summary(runs), [_spread([run[i] for run in runs])
                                    for i in range(len(runs[0]))])


if __name__ == "__main__":
    main()
