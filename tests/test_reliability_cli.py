"""Reliability of what users type and read: parameters resume refuses to fake, JSON that
stays JSON, flow files that exit while loading, float retry delays, Cached results,
pipes, directories, read-only copies, ``last`` after the clock steps back, and a
long-lived reader that sees a database created after it opened (issue 9, items 2,
3, 7-9, 11-13). Each test also checks that stored data is intact."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta

import pendulum
import pytest

import crashkit
from cairnflow import Flow, Parameter, task
from cairnflow.exceptions import UnresumableRunError
from cairnflow.runner.api import resume_run
from cairnflow.statestore import open_store
from test_cli import assert_one_clear_line, make_runner, write_flow

from cairnflow.cli import app


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "rel.db")


@pytest.fixture
def url(db) -> str:
    return f"sqlite:///{db}"


@pytest.fixture
def cli(db):
    runner = make_runner()

    def invoke(*args: str, use_db: bool = True):
        return runner.invoke(app, [*args, "--db", db] if use_db else list(args))
    return invoke


def digest(db: str) -> bytes:
    """The database's content, to show that a refused command changed nothing."""
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return "\n".join(conn.iterdump()).encode()
    finally:
        conn.close()


def history_ok(url: str) -> None:
    store = open_store(url, readonly=True)
    try:
        for run in store.list_runs():
            assert crashkit.history_problems(run.id, store) == []
    finally:
        store.close()
    assert crashkit.integrity(url.removeprefix("sqlite:///")) == "ok"


# -- item 2: a parameter that cannot be pickled ----------------------------------------------


def test_a_parameter_that_cannot_be_pickled_makes_resume_refuse_naming_it(url, db, caplog):
    import threading

    seen = []

    @task
    def use(lock):
        seen.append(lock)
        raise RuntimeError("fails the first time")

    with Flow("locked") as flow:
        use(Parameter("lock"))

    state = flow.run(lock=threading.Lock(), store=url)
    assert state.is_failed()
    assert "'lock' of this run cannot be pickled" in caplog.text
    assert "resume will refuse it" in caplog.text
    before = digest(db)
    with pytest.raises(UnresumableRunError, match="its parameter 'lock' could not be saved"):
        flow.resume(store=url)
    assert len(seen) == 1  # the task never ran with a substitute
    assert digest(db) == before
    history_ok(url)


def test_resume_from_the_cli_refuses_such_a_run_in_one_line(tmp_path, cli, db, url):
    write_flow(tmp_path, """
        from cairnflow import Flow, Parameter, task

        @task
        def use(lock):
            raise RuntimeError("fails")

        with Flow("locked") as flow:
            use(Parameter("lock"))
    """)
    from cairnflow.runner.loading import load_flow_from_file
    import threading

    load_flow_from_file(str(tmp_path / "flow.py")).run(lock=threading.Lock(), store=url)
    before = digest(db)
    result = cli("resume", "last")
    assert_one_clear_line(result, 1, "cannot be resumed", "'lock'")
    assert "Resuming" not in result.stdout
    assert digest(db) == before


# -- item 3: every JSON output is JSON ----------------------------------------------------------


NUMBER_FLOW = """
    from cairnflow import Flow, Parameter, task

    @task
    def echo(p):
        return p

    with Flow("numbers") as flow:
        echo(Parameter("p"))
"""


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_a_param_of_nan_or_infinity_leaves_every_json_output_valid(tmp_path, cli, raw):
    path = write_flow(tmp_path, NUMBER_FLOW)
    assert cli("run", path, "--param", f"p={raw}").exit_code == 0
    for args in (("runs", "show", "last"), ("runs", "ls"), ("runs", "history", "last"),
                 ("runs", "logs", "last"), ("runs", "result", "last", "echo-1")):
        result = cli(*args, "--json")
        assert result.exit_code == 0, result.stderr
        json.loads(result.stdout, parse_constant=pytest.fail)  # strict JSON
    assert json.loads(cli("runs", "show", "last", "--json").stdout)["parameters"] == {"p": raw}


def test_nan_values_from_python_are_shown_as_strings_in_json(cli, url):
    @task
    def echo(p):
        return p

    with Flow("numbers") as flow:
        echo(Parameter("p"))

    flow.run(p={"x": float("nan"), "y": [float("inf"), b"\x00"]}, store=url)
    shown = json.loads(cli("runs", "show", "last", "--json").stdout, parse_constant=pytest.fail)
    assert shown["parameters"] == {"p": {"x": "NaN", "y": ["Infinity", "b'\\x00'"]}}
    result = json.loads(cli("runs", "result", "last", "echo-1", "--json").stdout,
                        parse_constant=pytest.fail)
    assert result == {"x": "NaN", "y": ["Infinity", "b'\\x00'"]}


# -- item 7: a flow file that exits while it loads -------------------------------------------


@pytest.mark.parametrize("code", [0, 3])
def test_sys_exit_while_loading_is_one_line_and_a_failure(tmp_path, cli, db, code):
    path = write_flow(tmp_path, f"""
        import sys
        from cairnflow import Flow
        sys.exit({code})
    """)
    result = cli("run", path)
    assert_one_clear_line(result, 1, f"called sys.exit({code})", "while loading")
    assert not os.path.exists(db) or open_store(db, readonly=True).list_runs() == []


def test_resume_of_a_run_whose_file_now_exits_while_loading_is_one_line(tmp_path, cli, db):
    path = write_flow(tmp_path, """
        from cairnflow import Flow, task

        @task
        def boom():
            raise ValueError("x")

        with Flow("exits") as flow:
            boom()
    """)
    assert cli("run", path).exit_code == 1
    with open(path, "a") as f:
        f.write("\nimport sys\nsys.exit(0)\n")
    before = digest(db)
    assert_one_clear_line(cli("resume", "last"), 1, "called sys.exit(0)")
    assert digest(db) == before


# -- item 8: retry_delay as a number of seconds ----------------------------------------------


def test_a_float_retry_delay_means_seconds_and_retries(url):
    calls = []

    @task(max_retries=1, retry_delay=0.01)
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")
        return "ok"

    with Flow("flaky") as flow:
        flaky()

    assert flaky.retry_delay == timedelta(seconds=0.01)
    assert flow.run(store=url).is_successful()
    assert len(calls) == 2
    store = open_store(url, readonly=True)
    try:
        [run] = store.list_runs()
        [t] = store.get_task_runs(run.id)
        assert (t.state, t.attempts) == ("Success", 2)
    finally:
        store.close()
    history_ok(url)


@pytest.mark.parametrize("bad", ["5", [1], -1])
def test_a_retry_delay_of_another_type_is_refused_when_the_task_is_defined(bad):
    with pytest.raises((TypeError, ValueError), match="retry_delay"):
        task(max_retries=1, retry_delay=bad)(lambda: 1)


def test_the_nightly_report_example_runs_with_its_float_retry_delay(tmp_path, url):
    from cairnflow.runner.loading import load_flow_from_file

    source = (crashkit.REPO_DIR / "examples" / "nightly_report.py")
    if "retry_delay" not in source.read_text():
        pytest.skip("the example no longer retries")
    shutil.copy(source, tmp_path / "nightly.py")
    state = load_flow_from_file(str(tmp_path / "nightly.py")).run(store=url)
    store = open_store(url, readonly=True)
    try:
        [run] = store.list_runs()
        assert not [t for t in store.get_task_runs(run.id) if t.state == "Running"]
        assert run.state == state.name
    finally:
        store.close()
    history_ok(url)


# -- item 9: a Cached result is checkpointed -------------------------------------------------


def test_a_cached_result_is_checkpointed_and_not_run_again_on_resume(url):
    from cairnflow.runner.cache import CACHE

    calls = {"cached": 0, "last": 0}

    @task(cache_for=timedelta(hours=1))
    def cached():
        calls["cached"] += 1
        return 41

    @task
    def last(x):
        calls["last"] += 1
        if calls["last"] < 3:
            raise RuntimeError("fails twice")
        return x + 1

    with Flow("rel-cached") as flow:
        last(cached())

    assert flow.run(store=url).is_failed()  # cached() runs and is cached in-process
    assert flow.run(store=url).is_failed()  # cached() is Cached now
    assert calls["cached"] == 1
    store = open_store(url, readonly=True)
    try:
        second = store.list_runs()[0]
        [c] = [t for t in store.get_task_runs(second.id) if t.task_slug == "cached-1"]
        assert (c.state, c.has_result) == ("Cached", True)
    finally:
        store.close()
    CACHE._entries.clear()  # as in another process: only the store can give it back
    state = flow.resume(second.id, store=url)
    assert state.is_successful()
    assert calls["cached"] == 1  # taken from the store, not run again
    history_ok(url)


# -- item 11: pipes, directories, read-only copies ----------------------------------------------


def cairnflow(*args: str, cwd, env_home, shell_pipe: str | None = None):
    env = {**crashkit.child_env(env_home)}
    env.pop("FORCE_COLOR", None)
    command = [sys.executable, "-m", "cairnflow.cli", *args]
    if shell_pipe:
        line = " ".join(map(_quote, command)) + f" | {shell_pipe}"
        return subprocess.run(["bash", "-o", "pipefail", "-c", line], capture_output=True,
                              text=True, cwd=cwd, env=env, timeout=120)
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


MANY = """
    from cairnflow import Flow, task

    @task
    def item(i):
        return i

    with Flow("many") as flow:
        item.map(list(range(40)))
"""


def test_output_piped_into_head_ends_quietly_and_never_fails_the_run(tmp_path,
                                                                     cairnflow_home):
    write_flow(tmp_path, MANY)
    ran = cairnflow("run", "flow.py", cwd=tmp_path, env_home=cairnflow_home,
                    shell_pipe="head -1")
    assert ran.returncode == 0, ran.stderr  # pipefail: the run's own status is 0
    assert ran.stdout.count("\n") == 1
    assert "Error" not in ran.stderr and "Traceback" not in ran.stderr
    assert "BrokenPipe" not in ran.stderr
    shown = cairnflow("runs", "show", "last", "--all", cwd=tmp_path, env_home=cairnflow_home,
                      shell_pipe="head -3")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    store = open_store(f"sqlite:///{cairnflow_home / 'cairnflow.db'}", readonly=True)
    try:
        [run] = store.list_runs()
        assert run.state == "Success"
        assert len(store.get_task_runs(run.id)) == 42  # the list, the task, 40 children
    finally:
        store.close()


def test_a_directory_given_as_the_flow_file_is_reported_as_a_directory(tmp_path, cli):
    (tmp_path / "flows").mkdir()
    assert_one_clear_line(cli("run", str(tmp_path / "flows")), 1, "is a directory")


@pytest.fixture
def read_only_copy(tmp_path, url, db):
    """A store with one run, copied to a tmpfs then remounted read-only (root only)."""
    @task
    def one():
        return 1

    with Flow("copied") as flow:
        one()
    flow.run(store=url)
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        shutil.copy(db, mount / "cairnflow.db")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "cairnflow.db"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_read_commands_work_on_a_store_on_a_read_only_mount_and_run_says_why_not(
        tmp_path, read_only_copy):
    runner = make_runner()
    copy = str(read_only_copy)
    before = digest(copy)
    listed = runner.invoke(app, ["runs", "ls", "--json", "--db", copy])
    assert listed.exit_code == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["state"] == "Success"
    shown = runner.invoke(app, ["runs", "show", "last", "--db", copy])
    assert shown.exit_code == 0 and "one-1" in shown.stdout
    path = write_flow(tmp_path, NUMBER_FLOW)
    assert_one_clear_line(runner.invoke(app, ["run", path, "--param", "p=1", "--db", copy]),
                          1, "read-only")
    assert digest(copy) == before


# -- item 12: `last` is the run created last -----------------------------------------------------


def test_last_names_the_run_created_last_after_the_clock_stepped_back(cli, url):
    from cairnflow.statestore.base import FlowRunRecord
    from cairnflow.statestore.serialize import dump

    store = open_store(url)
    try:
        now = pendulum.now("UTC")
        for run_id, at in (("first-run", now), ("second-run", now.subtract(hours=1))):
            store.record_flow_run(FlowRunRecord(
                run_id, "clock", "h", {}, dump({}), None, None, None, 1, os.getpid(),
                "host", at))
    finally:
        store.close()
    result = cli("runs", "show", "last", "--json")
    assert json.loads(result.stdout)["id"] == "second-run"


# -- item 13: a long-lived reader sees a database created after it opened ---------------------


def test_a_reader_opened_before_the_database_existed_sees_it_once_created(tmp_path):
    path = tmp_path / "later.db"
    reader = open_store(f"sqlite:///{path}", readonly=True)
    try:
        assert reader.list_runs() == []
        assert not path.exists()

        @task
        def one():
            return 1

        with Flow("later") as flow:
            one()
        flow.run(store=f"sqlite:///{path}")
        [run] = reader.list_runs()
        assert run.state == "Success"
        assert [t.task_slug for t in reader.get_task_runs(run.id)] == ["one-1"]
    finally:
        reader.close()
