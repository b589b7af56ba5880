"""How commands open the store, without Typer (``cairnflow.cli.quick`` uses it too).

Read commands open the store read-only: they never create, migrate or change
a database (a database that does not exist yet reads as an empty store).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from cairnflow.statestore import StateStore, default_url, open_store
from cairnflow.statestore.postgres_policy import is_postgres_url
from cairnflow.statestore.sqlite import SQLiteStore, path_from_url

__all__ = ["reading", "writing", "database_exists", "READ_LOCK_SECONDS"]

READ_LOCK_SECONDS = 10.0
"""How long a read waits for a database another process keeps locked.

Readers of a WAL database are almost never blocked; when one is, a person at
a terminal is better served by an error after seconds than by the writer's
minute-long patience.
"""


@contextmanager
def reading(db: str | None) -> Iterator[StateStore]:
    """The store named by ``--db`` (or the default), opened read-only."""
    url = db or default_url()
    if is_postgres_url(url):
        store: StateStore = open_store(url, readonly=True)
    elif (path := path_from_url(url)) == ":memory:":  # an unknown scheme is a StoreError
        store = open_store(url, readonly=True)
    else:
        store = SQLiteStore(path, readonly=True, busy_timeout=READ_LOCK_SECONDS,
                            lock_retry=READ_LOCK_SECONDS)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def writing(db: str | None) -> Iterator[StateStore]:
    """The store named by ``--db`` (or the default), opened for writing."""
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def database_exists(db: str | None) -> bool:
    """Whether the database file is there (an in-memory or PostgreSQL one always is)."""
    url = db or default_url()
    if is_postgres_url(url):
        return True
    path = path_from_url(url)
    return path == ":memory:" or os.path.exists(path)
