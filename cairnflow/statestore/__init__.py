"""The checkpoint store: where every state transition of every run is recorded.

``open_store()`` opens the store named by a URL, ``CAIRNFLOW_DB_URL``, or the
default ``$CAIRNFLOW_HOME/cairnflow.db`` (``CAIRNFLOW_HOME`` defaults to
``~/.cairnflow``): a SQLite file, or a PostgreSQL database for a store several
machines share (``postgresql+psycopg://...``, the ``cairnflow[postgres]`` extra).

Example:
    >>> import os, tempfile
    >>> from cairnflow.statestore import open_store
    >>> store = open_store(f"sqlite:///{tempfile.mkdtemp()}/cairnflow.db")
    >>> store.list_runs()
    []
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cairnflow.statestore import base
from cairnflow.statestore.base import FlowRunRecord, LogEntry, StateStore, Transition
from cairnflow.statestore.postgres_policy import is_postgres_url
from cairnflow.statestore.sqlite import SQLiteStore, path_from_url

if TYPE_CHECKING:
    from pathlib import Path

    from cairnflow.statestore.read_records import FlowInfo, FlowRunInfo, ResumeData, TaskRunInfo

__all__ = [
    "StateStore", "MemoryStore", "SQLiteStore", "open_store", "default_url",
    "cairnflow_home", "FlowRunRecord", "Transition", "LogEntry", "FlowRunInfo",
    "TaskRunInfo", "FlowInfo", "ResumeData",
]


def __getattr__(name: str) -> Any:
    # imported on first use: a run on SQLite never needs them
    if name == "MemoryStore":
        from cairnflow.statestore.memory import MemoryStore

        return MemoryStore
    if name in base.READ_RECORDS:
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cairnflow_home() -> Path:
    """``$CAIRNFLOW_HOME``, or ``~/.cairnflow``; not created here."""
    from pathlib import Path

    return Path(_home_text())


def _home_text() -> str:
    """``cairnflow_home()`` as text, made without pathlib (a run's process needs no
    pathlib, with urllib.parse and ipaddress, for its default store)."""
    home = os.environ.get("CAIRNFLOW_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cairnflow")
    return os.path.expanduser(home)


def default_url() -> str:
    """``$CAIRNFLOW_DB_URL``, else ``sqlite:///$CAIRNFLOW_HOME/cairnflow.db``."""
    return os.environ.get("CAIRNFLOW_DB_URL") or _home_url()


def open_store(url: str | None = None, *, readonly: bool = False) -> StateStore:
    """Open the checkpoint store named by ``url`` (default: ``default_url()``).

    This is the one place a store is chosen, by the URL's scheme.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
            ``sqlite://`` or ``:memory:`` (in memory, gone with the store), or a
            plain filesystem path: a ``SQLiteStore``.
            ``postgresql+psycopg://user:password@host:port/dbname`` (or
            ``postgresql://``, ``postgres://``): a ``PostgresStore``. Any other
            scheme is a ``StoreError``.
        readonly: open for reading only (what the CLI's read commands do): the
            file is never changed, and a database that does not exist yet
            reads as an empty store.

    Returns:
        The store. A writer creates ``$CAIRNFLOW_HOME`` for the default
        database, and the database's schema, if they do not exist yet.

    Raises:
        StoreError: an unknown scheme, a directory, a file or database that is
            not a cairnflow store, or a PostgreSQL server that cannot be reached.
        SchemaVersionError: the database was written by a newer cairnflow.
    """
    url = url or default_url()
    if is_postgres_url(url):
        from cairnflow.statestore.postgres import PostgresStore

        return PostgresStore(url, readonly=readonly)
    path = path_from_url(url)
    if not readonly and path != ":memory:" and url == _home_url():
        os.makedirs(_home_text(), exist_ok=True)
    return SQLiteStore(path, readonly=readonly)


def _home_url() -> str:
    return f"sqlite:///{os.path.join(os.path.abspath(_home_text()), 'cairnflow.db')}"
