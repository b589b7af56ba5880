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


# -- PostgreSQL -------------------------------------------------------------------
# The PostgreSQL store is tested against a real server: `.ci/run` starts one
# (`.ci/postgres.sh`) and exports its URL as CAIRNFLOW_TEST_PG_URL. Without it the
# PostgreSQL tests are skipped on a developer's machine, and fail under CI=true.


def pg_server_url() -> str:
    """The test server's URL; skip (or, under CI, fail) when there is none."""
    import os

    url = os.environ.get("CAIRNFLOW_TEST_PG_URL")
    if not url:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but CAIRNFLOW_TEST_PG_URL is unset: .ci/run starts "
                        "PostgreSQL with .ci/postgres.sh", pytrace=False)
        pytest.skip("CAIRNFLOW_TEST_PG_URL is unset (source .ci/postgres.sh to start a server)")
    return url


def _pg_conninfo(url: str) -> str:
    return "postgresql://" + url.partition("://")[2]


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_fresh_url():
    """Makes PostgreSQL URLs whose databases hold nothing yet (each a fresh schema on
    the test server, dropped after the test): ``pg_fresh_url()``."""
    import uuid

    import psycopg

    server = pg_server_url()
    made: list[str] = []

    def fresh() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_pg_conninfo(server), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return _with_schema(server, schema)

    yield fresh
    with psycopg.connect(_pg_conninfo(server), autocommit=True) as conn:
        for schema in made:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_empty_url(pg_fresh_url):
    """A PostgreSQL URL whose database holds nothing yet."""
    return pg_fresh_url()


@pytest.fixture(scope="session")
def _pg_session_schema():
    """One schema per test session with a current cairnflow schema in it, and an
    open connection to empty it between tests (far cheaper than DDL per test)."""
    import os

    import psycopg

    from cairnflow.statestore.models import metadata
    from cairnflow.statestore.postgres import PostgresStore

    server = pg_server_url()
    schema = f"s_{os.getpid()}"
    conn = psycopg.connect(_pg_conninfo(server), autocommit=True)
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"CREATE SCHEMA {schema}")
    url = _with_schema(server, schema)
    PostgresStore(url).close()
    tables = [t.name for t in reversed(metadata.sorted_tables) if t.name != "schema_version"]
    empty = "; ".join(f"DELETE FROM {schema}.{name}" for name in tables)
    yield url, conn, empty
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


@pytest.fixture
def pg_url(_pg_session_schema):
    """A PostgreSQL store URL on the test server whose cairnflow tables are empty."""
    url, conn, empty = _pg_session_schema
    conn.execute(empty)
    return url
