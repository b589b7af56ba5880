"""Deleting with care (``runs rm``, ``runs prune``) and finding runs (``runs ls``
filters). Runs are written straight into a fresh database file; the prompts are
checked on a real pseudo-terminal, and their absence without one."""

from __future__ import annotations

import json
import os

import pendulum
import pytest

from ptykit import cairnflow_argv, run_in_pty
from test_cli import assert_one_clear_line, cli, db, err, record, sha256  # noqa: F401

NOW = pendulum.now("UTC")


@pytest.fixture
def store_of_runs(db, dead_pid):
    """Six finished runs of two flows at known ages, and one run still going."""
    for name, flow, days, state in [
        ("etl-old-failed", "etl", 40, "Failed"), ("etl-old-ok", "etl", 35, "Success"),
        ("etl-mid", "etl", 10, "Success"), ("etl-new", "etl", 1, "Failed"),
        ("rep-old", "report", 50, "Success"), ("rep-new", "report", 2, "Success"),
    ]:
        record(db, name, flow=flow, at=NOW.subtract(days=days), state=state)
    record(db, "etl-live", flow="etl", at=NOW.subtract(days=60))  # this process: alive
    return db


@pytest.fixture(scope="module")
def dead_pid():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def ids(cli, *args):
    result = cli("runs", "ls", "--limit", "0", "--json", *args)
    assert result.exit_code == 0, err(result)
    return [r["id"] for r in json.loads(result.stdout)]


# -- prune ----------------------------------------------------------------------------


def test_prune_dry_run_lists_what_it_would_delete_and_deletes_nothing(cli, store_of_runs):
    before = sha256(store_of_runs)
    result = cli("runs", "prune", "--older-than", "30d", "--dry-run")
    assert result.exit_code == 0, err(result)
    listed = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert listed == ["etl-old-", "etl-old-", "rep-old"]  # short ids, newest first
    assert result.stdout.splitlines()[-1].startswith("Would remove 3 finished runs started "
                                                     "before ")
    assert sha256(store_of_runs) == before
    assert len(ids(cli)) == 7


def test_prune_by_flow_state_and_keep(cli, store_of_runs):
    assert cli("runs", "prune", "--older-than", "30d", "--flow", "etl", "--state",
               "failed").stdout.startswith("Removed 1 finished run started before ")
    assert "etl-old-failed" not in ids(cli)
    result = cli("runs", "prune", "--keep", "1", "--flow", "etl")
    assert result.stdout.strip() == "Removed 2 finished runs."  # etl-new is kept
    assert sorted(ids(cli)) == ["etl-live", "etl-new", "rep-new", "rep-old"]
    assert cli("runs", "prune", "--keep", "1").stdout.strip() == "Removed 1 finished run."
    assert sorted(ids(cli)) == ["etl-live", "etl-new", "rep-new"]


def test_prune_never_deletes_a_run_under_way(cli, store_of_runs):
    cli("runs", "prune", "--older-than", "1m")
    assert ids(cli) == ["etl-live"]


@pytest.mark.parametrize("args, fragments", [
    ([], ["--older-than DURATION, --keep N"]),
    (["--older-than", "30 days"], ["not a duration"]),
    (["--keep", "2", "--state", "fine"], ["--state 'fine' is not a state"]),
])
def test_prune_bad_input_is_one_clear_line_and_changes_nothing(cli, store_of_runs, args,
                                                              fragments):
    before = sha256(store_of_runs)
    assert_one_clear_line(cli("runs", "prune", *args), 2, *fragments)
    assert sha256(store_of_runs) == before


# -- prompts ----------------------------------------------------------------------------


def test_without_a_terminal_nothing_asks(cli, store_of_runs):
    result = cli("runs", "rm", "etl-mid", "etl-new", "rep-new")
    assert result.exit_code == 0 and result.stdout.strip() == "Removed 3 runs."


@pytest.mark.parametrize("command", [["runs", "rm", "etl-mid", "etl-new"],
                                     ["runs", "prune", "--older-than", "5d"]])
def test_on_a_terminal_deleting_several_runs_asks_and_no_deletes_nothing(store_of_runs,
                                                                         command):
    before = sha256(store_of_runs)
    result = run_in_pty(cairnflow_argv(*command, "--db", store_of_runs), prompt="[y/N]",
                        answer="n\n")
    assert result.returncode == 1, result.plain
    assert "Delete these " in result.plain and "Error: nothing was deleted" in result.plain
    assert sha256(store_of_runs) == before


def test_on_a_terminal_yes_deletes_and_dash_dash_yes_does_not_ask(store_of_runs):
    asked = run_in_pty(cairnflow_argv("runs", "rm", "etl-mid", "etl-new", "--db",
                                      store_of_runs), prompt="[y/N]", answer="y\n")
    assert asked.returncode == 0 and "Removed 2 runs." in asked.plain
    unasked = run_in_pty(cairnflow_argv("runs", "prune", "--older-than", "30d", "--yes",
                                        "--db", store_of_runs))
    assert unasked.returncode == 0, unasked.plain
    assert "[y/N]" not in unasked.plain and "Removed 3 finished runs" in unasked.plain
    one = run_in_pty(cairnflow_argv("runs", "rm", "rep-new", "--db", store_of_runs))
    assert "[y/N]" not in one.plain and "Removed 1 run." in one.plain  # one run: no question


# -- finding runs ------------------------------------------------------------------------------


def test_ls_since_until_flow_and_state(cli, store_of_runs):
    assert ids(cli, "--since", "3d") == ["etl-new", "rep-new"]
    assert ids(cli, "--since", "45d", "--until", "30d") == ["etl-old-ok", "etl-old-failed"]
    assert ids(cli, "--since", "3d", "--flow", "etl") == ["etl-new"]
    assert ids(cli, "--until", "20d", "--state", "success") == ["etl-old-ok", "rep-old"]
    day = NOW.subtract(days=10).in_timezone(pendulum.local_timezone()).to_date_string()
    assert "etl-mid" in ids(cli, "--since", day, "--until", "5d")
    table = cli("runs", "ls", "--since", "2d")
    assert table.exit_code == 0 and "etl-new" in table.stdout


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_ls_with_a_bad_time_is_one_clear_line(cli, store_of_runs, option):
    assert_one_clear_line(cli("runs", "ls", option, "last tuesday"), 2, "is not a time",
                          "2d")
