"""Shared fixtures: every test gets its own CAIRNFLOW_HOME, so the default
store is a fresh SQLite file under tmp_path and nothing touches ~/.cairnflow."""

from __future__ import annotations

import logging

import pytest

from cairnflow.runner import logs
from cairnflow.statestore.memory import MemoryStore


@pytest.fixture(autouse=True)
def cairnflow_home(tmp_path, monkeypatch):
    home = tmp_path / "cairnflow-home"
    monkeypatch.setenv("CAIRNFLOW_HOME", str(home))
    monkeypatch.delenv("CAIRNFLOW_DB_URL", raising=False)
    monkeypatch.delenv("CAIRNFLOW_DURABILITY", raising=False)
    return home


@pytest.fixture(autouse=True)
def _quiet_console_logs():
    """Keep run logs off the terminal (they are still stored)."""
    logs.install()
    console = logs.console_handler()
    previous = console.level
    console.setLevel(logging.WARNING)
    yield
    console.setLevel(previous)


@pytest.fixture
def memory_store():
    return MemoryStore()


def history(store, run_id=None, task_slug=None):
    """(slug, map_index, state) for every transition of a run (the latest by default)."""
    run_id = run_id or store.list_runs()[0].id
    return [(t.task_slug, t.map_index, t.state) for t in store.get_history(run_id, task_slug)]
