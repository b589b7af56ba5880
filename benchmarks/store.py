"""What durability costs: cairnflow's SQLite store against the raw sqlite3 floor.

Prints, measured side by side in one run (each in a fresh subprocess, on a
fresh database in a temporary directory):

Rows are medians of interleaved rounds (``--repeat``, 3 by default): each
round measures the floor and every cairnflow row once, so a ratio is not
skewed by the machine being slower for one row than for the floor.

* the raw floor: stdlib sqlite3, WAL, synchronous=NORMAL, two INSERT+COMMITs
  per task (Running, then Success with its pickled result);
* cairnflow, durable, per task: a 10,000-task chain and a map of 10,000
  children (with synchronous=NORMAL, the default, and with
  CAIRNFLOW_DURABILITY=full), and transitions committed per second;
* WAL pages per commit of the chain and the map: the pages each commit writes
  (counted in the WAL, which is not checkpointed during that run);
* resume: the time from ``resume_run`` to the first re-executed task, for a
  10,000-task chain that failed at its last task;
* peak memory (max RSS) of a run of a 100,000-child map;
* with a PostgreSQL server (``CAIRNFLOW_BENCH_PG_URL``, else
  ``CAIRNFLOW_TEST_PG_URL``; each measure in a schema of its own, dropped after):
  psycopg's raw floor (two INSERT+COMMITs per task, ``synchronous_commit`` as the
  server has it), and cairnflow's PostgreSQL store on the chain and on the map
  run on 8 threads (``LocalDaskExecutor``), whose concurrently finishing children
  share commits (the recorder's group commit). SQLite's threaded map is shown
  beside it.

    python benchmarks/store.py           # everything (a few minutes)
    python benchmarks/store.py --quick   # 2,000 tasks, 20,000 children
    python benchmarks/store.py --against /tmp/before --durable-only
        # also every cairnflow row with the cairnflow package in /tmp/before (e.g.
        # `git archive COMMIT | tar -x -C /tmp/before`), in the same rounds: before/after

Targets: durable cost per task at most 3x the raw floor (on each store, its own
floor); on PostgreSQL the threaded map cheaper per task than the chain; resume
overhead under 1 s at 10,000 finished tasks; the 100,000-child map under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time


def raw_floor(n: int, directory: str) -> dict:
    """Two INSERT+COMMITs per task with stdlib sqlite3: the cheapest durable record."""
    conn = sqlite3.connect(os.path.join(directory, "raw.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, task INTEGER, state TEXT, "
                 "ts REAL, result BLOB)")
    start, cpu = time.perf_counter(), _cpu_seconds()
    for i in range(n):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (task, state, ts) VALUES (?, 'Running', ?)", (i, time.time()))
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (task, state, ts, result) VALUES (?, 'Success', ?, ?)",
                     (i, time.time(), pickle.dumps(i + 1)))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    return {"us_per_task": elapsed / n * 1e6, "transitions": 2 * n, "seconds": elapsed,
            "cpu_us_per_task": (_cpu_seconds() - cpu) / n * 1e6}


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process: on a shared machine it varies less
    than wall time with what the other processes do."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pg_server_url() -> str | None:
    """The PostgreSQL server to measure on, if any."""
    return os.environ.get("CAIRNFLOW_BENCH_PG_URL") or os.environ.get("CAIRNFLOW_TEST_PG_URL")


class _pg_schema:
    """A fresh schema on the benchmark server: ``with _pg_schema() as (url, conninfo)``."""

    def __enter__(self) -> tuple[str, str]:
        import uuid

        import psycopg

        server = pg_server_url()
        self.conninfo = "postgresql://" + server.partition("://")[2]
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        option = f"options=-csearch_path%3D{self.schema}"
        join = "&" if "?" in server else "?"
        return f"{server}{join}{option}", f"{self.conninfo}{join}{option}"

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


def pg_raw_floor(n: int, directory: str) -> dict:
    """Two INSERT+COMMITs per task with plain psycopg: PostgreSQL's cheapest durable record."""
    import psycopg

    with _pg_schema() as (_, conninfo), psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, task INTEGER, state TEXT, "
                     "ts DOUBLE PRECISION, result BYTEA)")
        conn.commit()
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO t (task, state, ts) VALUES (%s, 'Running', %s)",
                         (i, time.time()))
            conn.commit()
            conn.execute("INSERT INTO t (task, state, ts, result) VALUES (%s, 'Success', %s, %s)",
                         (i, time.time(), pickle.dumps(i + 1)))
            conn.commit()
        elapsed = time.perf_counter() - start
    return {"us_per_task": elapsed / n * 1e6, "transitions": 2 * n, "seconds": elapsed}


def pg_run(shape: str, n: int, directory: str) -> dict:
    """One durable run on the PostgreSQL store, in a fresh schema."""
    with _pg_schema() as (url, _):
        return cairnflow_run(shape, n, directory, url=url)


def _flow(shape: str, n: int, fail_last: bool = False, marker: str | None = None):
    from cairnflow import Flow, task

    @task
    def inc(x):
        return x + 1

    @task
    def last(x):
        if fail_last:
            raise RuntimeError("the last task fails")
        if marker:
            with open(marker, "w") as f:
                f.write(repr(time.perf_counter()))
        return x

    @task
    def numbers(count):
        return list(range(count))

    with Flow(f"store-bench-{shape}") as flow:
        if shape == "chain":
            value = inc(0)
            for _ in range(n - 2):
                value = inc(value)
            last(value)
        else:
            inc.map(numbers(n))
    return flow


def cairnflow_run(shape: str, n: int, directory: str, url: str | None = None) -> dict:
    """One durable run on a fresh SQLite file (or the store ``url``) that one small run
    has used already (the schema built, the store's modules imported); per-task cost
    and transitions/s. Shape ``map-threads`` is the map on 8 threads."""
    import logging

    from cairnflow.executors import LocalDaskExecutor
    from cairnflow.statestore import open_store

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    threads = shape.endswith("-threads")
    flow = _flow(shape.removesuffix("-threads"), n)
    store = open_store(url or f"sqlite:///{os.path.join(directory, 'cairnflow.db')}")
    executor = LocalDaskExecutor("threads", num_workers=8) if threads else None
    assert _flow("chain", 2).run(store=store).is_successful()
    start, cpu = time.perf_counter(), _cpu_seconds()
    state = flow.run(store=store, executor=executor)
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    assert state.is_successful(), state
    transitions = len(store.get_history(state.context["flow_run_id"]))
    return {"us_per_task": elapsed / n * 1e6, "seconds": elapsed,
            "transitions_per_s": transitions / elapsed, "transitions": transitions,
            "cpu_us_per_task": cpu / n * 1e6}


def wal_pages(shape: str, n: int, directory: str) -> dict:
    """WAL pages written per commit by one durable run: every frame it appends,
    over the commit frames among them (the WAL is not checkpointed meanwhile)."""
    import logging

    from cairnflow.statestore import open_store, sqlite_policy

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    sqlite_policy.WAL_CHECKPOINT_BYTES = 1 << 40  # keep every frame to count it
    path = os.path.join(directory, "cairnflow.db")
    store = open_store(f"sqlite:///{path}")
    assert _flow("chain", 2).run(store=store).is_successful()
    frames_before, commits_before, _ = _wal_frames(path + "-wal")
    assert _flow(shape, n).run(store=store).is_successful()
    frames, commits, page_size = _wal_frames(path + "-wal")
    return {"pages_per_commit": (frames - frames_before) / (commits - commits_before),
            "commits": commits - commits_before, "page_size": page_size}


def _wal_frames(path: str) -> tuple[int, int, int]:
    """Frames, commit frames and the page size of a WAL file (SQLite's WAL format: a
    32-byte header, then frames of a 24-byte header and a page; a commit frame's
    header holds the database size, other frames 0; frames of an earlier pass
    through the file have older salts)."""
    frames = commits = 0
    with open(path, "rb") as wal:
        header = wal.read(32)
        page_size, salts = struct.unpack(">I", header[8:12])[0], header[16:24]
        while len(frame := wal.read(24)) == 24 and frame[8:16] == salts:
            frames += 1
            commits += frame[4:8] != bytes(4)
            wal.seek(page_size, os.SEEK_CUR)
    return frames, commits, page_size


def resume_latency(n: int, directory: str) -> dict:
    """Time from resume_run() to the first re-executed task (the failed last one)."""
    import logging

    from cairnflow.statestore import open_store

    logging.getLogger("cairnflow").setLevel(logging.WARNING)
    url = f"sqlite:///{os.path.join(directory, 'cairnflow.db')}"
    state = _flow("chain", n, fail_last=True).run(store=url)
    assert state.is_failed()
    marker = os.path.join(directory, "first-task-started")
    # Resume with the same flow, now fixed: only `last` runs, and it marks the time.
    fixed = _flow("chain", n, marker=marker)
    start = time.perf_counter()
    resumed = fixed.resume(state.context["flow_run_id"], store=open_store(url))
    total = time.perf_counter() - start
    with open(marker) as f:
        first_task = float(f.read()) - start
    assert resumed.is_successful(), resumed
    return {"to_first_task_s": first_task, "whole_resume_s": total}


def map_memory(n: int, directory: str) -> dict:
    """Max RSS of a process that runs a map of ``n`` children durably."""
    result = cairnflow_run("map", n, directory)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**result, "max_rss_mib": rss_kib / 1024}


MEASURES = {"raw": raw_floor, "run": cairnflow_run, "pages": wal_pages, "resume": resume_latency,
            "memory": map_memory, "pg-raw": pg_raw_floor, "pg-run": pg_run}


def _in_subprocess(kind: str, *args: str, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        out = subprocess.run([sys.executable, __file__, "--one", kind, directory, *args],
                             capture_output=True, text=True, env={**os.environ, **(env or {})})
        if out.returncode != 0:
            raise SystemExit(f"{kind} {args} failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def _interleaved(n: int, repeat: int, against: str | None = None) -> dict:
    """Each row's median over ``repeat`` rounds; a round measures every row once, so
    the floor and cairnflow share the machine's slow and fast moments alike. With
    ``against`` (a directory holding another cairnflow package), each cairnflow row
    is measured with that code too, right after this code's, as ``(shape,
    durability, "before")``."""
    kinds: list[tuple] = [("raw", "")]
    for shape in ("chain", "map"):
        for durability in ("normal", "full"):
            kinds.append((shape, durability))
            if against:
                kinds.append((shape, durability, "before"))
    samples: dict = {kind: [] for kind in kinds}
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(repeat):
        for kind in kinds:
            if kind[0] == "raw":
                samples[kind].append(_in_subprocess("raw", str(n)))
                continue
            shape, durability = kind[0], kind[1]
            env = {"CAIRNFLOW_DURABILITY": durability,
                   "PYTHONPATH": against if len(kind) == 3 else here}
            samples[kind].append(_in_subprocess("run", shape, str(n), env=env))
    medians = {kind: sorted(rows_, key=lambda r: r["us_per_task"])[len(rows_) // 2]
               for kind, rows_ in samples.items()}
    medians["raw"] = medians.pop(("raw", ""))
    return medians


def _pg_table(n: int, repeat: int) -> None:
    """PostgreSQL's rows beside SQLite's threaded map: medians of interleaved rounds."""
    kinds = [("pg-raw", None), ("pg-run", "chain"), ("pg-run", "map-threads"),
             ("run", "map-threads")]
    samples: dict = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind, shape in kinds:
            args = (str(n),) if shape is None else (shape, str(n))
            samples[kind, shape].append(_in_subprocess(kind, *args))
    rows = {kind: sorted(r, key=lambda x: x["us_per_task"])[len(r) // 2]
            for kind, r in samples.items()}
    floor = rows["pg-raw", None]["us_per_task"]
    print(f"\nPostgreSQL ({n:,} tasks; raw floor = psycopg, 2 INSERT+COMMIT per task over "
          f"the same connection; median of {repeat} interleaved runs each)\n")
    print(f"{'what':<44}{'µs/task':>10}{'x floor':>9}{'transitions/s':>15}")
    labels = {("pg-raw", None): "raw psycopg floor",
              ("pg-run", "chain"): "cairnflow chain, PostgreSQL",
              ("pg-run", "map-threads"): "cairnflow map on 8 threads, PostgreSQL",
              ("run", "map-threads"): "cairnflow map on 8 threads, SQLite"}
    for kind, row in rows.items():
        per_s = row.get("transitions_per_s") or row["transitions"] / row["seconds"]
        ratio = f"{row['us_per_task'] / floor:>9.2f}" if kind[0] != "run" else f"{'':>9}"
        print(f"{labels[kind]:<44}{row['us_per_task']:>10.1f}{ratio}{per_s:>15,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of measurements; each row reports its median")
    parser.add_argument("--pg-only", action="store_true",
                        help="only the PostgreSQL table (needs CAIRNFLOW_BENCH_PG_URL)")
    parser.add_argument("--against", metavar="DIR",
                        help="also measure each cairnflow row with the cairnflow in DIR "
                             "(the code before a change), in the same rounds")
    parser.add_argument("--durable-only", action="store_true",
                        help="only the durable cost table (no resume, memory, PostgreSQL)")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, directory, *rest = args.one
        result = MEASURES[kind](*[int(a) if a.isdigit() else a for a in rest], directory)
        print(json.dumps(result))
        return

    n = 2_000 if args.quick else 10_000
    big_map = 20_000 if args.quick else 100_000
    if args.pg_only:
        if not pg_server_url():
            raise SystemExit("set CAIRNFLOW_BENCH_PG_URL to a PostgreSQL server's URL")
        _pg_table(n, args.repeat)
        return
    rows = _interleaved(n, args.repeat, args.against)
    raw = rows["raw"]
    print(f"Durable cost per task ({n:,} tasks; raw floor = stdlib sqlite3, WAL, "
          "synchronous=NORMAL, 2 INSERT+COMMIT per task; median of "
          f"{args.repeat} interleaved runs each)\n")
    print(f"{'what':<44}{'µs/task':>10}{'x floor':>9}{'transitions/s':>15}")
    print(f"{'raw sqlite3 floor':<44}{raw['us_per_task']:>10.1f}{1:>9.2f}"
          f"{raw['transitions'] / raw['seconds']:>15,.0f}")
    for kind, row in rows.items():
        if kind == "raw":
            continue
        shape, durability = kind[0], kind[1]
        label = f"cairnflow {shape}, synchronous={durability.upper()}"
        if len(kind) == 3:
            label = f"  before ({args.against})"[:44]
        print(f"{label:<44}{row['us_per_task']:>10.1f}"
              f"{row['us_per_task'] / raw['us_per_task']:>9.2f}"
              f"{row['transitions_per_s']:>15,.0f}")
    if args.against:
        print("\nAfter / before, per task (same rounds):")
        for kind, row in rows.items():
            if kind != "raw" and len(kind) == 2:
                before = rows[(*kind, "before")]
                print(f"  {kind[0]:<6} synchronous={kind[1].upper():<7}"
                      f"{row['us_per_task'] / before['us_per_task']:>6.2f}x  "
                      f"({row['transitions'] // n} vs {before['transitions'] // n} "
                      "transitions per task)")
    pages = {shape: _in_subprocess("pages", shape, str(n)) for shape in ("chain", "map")}
    print(f"\nWAL pages ({pages['chain']['page_size']} bytes) per commit: "
          + ", ".join(f"{shape} {row['pages_per_commit']:.2f}" for shape, row in pages.items()))
    if args.durable_only:
        return
    resumed = _in_subprocess("resume", str(n))
    print(f"\nResume of a {n:,}-task chain that failed at its last task: first task re-executed "
          f"after {resumed['to_first_task_s']:.3f} s (whole resume {resumed['whole_resume_s']:.3f} s)")
    mem = _in_subprocess("memory", str(big_map))
    print(f"Map of {big_map:,} children, durable: max RSS {mem['max_rss_mib']:.0f} MiB, "
          f"{mem['us_per_task']:.1f} µs per child")
    if pg_server_url():
        _pg_table(n, args.repeat)
    else:
        print("\n(no PostgreSQL rows: set CAIRNFLOW_BENCH_PG_URL to measure them)")


if __name__ == "__main__":
    main()
