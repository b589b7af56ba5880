"""The one PostgreSQL policy: how cairnflow connects, transacts and upgrades a database.

* URLs: ``postgresql+psycopg://user:password@host:port/dbname`` (SQLAlchemy's
  form) or ``postgresql://...`` / ``postgres://...`` (libpq's); libpq's query
  options pass through, e.g. ``?host=/run/postgresql`` for a unix socket or
  ``?options=-csearch_path%3Dcairnflow`` to keep the tables in a schema of
  their own.
* One connection per store, ``READ COMMITTED``, explicit transactions; a write
  transaction's statements go out in one pipeline (psycopg's pipeline mode),
  so a transition group costs two round trips: its statements, then COMMIT.
* ``synchronous_commit`` is the server's (on by default): a commit that returns
  has reached the server's WAL on disk.
* A broken connection (server restart, network) is reopened on the next call;
  a transaction cut by it raises ``StoreError`` (nothing of it was committed).
* Schema versioning as on SQLite: a newer database is refused before anything
  is written; an empty one is created from ``cairnflow.statestore.models``
  (BIGINT keys); an older one is upgraded by ``MIGRATIONS`` steps. Creation or
  upgrade is one transaction under a transaction-level advisory lock, so two
  processes never race to create or upgrade it and a process killed midway
  leaves nothing. Whether a schema is there is read in one statement (one
  snapshot), so a process looking while another commits the schema sees all
  of it or none.
* A read-only store uses read-only transactions and never creates the schema;
  a database without one reads as an empty store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cairnflow.exceptions import StoreError

__all__ = ["SCHEMES", "is_postgres_url", "conninfo_from_url", "display_url", "connect",
           "stored_version", "ensure_schema", "check_schema_readable", "MIGRATIONS",
           "Cursor", "psycopg_module"]

SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
"""URL schemes that name a PostgreSQL store."""



def _migrate_to_2(cur: Any) -> None:
    """Schema 2 adds columns and tables only (as on SQLite): create what ``models``
    defines and the database lacks."""
    _add_missing(cur)


MIGRATIONS: dict[int, Callable[[Any], None]] = {2: _migrate_to_2}
"""Step ``n`` upgrades a PostgreSQL database at schema ``n - 1`` to ``n`` (a cursor
in the upgrading transaction); the same versions as SQLite's ``MIGRATIONS``."""

_SCHEMA_LOCK = 0x63616972  # "cair": the advisory lock taken to create or upgrade
_OUR_TABLES = ("flow", "flow_run", "task_run", "state_transition", "task_result",
               "log_record")


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL store."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def conninfo_from_url(url: str) -> str:
    """The libpq connection URI for a store URL (the ``+psycopg`` driver part dropped)."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES:
        raise StoreError(f"not a PostgreSQL URL: {display_url(url)}")
    return "postgresql://" + rest


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    from urllib.parse import urlsplit  # (with ipaddress) only for a message

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def psycopg_module() -> Any:
    """psycopg 3, or a ``StoreError`` saying how to install it."""
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError('a PostgreSQL store needs psycopg 3: pip install '
                         '"cairnflow[postgres]"') from exc
    return psycopg


def connect(url: str, *, readonly: bool) -> Any:
    """A new connection to the database named by ``url`` (not in autocommit)."""
    psycopg = psycopg_module()
    try:
        conn = psycopg.connect(conninfo_from_url(url), autocommit=False,
                               application_name="cairnflow", connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the cairnflow database {display_url(url)}: "
                         f"{_first_line(exc)}") from exc
    if readonly:
        conn.read_only = True
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Cursor:
    """A psycopg cursor that takes the SQLite store's SQL: ``?`` and ``:name``
    placeholders become psycopg's, so both stores share their read queries."""

    _translated: dict[str, str] = {}
    _NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    @classmethod
    def translate(cls, sql: str) -> str:
        found = cls._translated.get(sql)
        if found is None:
            found = cls._NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))
            cls._translated[sql] = found
        return found

    def execute(self, sql: str, params: Any = None) -> "Cursor":
        self.cursor.execute(self.translate(sql), params)
        return self

    def executemany(self, sql: str, params: Any) -> "Cursor":
        self.cursor.executemany(self.translate(sql), params)
        return self

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list:
        return self.cursor.fetchall()

    def __iter__(self):
        return iter(self.cursor)

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


# -- schema versioning ------------------------------------------------------------


def stored_version(cur: Any, where: str) -> int | None:
    """The database's schema version; None when it holds no cairnflow schema.

    Raises ``StoreError`` when it holds tables named like cairnflow's but no
    schema version (someone else's tables, or a damaged store).
    """
    # One statement: one snapshot of the catalog. Two (is there a schema_version?
    # then: are there tables like ours?) could straddle another process's commit
    # of a new schema and see its tables without its schema_version.
    cur.execute("SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND "
                "c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
                (["schema_version", *_OUR_TABLES],))
    found = {r[0] for r in cur.fetchall()}
    if "schema_version" not in found:
        clashing = sorted(found)
        if clashing:
            raise StoreError(f"the database {where} is not a cairnflow store (it has tables "
                             f"{', '.join(clashing)} but no schema_version): use another "
                             "database, or a schema of its own (see docs/postgres.md)")
        return None
    cur.execute("SELECT version FROM schema_version")
    row = cur.fetchone()
    if row is None:
        raise StoreError(f"the cairnflow database {where} has no schema version: it is damaged")
    return int(row[0])


def check_schema_readable(cur: Any, where: str) -> bool:
    """For a reader: True when the database holds a current schema, False if none."""
    from cairnflow.statestore.sqlite_policy import readable_version

    return readable_version(stored_version(cur, where), where)


def ensure_schema(conn: Any, where: str) -> None:
    """Create the schema in a database without one, or upgrade an older one.

    One transaction (DDL is transactional in PostgreSQL) under a
    transaction-level advisory lock: a failed upgrade, or a process killed
    midway, leaves the database as it was (the lock goes with the transaction),
    and of two processes opening a new database, one creates the schema and
    the other finds it.
    """
    from cairnflow.statestore.sqlite_policy import SCHEMA_VERSION, refuse_newer, upgrade

    with conn.cursor() as cur:
        version = stored_version(cur, where)
        refuse_newer(version, where)
        conn.rollback()
        if version == SCHEMA_VERSION:
            return
        try:
            # READ COMMITTED: each statement after the lock sees what the process
            # that held it before committed.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            version = stored_version(cur, where)  # another process may have done it
            refuse_newer(version, where)
            if version is None:
                _create_schema(cur)
                cur.execute("INSERT INTO schema_version (id, version) VALUES (1, %s)",
                            (SCHEMA_VERSION,))
            else:
                upgrade(cur, version, where, MIGRATIONS, "UPDATE schema_version SET version = %s")
            conn.commit()
        except BaseException:
            if not conn.broken:
                conn.rollback()
            raise


def _add_missing(cur: Any) -> None:
    """Create the tables, columns and indexes of ``models`` that the database lacks
    (a new column must be nullable or have a server default)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from cairnflow.statestore.models import metadata

    dialect = postgresql.dialect()
    cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema()")
    columns: dict[str, set[str]] = {}
    for table_name, column_name in cur.fetchall():
        columns.setdefault(table_name, set()).add(column_name)
    cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    indexes = {row[0] for row in cur.fetchall()}
    for table in metadata.sorted_tables:
        present = columns.get(table.name)
        if present is None:
            cur.execute(str(CreateTable(table).compile(dialect=dialect)))
        else:
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=dialect)
                    cur.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            if index.name not in indexes:
                cur.execute(str(CreateIndex(index).compile(dialect=dialect)))


def _create_schema(cur: Any) -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from cairnflow.statestore.models import metadata

    dialect = postgresql.dialect()
    for table in metadata.sorted_tables:
        cur.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            cur.execute(str(CreateIndex(index).compile(dialect=dialect)))
