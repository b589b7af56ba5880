"""The names people see are the names they can type: every task run label any
command prints (``slug``, or ``slug[i]`` for a mapped child) is accepted back by
``runs result``, ``runs history --task`` and ``runs logs --task``."""

from __future__ import annotations

import json
import re

import pytest

from cairnflow.statestore.base import split_task_label

from test_cli import assert_one_clear_line, cli, db, err, write_flow  # noqa: F401 (fixtures)

FLOW = """
from cairnflow import Flow, task, get_run_logger

@task
def fetch(region):
    get_run_logger().info("fetched %s", region)
    return {"region": region, "orders": 3}

@task
def total(batch):
    if batch["region"] == "eu":
        raise KeyError("amount")
    return batch["orders"]

@task
def report(totals):
    return sum(totals)

with Flow("nightly") as flow:
    report(total.map(fetch.map(["us", "eu", "ap"])))
"""



@pytest.fixture
def failed_run(tmp_path, cli):
    result = cli("run", write_flow(tmp_path, FLOW))
    assert result.exit_code == 1
    return result


def printed_labels(cli, run_output: str) -> set[str]:
    """Every task run label that run, show, history and logs print: the run's task
    runs (from ``runs show --json``) and any ``name[i]`` word, as they appear."""
    shown = json.loads(cli("runs", "show", "last", "--json").stdout)["tasks"]
    known = {t["slug"] if t["map_index"] is None else f"{t['slug']}[{t['map_index']}]"
             for t in shown}
    texts = [run_output, cli("runs", "show", "last", "--all").stdout,
             cli("runs", "history", "last").stdout, cli("runs", "logs", "last").stdout]
    printed = {word for text in texts for word in text.split()
               if word in known or re.fullmatch(r"\S+\[\d+\]", word)}
    assert known <= printed  # every task run is printed somewhere, by its label
    return printed


def test_every_printed_label_is_accepted_back_by_history_logs_and_result(cli, failed_run):
    labels = printed_labels(cli, failed_run.stdout)
    assert {"fetch-1[0]", "fetch-1[2]", "total-1[1]", "total-1", "Constant[list]-1"} <= labels
    shown = {(t["slug"], t["map_index"]): t
             for t in json.loads(cli("runs", "show", "last", "--json").stdout)["tasks"]}
    for label in sorted(labels):
        slug, index = split_task_label(label)
        history = cli("runs", "history", "last", "--task", label, "--json")
        assert history.exit_code == 0, (label, err(history))
        rows = json.loads(history.stdout)
        assert rows and all(r["task"] == slug for r in rows), label
        if index is not None:
            assert {r["map_index"] for r in rows} == {index}, label
        logs = cli("runs", "logs", "last", "--task", label)
        assert logs.exit_code == 0, (label, err(logs))
        if shown[(slug, index)]["has_result"]:
            result = cli("runs", "result", "last", label)
            assert result.exit_code == 0, (label, err(result))


def test_a_mapped_child_by_slug_and_index_equals_map_index(cli, failed_run):
    by_label = cli("runs", "result", "last", "fetch-1[2]", "--json")
    by_option = cli("runs", "result", "last", "fetch-1", "--map-index", "2", "--json")
    assert by_label.exit_code == 0 and by_label.stdout == by_option.stdout
    assert json.loads(by_label.stdout) == {"region": "ap", "orders": 3}


def test_history_and_logs_of_one_child_are_only_that_childs(cli, failed_run):
    rows = json.loads(cli("runs", "history", "last", "--task", "total-1[1]", "--json").stdout)
    assert {(r["task"], r["map_index"]) for r in rows} == {("total-1", 1)}
    assert [r["state"] for r in rows][-1] == "Failed"
    logs = cli("runs", "logs", "last", "--task", "fetch-1[1]").stdout.splitlines()
    assert len(logs) == 1 and logs[0].endswith("fetch-1[1]  fetched eu")


def test_the_engines_failure_record_names_the_child_as_it_is_typed(cli, failed_run):
    logs = cli("runs", "logs", "last", "--task", "total-1[1]").stdout
    assert "Task total-1[1] failed: KeyError('amount')" in logs


@pytest.mark.parametrize("args, fragments", [
    (["runs", "result", "last", "fetch-1[9]"], ["no mapped child 9", "0 to 2"]),
    (["runs", "history", "last", "--task", "fetch-1[9]"], ["no mapped child 9"]),
    (["runs", "logs", "last", "--task", "report-1[0]"], ["'report-1'", "not mapped"]),
    (["runs", "result", "last", "fetch-1[1]", "--map-index", "2"], ["mapped child 1",
                                                                   "--map-index says 2"]),
    (["runs", "result", "last", "fetch-1"], ["is mapped", "fetch-1[N]"]),
    (["runs", "logs", "last", "--task", "nope-1[0]"], ["no task 'nope-1'"]),
])
def test_a_wrong_child_is_one_clear_line(cli, failed_run, db, args, fragments):
    from test_cli import sha256
    before = sha256(db)
    result = cli(*args)
    assert_one_clear_line(result, 2 if "--map-index" in args else 1, *fragments)
    assert sha256(db) == before
