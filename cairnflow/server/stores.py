"""How the long-lived server holds the store: one reader, one writer opened on demand.

The server may start before anything was ever recorded: its reader then sees
an empty store, and must see the database once a first ``flow.run()`` or
``register`` creates it (the reader is reopened once the database has its
schema; until then each request looks again, which costs one small read). The writer (for the Run button, Cancel, Resume,
Delete) is opened at the first write, so a server that is only looked at
never creates or migrates a database.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from cairnflow.statestore import StateStore, default_url, open_store
from cairnflow.statestore import sqlite_policy as policy
from cairnflow.statestore.postgres_policy import is_postgres_url
from cairnflow.statestore.sqlite import path_from_url

__all__ = ["Stores"]


class Stores:
    """The server's reader and writer over one store URL.

    Args:
        url: the store's URL (default: ``default_url()``).
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        # A bad URL fails at start, not per request. PostgreSQL has no file to wait
        # for: its read-only store notices a schema created after it opened.
        self.path = None if is_postgres_url(self.url) else path_from_url(self.url)
        self._lock = threading.Lock()
        self._reader: StateStore | None = None
        self._reader_saw_schema = False
        self._writer: StateStore | None = None

    def reader(self) -> StateStore:
        """The read-only store, reopened once the database file has appeared."""
        with self._lock:
            if self.path == ":memory:":
                return self._writer_locked()
            if self._reader is not None and not self._reader_saw_schema and self._has_schema():
                self._reader.close()
                self._reader = None
            if self._reader is None:
                saw = self._has_schema()
                self._reader = open_store(self.url, readonly=True)
                self._reader_saw_schema = saw
            return self._reader

    def _has_schema(self) -> bool:
        """Whether the database file exists and a writer has committed its schema."""
        if self.path is None:
            return True
        if not os.path.exists(self.path):
            return False
        try:
            return policy.probe_schema_version(self.path, busy_timeout=5.0) is not None
        except sqlite3.Error:
            return False  # being created right now: look again at the next request

    def writer(self) -> StateStore:
        """The store opened for writing (created and migrated if need be)."""
        with self._lock:
            return self._writer_locked()

    def _writer_locked(self) -> StateStore:
        if self._writer is None:
            self._writer = open_store(self.url)
        return self._writer

    def close(self) -> None:
        """Close both stores."""
        with self._lock:
            for store in (self._reader, self._writer):
                if store is not None:
                    store.close()
            self._reader = self._writer = None
