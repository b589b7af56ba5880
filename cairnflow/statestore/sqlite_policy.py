"""The one SQLite policy: how cairnflow opens, locks, retries and upgrades a database.

Everything that decides how SQLite is used lives here, so it can be read in
one place:

* WAL journal, so readers never block the writer and several processes can
  share one database.
* ``synchronous=NORMAL`` (survives any crash of the process) unless
  ``CAIRNFLOW_DURABILITY=full`` asks for ``FULL`` (survives power loss too).
* The WAL is checkpointed every 16 MiB (``WAL_CHECKPOINT_BYTES``), not every
  1,000 pages: an eighth of the checkpoints a run of small commits would make.
  It is truncated back to 64 MiB after a checkpoint if a reader made it grow
  past that, and removed when the last connection closes.
* 2 KiB pages (``PAGE_SIZE``) for a new database, not SQLite's 4 KiB: a
  task's commit writes about three pages (one per table it appends to), so a
  commit writes 7 KB instead of 13 KB.
* ``foreign_keys=ON`` (flow_run -> flow). The tables a run owns are deleted
  with it by the store, by key range (see ``cairnflow.statestore.models``).
* A busy timeout of seconds, and every write transaction opened with
  ``BEGIN IMMEDIATE`` on a connection in autocommit mode (Python's implicit
  transactions are off), so a writer takes the write lock up front instead of
  failing half-way when another process commits first.
* "database is locked" / "busy" errors retried with exponential backoff and
  jitter within a bounded budget, then ``StoreLockedError``.
* Schema versioning: a newer database is refused before a single byte of it
  is written; an older one is upgraded by ordered migration steps.
* Read-only connections (``mode=ro`` and ``query_only``) for readers: reading
  never changes the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cairnflow.exceptions import SchemaVersionError, StoreError, StoreLockedError

__all__ = [
    "SCHEMA_VERSION", "MIGRATIONS", "BUSY_TIMEOUT_SECONDS", "LOCK_RETRY_SECONDS",
    "PAGE_SIZE", "WAL_CHECKPOINT_BYTES", "WAL_LIMIT_BYTES",
    "synchronous_mode", "connect", "enable_wal", "is_busy", "retrying", "in_transaction",
    "probe_schema_version", "check_schema_readable", "ensure_schema", "on_read_only_media",
]

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The schema this code writes and reads."""


def _migrate_to_2(cur: sqlite3.Cursor) -> None:
    """Schema 2 is schema 1 plus columns and tables only (nothing renamed or
    dropped): create what ``models`` defines and the database lacks.

    Schema 2 adds ``flow_run.process_start`` (liveness by pid and start time)
    and the tables later features of this release define in ``models``.
    """
    _add_missing(cur)


MIGRATIONS: dict[int, Callable[[sqlite3.Cursor], None]] = {2: _migrate_to_2}
"""Step ``n`` upgrades a database at schema ``n - 1`` to schema ``n``.

Each step runs inside the writer's ``BEGIN IMMEDIATE`` transaction together
with the version bump, so an upgrade is all or nothing. A new database is
created at ``SCHEMA_VERSION`` directly from ``cairnflow.statestore.models``.
"""

BUSY_TIMEOUT_SECONDS = 30.0
"""How long SQLite itself waits for a lock before reporting "busy"."""

LOCK_RETRY_SECONDS = 60.0
"""How long a store keeps retrying a locked database before giving up."""

PAGE_SIZE = 2048
"""The page size of a new database (an existing one keeps its own).

A task's commit appends to three tables, one page each, and the WAL gets each
page whole: on ``benchmarks/store.py`` 2 KiB pages made the durable cost of a
task ~7% lower than 4 KiB ones (1 KiB: no better than 2 KiB). The price is in
results that span many pages: storing a 100 KB result took ~20% longer, a 1 MB
one ~35% (results over ``LARGE_RESULT_BYTES`` go to files). Reads of the CLI
were unchanged within noise."""

WAL_CHECKPOINT_BYTES = 16 << 20
"""A writer checkpoints the WAL into the database once it holds this much (16 MiB).

SQLite's default is 1,000 pages (2 MiB): with a task's commit writing about
7 KB, that is a checkpoint (two fsyncs, under ``synchronous=NORMAL`` the only
ones) every ~300 tasks; at 16 MiB, every ~2,400. Durability is
unchanged: a commit is in the WAL, whole, when it returns, and the WAL is
replayed after a crash of the process. (Under ``NORMAL`` the WAL is synced only
by checkpoints, so a power loss may lose the commits since the last one, up to
this much; ``FULL`` syncs every commit.)"""

WAL_LIMIT_BYTES = 64 << 20
"""After a checkpoint, a WAL that grew past this (a reader kept it from being
reset) is truncated back to it; the WAL is removed when the last connection closes."""

_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (named in the sqlite3 module from 3.11 only)


def synchronous_mode() -> str:
    """``FULL`` when ``CAIRNFLOW_DURABILITY=full``, else ``NORMAL``."""
    return "FULL" if os.environ.get("CAIRNFLOW_DURABILITY", "").lower() == "full" else "NORMAL"


def bind_none_and_bytes_directly() -> None:
    """Register sqlite3 adapters that give None and ``bytes`` back as they are.

    The sqlite3 module binds only exact int, float, str and bytearray values
    directly; any other value (None, bytes) goes through its adaptation protocol,
    whose failed ``__adapt__`` and ``__conform__`` lookups each format an
    AttributeError and drop it: about 0.8 µs a parameter, and every task run's
    batch binds several (NULL columns, the result's bytes). With these adapters
    the registry answers at once, with the same value, so nothing stored
    changes, for this store or anyone else's sqlite3 in the process. An adapter
    a program registered itself is left in place.
    """
    for kind, same in ((type(None), {}.get), (bytes, bytes)):  # {}.get(None) is None
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, same)


bind_none_and_bytes_directly()


_URI_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def uri_quote(path: str) -> str:
    """``urllib.parse.quote(path)``: every character but ASCII letters, digits and
    ``_.-~/`` %-escaped as its UTF-8 bytes; without importing urllib.parse (and
    ipaddress) into every run's process."""
    return "".join(c if c in _URI_SAFE else "".join(f"%{b:02X}" for b in c.encode())
                   for c in path)


def connect(path: str, *, readonly: bool,
            busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    """Open ``path`` (or ``:memory:``) with cairnflow's pragmas applied.

    The connection is in autocommit mode: callers open transactions explicitly
    with ``in_transaction``. It may be shared between threads under a lock.
    """
    if path == ":memory:":
        target = ":memory:"
    elif readonly and on_read_only_media(path):
        # A copy on a read-only mount: nothing can write it, and SQLite could not
        # make the WAL's shared-memory file beside it, so open it as immutable.
        target = f"file:{uri_quote(path)}?mode=ro&immutable=1"
    else:
        target = f"file:{uri_quote(path)}?mode={'ro' if readonly else 'rwc'}"
    conn = sqlite3.connect(target, uri=True, isolation_level=None,
                           check_same_thread=False, timeout=busy_timeout)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            # Takes effect only if this connection creates the database.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {synchronous_mode()}")
    except BaseException:
        conn.close()
        raise
    return conn


def on_read_only_media(path: str) -> bool:
    """Whether ``path``'s directory cannot be written (a read-only mount)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a writer's database to WAL (persistent; a no-op once set), with its
    checkpoint size (``WAL_CHECKPOINT_BYTES``) and size limit (``WAL_LIMIT_BYTES``)."""
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, WAL_CHECKPOINT_BYTES // page_size)}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}").fetchone()


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means another connection holds a lock we need."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retrying(fn: Callable[..., T], *args: Any, budget: float, where: str) -> T:
    """Call ``fn(*args)``; while the database is locked, retry with backoff and jitter.

    Each try already waits up to the busy timeout inside SQLite; the retries
    cover the cases SQLite reports "busy" without waiting (WAL recovery, a
    lock held across the busy handler). Raises ``StoreLockedError`` once
    ``budget`` seconds have passed.
    """
    deadline = time.monotonic() + budget
    delay = 0.005
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreLockedError(
                    f"the cairnflow database {where} stayed locked by another process "
                    f"for {budget:g} s ({exc}): wait for it to finish, or stop it"
                ) from exc
            import random  # only once the database was found locked

            time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, 1.0)


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Cursor], T],
                   write: bool) -> T:
    """Run ``fn(cursor)`` in one transaction; commit, or roll back and re-raise.

    Writers use ``BEGIN IMMEDIATE`` (take the write lock now, wait for it
    under the busy timeout); readers a deferred ``BEGIN`` for a consistent
    snapshot across several queries.
    """
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = fn(cur)
        cur.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return result


# -- schema versioning ------------------------------------------------------------


def _stored_version(cur: sqlite3.Cursor) -> int | None:
    """The database's schema version; None for an empty database.

    Raises ``StoreError`` for a SQLite file that holds someone else's tables.
    """
    names = {row[0] for row in cur.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in names:
        if names - {"sqlite_sequence"}:
            raise StoreError("this SQLite database is not a cairnflow store "
                             f"(it has tables {', '.join(sorted(names))})")
        return None
    row = cur.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        raise StoreError("this cairnflow database has no schema version: it is damaged")
    return int(row[0])


def refuse_newer(version: int | None, where: str) -> None:
    """Refuse (``SchemaVersionError``) a database written by a newer cairnflow."""
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the cairnflow database {where} was written by a newer cairnflow (schema "
            f"{version}, this one reads up to {SCHEMA_VERSION}): upgrade cairnflow")


def probe_schema_version(path: str, busy_timeout: float) -> int | None:
    """Read the schema version through a read-only connection; refuse a newer one.

    A writer calls this before any pragma or DDL, so that a database written by
    a newer cairnflow is left exactly as it was.
    """
    conn = connect(path, readonly=True, busy_timeout=busy_timeout)
    try:
        version = in_transaction(conn, _stored_version, write=False)
    finally:
        conn.close()
    refuse_newer(version, path)
    return version


def check_schema_readable(cur: sqlite3.Cursor, where: str) -> bool:
    """For a reader: True when the database holds a current schema, False if empty."""
    return readable_version(_stored_version(cur), where)


def readable_version(version: int | None, where: str) -> bool:
    """A reader's rule on a stored schema version (any store): True when current,
    False when there is no schema; a newer or older one is refused."""
    refuse_newer(version, where)
    if version is not None and version < SCHEMA_VERSION:
        raise StoreError(
            f"the cairnflow database {where} has schema {version}, older than this "
            f"cairnflow's {SCHEMA_VERSION}: run any flow against it once to upgrade it")
    return version is not None


def ensure_schema(cur: sqlite3.Cursor, where: str) -> None:
    """Create the schema in an empty database or upgrade an older one.

    Runs inside a writer's ``BEGIN IMMEDIATE`` transaction (DDL is
    transactional in SQLite), so a failed upgrade leaves the database as it was.
    """
    version = _stored_version(cur)
    refuse_newer(version, where)
    if version is None:
        _create_schema(cur)
        cur.execute("INSERT INTO schema_version (id, version) VALUES (1, ?)",
                    (SCHEMA_VERSION,))
        return
    upgrade(cur, version, where, MIGRATIONS, "UPDATE schema_version SET version = ?")


def upgrade(cur: Any, version: int, where: str, migrations: dict[int, Callable[[Any], None]],
            set_version: str) -> None:
    """Run ``migrations`` from ``version`` up to ``SCHEMA_VERSION`` (any store; inside
    the caller's transaction), recording each step with ``set_version``."""
    for step in range(version + 1, SCHEMA_VERSION + 1):
        migrate = migrations.get(step)
        if migrate is None:
            raise StoreError(f"no migration from schema {step - 1} to {step}: "
                             f"this cairnflow cannot upgrade the database {where}")
        migrate(cur)
        cur.execute(set_version, (step,))


def _add_missing(cur: sqlite3.Cursor) -> None:
    """Create the tables, columns and indexes of ``models`` that the database lacks.

    A new column must be nullable or have a server default (SQLite's rule for
    ``ALTER TABLE ... ADD COLUMN``).
    """
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateIndex, CreateTable

    from cairnflow.statestore.models import metadata

    dialect = sqlite_dialect.dialect()
    tables = {row[0] for row in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    indexes = {row[0] for row in cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    for table in metadata.sorted_tables:
        if table.name not in tables:
            cur.execute(str(CreateTable(table).compile(dialect=dialect)))
        else:
            present = {row[1] for row in cur.execute(f'PRAGMA table_info("{table.name}")')}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=dialect)
                    cur.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            if index.name not in indexes:
                cur.execute(str(CreateIndex(index).compile(dialect=dialect)))


def _create_schema(cur: sqlite3.Cursor) -> None:
    # SQLAlchemy is imported only here: opening an existing store stays fast.
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateIndex, CreateTable

    from cairnflow.statestore.models import metadata

    dialect = sqlite_dialect.dialect()
    for table in metadata.sorted_tables:
        cur.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            cur.execute(str(CreateIndex(index).compile(dialect=dialect)))
