"""The CLI as users run it: a real process (``python -m cairnflow.cli``), real exit
statuses, stdout that is not a terminal (plain progress lines), stderr kept apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

FLOW = """
from cairnflow import Flow, Parameter, task

@task
def square(x):
    return x * x

@task
def total(xs, fail):
    if fail:
        raise RuntimeError("asked to fail")
    return sum(xs)

with Flow("squares") as flow:
    fail = Parameter("fail", default=False)
    total(square.map([1, 2, 3]), fail)

if __name__ == "__main__":
    flow.run()
"""


@pytest.fixture
def flow_file(tmp_path) -> str:
    path = tmp_path / "squares.py"
    path.write_text(textwrap.dedent(FLOW))
    return str(path)


@pytest.fixture
def cairnflow(tmp_path, cairnflow_home):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "CAIRNFLOW_HOME": str(cairnflow_home)}
        env.pop("FORCE_COLOR", None)
        return subprocess.run([sys.executable, "-m", "cairnflow.cli", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)
    return run


def test_version(cairnflow):
    result = cairnflow("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("cairnflow ")


def test_run_prints_one_plain_line_per_finished_task_run_and_exits_0(cairnflow, flow_file):
    result = cairnflow("run", flow_file)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for i in range(3):
        assert f"square-1[{i}] Success Task run succeeded." in lines
    assert "total-1 Success Task run succeeded." in lines
    assert "\x1b[" not in result.stdout  # no colour, no cursor movement off a terminal
    assert any(line.startswith("Run ") and line.endswith(": Success - All reference tasks "
                                                         "succeeded.") for line in lines)
    assert result.stderr == ""  # the engine's console log is quiet while progress shows
    [run] = json.loads(cairnflow("runs", "ls", "--json").stdout)
    assert run["state"] == "Success"
    assert cairnflow("runs", "result", "last", "total-1").stdout == "14\n"


def test_run_of_a_failing_flow_exits_1_and_resume_exits_1_again(cairnflow, flow_file):
    result = cairnflow("run", flow_file, "--param", "fail=true")
    assert result.returncode == 1
    assert "total-1 Failed Error during execution of task: RuntimeError('asked to fail')" \
        in result.stdout
    assert "Resume it with: cairnflow resume " in result.stdout
    resumed = cairnflow("resume", "last")
    assert resumed.returncode == 1  # same parameters as the original run
    assert "square-1[0]" not in resumed.stdout  # succeeded before: not run again


def test_bad_param_exits_2_with_one_line_and_no_traceback(cairnflow, flow_file,
                                                         cairnflow_home):
    result = cairnflow("run", flow_file, "--param", "fail")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --param 'fail' is not KEY=VALUE (for example --param n=3)"]
    assert result.stdout == ""
    assert not cairnflow_home.exists()


def test_unknown_run_exits_1_with_one_line(cairnflow):
    result = cairnflow("runs", "show", "nope")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no run matches 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_ls_json_on_an_empty_store_prints_an_empty_list(cairnflow, cairnflow_home):
    result = cairnflow("runs", "ls", "--json")
    assert (result.returncode, result.stdout.strip()) == (0, "[]")
    assert not cairnflow_home.exists()


def test_unknown_option_is_a_usage_error(cairnflow):
    result = cairnflow("runs", "ls", "--colour")
    assert result.returncode == 2
    assert "--colour" in result.stderr


def test_run_with_the_processes_executor(cairnflow, flow_file):
    result = cairnflow("run", flow_file, "--executor", "processes")
    assert result.returncode == 0, result.stderr
    assert cairnflow("runs", "result", "last", "square-1", "--map-index", "2").stdout == "9\n"


SLEEPER = """
import pathlib, sys, time
from cairnflow import Flow, task

@task
def nap():
    pathlib.Path(__file__).with_suffix(".started").touch()
    time.sleep(120)

with Flow("nap") as flow:
    nap()
"""


def test_sigint_stops_a_run_started_by_a_shell_that_ignores_it(tmp_path, cairnflow_home):
    """`nohup cairnflow run ... &` and CI runners start the CLI with SIGINT ignored;
    SIGINT must still stop the run (the engine's own stop after a takeover is one)."""
    import signal
    import time

    path = tmp_path / "nap.py"
    path.write_text(textwrap.dedent(SLEEPER))
    env = {**os.environ, "CAIRNFLOW_HOME": str(cairnflow_home)}
    proc = subprocess.Popen([sys.executable, "-m", "cairnflow.cli", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    started = tmp_path / "nap.started"
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert started.exists(), proc.communicate(timeout=30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
