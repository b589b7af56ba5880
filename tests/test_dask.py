"""DaskExecutor on real clusters: a ``distributed.LocalCluster`` with two worker
processes, and a ``dask scheduler`` + ``dask worker`` pair started as
subprocesses on 127.0.0.1 whose workers share neither the tests' directory nor
the flow files' (so a flow's helper modules must travel to them).

One cluster of each kind per module keeps the suite fast; the heavy tests
(a 1,000-child map, SIGKILLs) are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from cairnflow import Flow, get_run_logger, task  # noqa: E402
from cairnflow.executors import DaskExecutor  # noqa: E402
from cairnflow.runner.dask_executor import DaskWorkerError  # noqa: E402
from cairnflow.runner.loading import load_flow_from_file  # noqa: E402
from cairnflow.statestore import open_store  # noqa: E402

from crashkit import history_problems, wait_until  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """cairnflow importable (from this checkout), the tests' directory not."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("CAIRNFLOW_DB_URL", None)
    return env


def _dask(*args: str, log: Path, cwd: Path, prefix: list[str] | None = None) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(prefix or [sys.executable, "-m", "dask", *args], cwd=cwd,
                                env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(n, timeout=120)


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """The address of a ``dask scheduler`` with a ``dask worker`` of 2 processes."""
    workdir = tmp_path_factory.mktemp("dask-cluster")
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = _dask("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard",
                      log=workdir / "scheduler.log", cwd=workdir)
    worker = _dask("worker", address, "--nworkers", "2", "--nthreads", "2", "--host",
                   "127.0.0.1", "--no-dashboard", log=workdir / "worker.log", cwd=workdir)
    try:
        _wait_for_workers(address, 2)
        yield address
    finally:
        _stop(worker, scheduler)


@pytest.fixture(scope="module")
def local():
    """The address of a ``distributed.LocalCluster`` with 2 worker processes."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(params=["local", "external"])
def address(request):
    return request.getfixturevalue(request.param)


def _store(home: Path):
    return open_store(f"sqlite:///{home / 'cairnflow.db'}")


def _states(store, run_id, slug):
    return [t.state for t in store.get_history(run_id, slug)]


# -- the basics (each on one of the two clusters, to keep the suite fast) -----------------------------------------------------------


def test_seed_flow_runs_on_the_cluster(address, cairnflow_home):
    """examples/seed_05_functional_flow.py, on the cluster."""

    @task
    def add(x, y=1):
        return x + y

    with Flow("My first flow!") as flow:
        first_result = add(1, y=2)
        second_result = add(x=first_result, y=100)

    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_successful()
    assert state.result[first_result].result == 3
    assert state.result[second_result].result == 103


def test_helper_modules_and_tracebacks_reach_the_user(external, tmp_path, cairnflow_home):
    """The flow file imports a module beside it; on the workers it resolves, and a
    failure's stored traceback names the user's files and lines."""
    address = external
    helper = f"helpers_{address.rsplit(':', 1)[1]}"
    (tmp_path / f"{helper}.py").write_text(textwrap.dedent("""\
        def double(x):
            return 2 * x


        def check(x):
            if x == 3:
                raise ValueError("three is not allowed")
            return x
        """))
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(textwrap.dedent(f"""\
        from cairnflow import Flow, task
        import {helper} as helpers

        @task
        def numbers():
            return [1, 2, 3]

        @task
        def work(x):
            return helpers.double(helpers.check(x))

        with Flow("helpers") as flow:
            work.map(numbers())
        """))
    flow = load_flow_from_file(str(flow_file))
    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_failed()
    children = [s for s in state.result.values() if s.name == "Mapped"][0].map_states
    assert [c.result for c in children[:2]] == [2, 4]
    store = _store(cairnflow_home)
    run_id = state.context["flow_run_id"]
    [error] = [entry.message for entry in store.get_logs(run_id) if entry.level >= 40]
    assert f'File "{flow_file}", line 10, in work' in error
    assert "return helpers.double(helpers.check(x))" in error
    assert f'File "{tmp_path / (helper + ".py")}", line 7, in check' in error
    assert 'raise ValueError("three is not allowed")' in error
    assert "<dynamic-code>" not in error


def test_retries_are_recorded(local, tmp_path, cairnflow_home):
    address = local
    marker = tmp_path / "tries"

    @task(max_retries=2, retry_delay=timedelta(0))
    def flaky():
        with open(marker, "a") as f:
            f.write("x")
        if len(marker.read_text()) < 2:
            raise RuntimeError("first try fails")
        return "ok"

    with Flow("retries") as flow:
        flaky()
    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_successful()
    store = _store(cairnflow_home)
    run_id = state.context["flow_run_id"]
    assert _states(store, run_id, "flaky-1") == [
        "Pending", "Running", "Retrying", "Running", "Success"]
    assert marker.read_text() == "xx"


def test_timeout_is_recorded_and_the_abandoned_code_said_so(external, cairnflow_home):
    address = external
    @task(timeout=2)
    def sleepy():
        time.sleep(6)
        return "late"

    with Flow("timeout") as flow:
        sleepy()
    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_failed()
    store = _store(cairnflow_home)
    run_id = state.context["flow_run_id"]
    assert _states(store, run_id, "sleepy-1") == ["Pending", "Running", "TimedOut"]
    [warning] = [e for e in store.get_logs(run_id) if "abandoned" in e.message]
    assert warning.task_slug == "sleepy-1"
    assert "may still be running on" in warning.message and "Dask worker" in warning.message


def test_calls_in_flight_together_each_get_their_own_result_once(local, cairnflow_home):
    """Children sent to Dask in shared batches, finishing out of order, while a task
    beside them times out and is cancelled: each child is recorded once, with its
    own result, in map order."""

    @task
    def numbers():
        return list(range(300))

    @task
    def square(x):
        time.sleep((x * 7 % 5) * 0.002)  # finish out of order
        return x * x

    @task(timeout=1)
    def stuck():
        time.sleep(4)

    with Flow("in-flight") as flow:
        squares = square.map(numbers())
        stuck()
    state = flow.run(executor=DaskExecutor(address=local))
    assert state.result[squares].result == [i * i for i in range(300)]
    store = _store(cairnflow_home)
    run_id = state.context["flow_run_id"]
    histories = {}
    for entry in store.get_history(run_id, "square-1"):
        histories.setdefault(entry.map_index, []).append(entry.state)
    assert histories.pop(None) == ["Pending", "Mapped"]
    assert histories == {i: ["Pending", "Running", "Success"] for i in range(300)}
    assert _states(store, run_id, "stuck-1") == ["Pending", "Running", "TimedOut"]


def test_a_stopped_run_does_not_wait_for_code_in_flight(local):
    """When the run stops (Ctrl-C, an engine error) the engine threads waiting for
    task code on the cluster are released at once, with an error."""
    import threading

    executor = DaskExecutor(address=local)
    outcome = {}

    def sleepy(seconds):
        time.sleep(seconds)

    def wait_for_code():
        try:
            executor.run_task_code(sleepy, {"seconds": 30})
        except BaseException as exc:
            outcome["error"] = exc

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with executor.start():
            waiter = threading.Thread(target=wait_for_code)
            waiter.start()
            wait_until(lambda: executor._calls.calls, 30, "the call to be in flight")
            raise KeyboardInterrupt
    waiter.join(10)
    assert not waiter.is_alive()
    assert "shut down" in str(outcome["error"])
    assert time.monotonic() - started < 25


def test_worker_logs_and_prints_are_stored_with_their_task_run(address, cairnflow_home):
    @task(log_stdout=True)
    def chatty(x):
        get_run_logger().info("logged from the worker: %s", x)
        print(f"printed from the worker: {x}")
        return x

    with Flow("chatty") as flow:
        chatty.map([1, 2])
    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_successful()
    store = _store(cairnflow_home)
    entries = {(e.task_slug, e.map_index, e.message) for e in
               store.get_logs(state.context["flow_run_id"])}
    for i in (1, 2):
        assert ("chatty-1", i - 1, f"logged from the worker: {i}") in entries
        assert ("chatty-1", i - 1, f"printed from the worker: {i}") in entries


# -- what a real cluster adds ---------------------------------------------------------------


def test_a_local_cluster_listens_on_localhost_only(cairnflow_home):
    seen = {}

    @task
    def where():
        from distributed import get_worker

        return get_worker().address

    with Flow("where") as flow:
        result = where()

    executor = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1})
    original = executor._start_cluster

    def spy():
        cluster = original()
        seen["scheduler"] = cluster.scheduler_address
        seen["dashboard"] = cluster.scheduler.http_server.port and [
            s.getsockname()[0] for s in cluster.scheduler.http_server._sockets.values()]
        return cluster

    executor._start_cluster = spy
    state = flow.run(executor=executor)
    assert state.is_successful()
    assert seen["scheduler"].startswith("tcp://127.0.0.1:")
    assert state.result[result].result.startswith("tcp://127.0.0.1:")
    assert all(host == "127.0.0.1" for host in seen["dashboard"] or [])


@pytest.mark.slow  # waits out the bounded start-up check (about 20 s)
def test_workers_without_cairnflow_are_a_clear_error(tmp_path, cairnflow_home):
    """A worker that cannot import cairnflow fails the run in one sentence, quickly,
    instead of leaving it waiting for ever."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = tmp_path / "cluster.log"
    scheduler = _dask("scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                      "--no-dashboard", log=log, cwd=tmp_path)
    worker = _dask(log=log, cwd=tmp_path, prefix=[
        sys.executable, "-c",
        "import sys; sys.modules['cairnflow'] = None; sys.argv = ['dask', 'worker', "
        f"'{address}', '--no-nanny', '--host', '127.0.0.1', '--no-dashboard']; "
        "from dask.cli import run_cli; run_cli()"])
    try:
        _wait_for_workers(address, 1)

        @task
        def one():
            return 1

        with Flow("no-cairnflow") as flow:
            one()
        started = time.monotonic()
        with pytest.raises(DaskWorkerError, match="cannot import cairnflow"):
            flow.run(executor=DaskExecutor(address=address))
        assert time.monotonic() - started < 60
        store = _store(cairnflow_home)
        [run] = store.list_runs()
        assert run.state == "Failed"
        assert _states(store, run.id, "one-1") == ["Pending"]  # known, never started
    finally:
        _stop(worker, scheduler)


# -- heavy: a big map, killed processes -----------------------------------------------------


@pytest.mark.slow
def test_a_thousand_child_map(address, cairnflow_home):
    @task
    def numbers():
        return list(range(1000))

    @task
    def square(x):
        return x * x

    with Flow("big-map") as flow:
        squares = square.map(numbers())
    state = flow.run(executor=DaskExecutor(address=address))
    assert state.is_successful()
    assert state.result[squares].result == [i * i for i in range(1000)]
    store = _store(cairnflow_home)
    runs = [t for t in store.get_task_runs(state.context["flow_run_id"])
            if t.task_slug == "square-1" and t.map_index is not None]
    assert len(runs) == 1000 and {t.state for t in runs} == {"Success"}


KILLABLE = """\
import os, time
from cairnflow import Flow, task

HERE = os.path.dirname(os.path.abspath(__file__))


def note(name):
    with open(os.path.join(HERE, name), "a") as f:
        f.write(f"{os.getpid()}\\n")
    with open(os.path.join(HERE, name)) as f:
        return len(f.read().split())


@task
def first():
    note("first")
    return 1


@task
def slow(x):
    if note("slow") == 1:  # the first execution waits to be killed
        time.sleep(120)
    return x + 1


with Flow("killable") as flow:
    slow(first())
"""


def _cli(*args: str, home: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cairnflow.cli", *args],
                            env=_env(CAIRNFLOW_HOME=str(home)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _executor_args(address: str, own_cluster: bool) -> list[str]:
    return ["--executor", "dask"] if own_cluster else ["--dask-address", address]


@pytest.mark.slow
@pytest.mark.parametrize("own_cluster", [True, False], ids=["own-local-cluster", "external"])
def test_sigkill_of_the_flow_process_then_resume_on_dask(own_cluster, external, tmp_path,
                                                         cairnflow_home):
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(KILLABLE)
    args = _executor_args(external, own_cluster)
    proc = _cli("run", str(flow_file), *args, home=cairnflow_home, start_new_session=True)
    wait_until(lambda: _lines(tmp_path / "slow"), 120, "the slow task to start")
    os.killpg(proc.pid, signal.SIGKILL)  # the flow's process (and a cluster it started)
    proc.communicate(timeout=30)
    resumed = _cli("resume", "last", *args, home=cairnflow_home)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    assert len(_lines(tmp_path / "first")) == 1  # finished work is not redone
    assert len(_lines(tmp_path / "slow")) == 2
    store = _store(cairnflow_home)
    [run] = store.list_runs()
    assert run.state == "Success"
    assert _states(store, run.id, "slow-1") == [
        "Pending", "Running", "Crashed", "Running", "Success"]
    assert history_problems(run.id, store) == []
    assert store.load_resume_data(run.id).results  # results are there


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_recorded_truthfully(external, tmp_path, cairnflow_home):
    """Dask runs the code again on another worker; both attempts are in the history."""
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(KILLABLE)
    proc = _cli("run", str(flow_file), "--dask-address", external, home=cairnflow_home)
    [worker_pid] = wait_until(lambda: _lines(tmp_path / "slow"), 120, "the slow task to start")
    os.kill(int(worker_pid), signal.SIGKILL)  # the worker process running the task
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert len(_lines(tmp_path / "slow")) == 2
    store = _store(cairnflow_home)
    [run] = store.list_runs()
    history = store.get_history(run.id, "slow-1")
    assert [t.state for t in history] == [
        "Pending", "Running", "Retrying", "Running", "Success"]
    assert "was lost; Dask started it again" in history[2].message
    assert history_problems(run.id, store) == []
    shown = subprocess.run([sys.executable, "-m", "cairnflow.cli", "runs", "show", "last",
                            "--json"], env=_env(CAIRNFLOW_HOME=str(cairnflow_home)),
                           capture_output=True, text=True, timeout=60)
    [slow] = [t for t in json.loads(shown.stdout)["tasks"] if t["slug"] == "slow-1"]
    assert slow["attempts"] == 2
    _wait_for_workers(external, 2)  # the nanny restarts the killed worker for later tests
