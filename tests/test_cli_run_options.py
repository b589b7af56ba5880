"""``cairnflow run`` options: ``--schedule``, ``-v`` / ``--log-level`` and
``CAIRNFLOW_LOG_LEVEL``, through Typer's runner (stdout not a terminal).

(The same options on a terminal, with worker processes: ``test_progress.py``.)"""

from __future__ import annotations

import json
import textwrap

import pytest

from cairnflow.cli import app
from test_cli import make_runner

SCHEDULED = """
from datetime import timedelta
import pendulum
from cairnflow import Flow, task, schedules, get_run_logger

@task
def tick():
    get_run_logger().info("tick")
    return 1

start = pendulum.now("UTC").add(seconds={start})
clock = schedules.clocks.IntervalClock(timedelta(seconds=2), start_date=start,
                                       end_date=start.add(seconds=2.5))
with Flow("ticker", schedule=schedules.Schedule(clocks=[clock])) as flow:
    tick()
"""

UNSCHEDULED = """
from cairnflow import Flow, task, get_run_logger

@task
def work():
    log = get_run_logger()
    log.debug("a detail")
    log.info("working")
    log.warning("careful")

with Flow("plain") as flow:
    work()
"""


@pytest.fixture
def cairnflow(monkeypatch):
    runner = make_runner()

    def run(*args: str, **env: str):
        monkeypatch.delenv("CAIRNFLOW_LOG_LEVEL", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = runner.invoke(app, list(args))
        result.returncode = result.exit_code
        return result
    return run


def write(tmp_path, source: str, name: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_schedule_runs_the_flow_at_each_scheduled_time_then_ends(tmp_path, cairnflow):
    # the file is loaded once, in this process: 1 s to start, then 2 s for a run even
    # on a busy machine (a time that passes during a run is not run late)
    flow = write(tmp_path, SCHEDULED.replace("{start}", "1"), "ticker.py")
    result = cairnflow("run", flow, "--schedule")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Running flow 'ticker' on its schedule; the first run is at ")
    assert sum(line.startswith("Run ") and line.endswith("started (attempt 1).")
               for line in lines) == 2
    assert sum(line.startswith("Next run at ") for line in lines) == 1
    assert "The schedule has no more runs." in lines
    runs = json.loads(cairnflow("runs", "ls", "--json").stdout)
    assert [r["state"] for r in runs] == ["Success", "Success"]


def test_without_schedule_a_scheduled_flow_runs_once_and_says_so(tmp_path, cairnflow):
    flow = write(tmp_path, SCHEDULED.replace("{start}", "3600"), "ticker.py")
    result = cairnflow("run", flow)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "Flow 'ticker' has a schedule; running it once now (--schedule runs it on its "
        "schedule).")
    assert len(json.loads(cairnflow("runs", "ls", "--json").stdout)) == 1


def test_schedule_on_a_flow_without_one_is_one_clear_line(tmp_path, cairnflow,
                                                          cairnflow_home):
    result = cairnflow("run", write(tmp_path, UNSCHEDULED, "plain.py"), "--schedule")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: flow 'plain' has no schedule: leave out --schedule to run it once"]
    assert not cairnflow_home.exists()


def log_lines(stderr: str) -> list[str]:
    """The live log lines, without their clock time."""
    return [line.split("  ", 1)[1] for line in stderr.splitlines()]


def test_by_default_only_warnings_are_shown_live_and_info_is_stored(tmp_path, cairnflow):
    result = cairnflow("run", write(tmp_path, UNSCHEDULED, "plain.py"))
    assert result.returncode == 0
    assert log_lines(result.stderr) == ["WARNING  work-1  careful"]
    logs = json.loads(cairnflow("runs", "logs", "last", "--task", "work-1", "--json").stdout)
    assert [e["message"] for e in logs] == ["working", "careful"]


@pytest.mark.parametrize("args, env", [
    (["-v"], {}),
    (["--log-level", "info"], {}),
    ([], {"CAIRNFLOW_LOG_LEVEL": "INFO"}),
])
def test_verbose_log_level_and_the_environment_show_info_records(tmp_path, cairnflow,
                                                                 args, env):
    result = cairnflow("run", write(tmp_path, UNSCHEDULED, "plain.py"), *args, **env)
    assert result.returncode == 0
    shown = log_lines(result.stderr)
    assert "INFO     work-1  working" in shown and "WARNING  work-1  careful" in shown
    assert not any("a detail" in line for line in shown)


def test_log_level_debug_shows_debug_records(tmp_path, cairnflow):
    result = cairnflow("run", write(tmp_path, UNSCHEDULED, "plain.py"), "--log-level", "DEBUG")
    assert "DEBUG    work-1  a detail" in log_lines(result.stderr)


@pytest.mark.parametrize("args, env, source", [
    (["--log-level", "loud"], {}, "--log-level"),
    ([], {"CAIRNFLOW_LOG_LEVEL": "chatty"}, "CAIRNFLOW_LOG_LEVEL"),
])
def test_a_bad_log_level_is_one_clear_line(tmp_path, cairnflow, cairnflow_home, args, env,
                                           source):
    result = cairnflow("run", write(tmp_path, UNSCHEDULED, "plain.py"), *args, **env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {source} ") and "DEBUG, INFO, WARNING" in line
    assert not cairnflow_home.exists()
