"""Files that call ``flow.run()`` at module level (every snippet of Prefect's
concept page does) under ``cairnflow run``: the file's own call runs, once, with
the command line's store, executor and progress; one run is recorded with the
file as its source; worker processes never run the flow again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cairnflow.statestore import open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = sorted(EXAMPLES.glob("seed_*.py"))
PARAMS = {"seed_07_imperative_flow.py": ["--param", "name=Marvin"]}

SCRIPT = """
from cairnflow import Flow, Parameter, task

@task
def double(x):
    return 2 * x

@task
def total(xs):
    return sum(xs)

with Flow("script-flow") as flow:
    n = Parameter("n", default=3)
    result = total(double.map([1, 2, n]))

state = flow.run()
assert state.is_successful()
print("total is", state.result[result].result)
"""


def _cli(home: Path, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CAIRNFLOW_HOME": str(home)}
    env.pop("CAIRNFLOW_DB_URL", None)
    return subprocess.Popen([sys.executable, "-m", "cairnflow.cli", *args], env=env,
                            cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _runs(home: Path):
    store = open_store(f"sqlite:///{home / 'cairnflow.db'}")
    try:
        return store.list_runs()
    finally:
        store.close()


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """``seed_runs(executor)``: every seed under `cairnflow run` with that executor,
    all at once (each with its own store) to keep the suite fast; started on first use,
    so a run that deselects one executor does not pay for it."""
    done: dict[str, dict] = {}

    def run_all(executor: str) -> dict:
        if executor not in done:
            procs = {}
            for path in SEEDS:
                home = tmp_path_factory.mktemp(f"{path.stem}-{executor}")
                extra = [] if executor == "default" else ["--executor", executor]
                procs[path.name] = (home, _cli(home, "run", str(path),
                                               *PARAMS.get(path.name, []), *extra,
                                               cwd=EXAMPLES.parent))
            done[executor] = {}
            for name, (home, proc) in procs.items():
                out, err = proc.communicate(timeout=180)
                done[executor][name] = (home, proc.returncode, out, err)
        return done[executor]

    return run_all


# Worker processes start slowly: the processes half runs with `pytest -m slow` (CI).
@pytest.mark.parametrize("executor", ["default", pytest.param("processes",
                                                              marks=pytest.mark.slow)])
@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_every_seed_runs_under_cairnflow_run_once_with_its_file_as_source(
        seed_runs, path, executor):
    home, code, out, err = seed_runs(executor)[path.name]
    assert code == 0, err
    assert "Success" in out
    (run,) = _runs(home)
    assert run.stored_state == "Success"
    assert run.source_file == str(path)


def test_a_script_with_a_module_level_run_is_run_once_by_cairnflow_run(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    home = tmp_path / "home"
    proc = _cli(home, "run", str(script), "--param", "n=10", "--executor", "processes",
                cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "total is 26" in out  # the file's own use of the state, with --param n=10
    (run,) = _runs(home)
    assert run.flow_name == "script-flow"
    assert run.source_file == str(script) and run.source_variable == "flow"
    assert run.parameters == {"n": 10}


def test_a_failing_script_run_resumes_from_its_file_without_running_it_twice(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("return sum(xs)",
                                                      "raise ValueError('bug')"))
    home = tmp_path / "home"
    proc = _cli(home, "run", str(script), cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1  # the run failed, then the file's assert stopped it
    assert "AssertionError" in err
    script.write_text(textwrap.dedent(SCRIPT))  # the fix
    proc = _cli(home, "resume", "last", cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "total is" not in out  # resume loads the file; its flow.run() is skipped
    (run,) = _runs(home)
    assert run.attempt == 2 and run.stored_state == "Success"


def test_python_file_py_still_runs_the_script_once(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "CAIRNFLOW_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("total is 12") == 1
    assert len(_runs(tmp_path / "home")) == 1
