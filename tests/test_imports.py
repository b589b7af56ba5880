"""What a fresh process imports: only what the work at hand needs (issue 12, fixed costs).

Each case runs in a new interpreter and reports ``sys.modules`` after the work,
so these are facts about imports, not timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cairnflow.cli import app

HEAVY = ("sqlmodel", "sqlalchemy", "rich", "dask", "distributed", "starlette", "uvicorn",
         "jinja2", "typer", "pydantic", "multiprocessing", "croniter", "pendulum")

ONE_TASK_FLOW = """\
from cairnflow import Flow, task

@task
def one():
    return 1

with Flow("one") as flow:
    one()
"""


def _modules(code: str, tmp_path: Path, *argv: str, site: bool = True) -> set[str]:
    """Every module in ``sys.modules`` after ``code`` ran in a new process; with
    ``site=False`` under ``python -S`` (an editable install's finder, which ``site``
    imports, brings pathlib and urllib.parse into every process)."""
    report = textwrap.dedent(f"""
        import json, sys
        {textwrap.indent(textwrap.dedent(code), "        ").strip()}
        print(json.dumps(sorted(sys.modules)))
    """)
    env = {**os.environ, "CAIRNFLOW_HOME": str(tmp_path / "home")}
    env.pop("CAIRNFLOW_DB_URL", None)
    flags = []
    if not site:
        import site as site_module

        import cairnflow

        flags = ["-S"]
        env["PYTHONPATH"] = os.pathsep.join([
            os.path.dirname(os.path.dirname(cairnflow.__file__)),
            *site_module.getsitepackages(), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, *flags, "-c", report, *argv], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _loaded(code: str, tmp_path: Path, *argv: str) -> list[str]:
    """The top-level packages of HEAVY that ``code`` (run in a new process) imported."""
    return sorted({m.split(".")[0] for m in _modules(code, tmp_path, *argv)} & set(HEAVY))


def test_import_cairnflow_loads_none_of_the_heavy_packages(tmp_path):
    assert _loaded("import cairnflow", tmp_path) == []


def test_defining_a_flow_loads_none_of_them(tmp_path):
    (tmp_path / "one.py").write_text(ONE_TASK_FLOW)
    assert _loaded("import runpy; runpy.run_path('one.py')", tmp_path) == []


def test_every_public_name_is_there_after_a_bare_import(tmp_path):
    code = """
        import cairnflow
        names = {n: getattr(cairnflow, n) for n in cairnflow.__all__}
        from cairnflow import *
        from cairnflow.core import Flow as CoreFlow
        from cairnflow.context import Context
        assert names["Flow"] is Flow is CoreFlow and isinstance(context, Context)
        assert set(cairnflow.__all__) <= set(dir(cairnflow))
    """
    assert "sqlmodel" not in _loaded(code, tmp_path)


def test_executors_and_schedules_still_reachable_after_a_bare_import(tmp_path):
    code = """
        import cairnflow
        from cairnflow import schedules
        assert cairnflow.executors.LocalDaskExecutor(num_workers=2).num_workers == 2
        assert schedules.IntervalSchedule is cairnflow.schedules.IntervalSchedule
    """
    assert "croniter" in _loaded(code, tmp_path)  # imported when asked for, not before


def test_a_run_on_an_existing_store_loads_only_sqlite(tmp_path):
    (tmp_path / "one.py").write_text(ONE_TASK_FLOW)
    run = """
        import cairnflow.runner.loading as loading
        state = loading.load_flow_from_file(sys.argv[1]).run()
        assert state.is_successful(), state
    """
    first = _loaded(run, tmp_path, "one.py")  # creates the store: SQLModel builds it
    assert {"sqlmodel", "sqlalchemy"} <= set(first)
    assert _loaded(run, tmp_path, "one.py") == []  # the store exists and is current
    assert len(list((tmp_path / "home").glob("cairnflow.db"))) == 1
    # nor pathlib and urllib.parse (with ipaddress), for its default store; nor the
    # records a store reads back, or concurrent.futures, which LocalExecutor never uses
    assert _modules(run, tmp_path, "one.py", site=False) & {
        "pathlib", "urllib.parse", "ipaddress", "cairnflow.statestore.read_records",
        "concurrent.futures", "queue"} == set()


@pytest.fixture(scope="module")
def store_with_runs(tmp_path_factory):
    from cairnflow import Flow, task
    from cairnflow.statestore import open_store

    @task
    def one():
        return 1

    with Flow("one") as flow:
        one()
    path = tmp_path_factory.mktemp("runs") / "cairnflow.db"
    store = open_store(f"sqlite:///{path}")
    try:
        for _ in range(2):
            assert flow.run(store=store).is_successful()
    finally:
        store.close()
    return path


# Besides HEAVY (pendulum among them: the query API's times are stdlib datetimes),
# what `runs ls --json` reads the store without: the graph, loggers, pickle, uuid
# (with platform) and the records of queries and orchestration.
NOT_FOR_RUNS_LS = {*HEAVY} | {
    "cairnflow.core", "logging", "pickle", "uuid", "platform",
    "cairnflow.statestore.orch_records", "cairnflow.statestore.query_records",
}


def test_runs_ls_json_loads_only_what_reading_the_store_needs(store_with_runs, tmp_path):
    code = """
        from cairnflow.cli import main
        sys.argv = ["cairnflow", "runs", "ls", "--json", "--db", sys.argv[1]]
        main()
    """
    assert _modules(code, tmp_path, str(store_with_runs)) & NOT_FOR_RUNS_LS == set()


@pytest.mark.parametrize("args", [
    ["runs", "ls", "--json", "--limit", "1"],
    ["runs", "ls", "--flow=one", "--state", "success", "--json"],
    ["runs", "ls", "--json", "--flow", "other"],
    ["runs", "ls"],
    ["runs", "ls", "--state", "failed"],
    ["runs", "show", "last", "--json"],
    ["runs", "show", "last", "--all", "--json"],
])
def test_read_json_commands_print_what_the_typer_command_prints_without_typer(
        store_with_runs, tmp_path, args):
    db = ["--db", str(store_with_runs)]
    code = """
        from cairnflow.cli import main
        sys.argv = ["cairnflow", *sys.argv[1:]]
        main()
    """
    env = {**os.environ}
    report = textwrap.dedent(code) + "\nimport json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'pydantic', 'sqlmodel'})))\n"
    done = subprocess.run([sys.executable, "-c", "import sys\n" + report, *args, *db],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    *printed, loaded = done.stdout.splitlines()
    assert json.loads(loaded) == []
    expected = CliRunner().invoke(app, [*args, *db])
    assert expected.exit_code == 0
    assert "\n".join(printed) + "\n" == expected.output
    if "--json" not in args:
        lines = expected.output.splitlines()
        assert lines[0].split()[:3] == ["id", "flow", "state"]
        assert len(lines) == (2 if "failed" in args else 3), expected.output
        return
    shown = json.loads(expected.output)
    if args[1] == "show":
        assert (shown["flow_name"], [t["slug"] for t in shown["tasks"]]) == ("one", ["one-1"])
        return
    assert len(shown) == {"1": 1, "other": 0}.get(args[-1], 2)
    assert all(r["flow_name"] == "one" for r in shown)


@pytest.mark.parametrize("args, status, says", [
    (["runs", "ls", "--json", "--state", "bogus"], 2, "is not a state"),
    (["runs", "ls", "--json", "--limit", "x"], 2, "--limit"),
    (["runs", "ls", "--json", "--nope"], 2, "No such option"),
    (["runs", "ls", "--json", "--help"], 0, "List runs"),
    (["runs", "show", "nosuchrun", "--json"], 1, "nosuchrun"),
    (["runs", "show", "--json"], 2, "Missing argument"),
])
def test_what_the_quick_path_does_not_understand_is_typers_to_report(
        store_with_runs, args, status, says):
    done = subprocess.run([sys.executable, "-m", "cairnflow.cli", *args, "--db",
                           str(store_with_runs)], capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_version_is_printed_without_typer(tmp_path):
    code = """
        from cairnflow.cli import main
        sys.argv = ["cairnflow", "--version"]
        main()
    """
    report = textwrap.dedent(code) + "\nprint('typer' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", "import sys\n" + report],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed, loaded = done.stdout.splitlines()
    assert printed == CliRunner().invoke(app, ["--version"]).output.strip()
    assert printed.startswith("cairnflow ") and loaded == "False"
