"""The checkpoint store's tables, as sqlmodel models: the schema's one definition.

The SQLite store creates a new database from these tables. Its queries are
plain SQL over the same table and column names, so that opening the store
(and every CLI read) does not pay for importing SQLAlchemy; this module is
imported only when a database is created or migrated.

Conventions:

* Timestamps are ISO-8601 UTC text of fixed width
  (``2024-05-01T12:00:00.000000+00:00``), so they sort as text and read well
  in any SQLite browser.
* ``map_index`` is -1 for a task that is not a mapped child; the store converts
  None <-> -1.
* A flow run has a text id (its uuid, what people and the CLI use) and an
  integer key ``flow_run.pk``, never reused (AUTOINCREMENT).
* The tables written on every transition (``task_run``, ``state_transition``,
  ``task_result``, ``log_record``) are keyed by one integer per row,
  ``flow_run.pk * 2**32 + seq``, where ``seq`` numbers the run's transitions (or
  its log records) from 1 in the order they were recorded. So a run's rows are
  one contiguous range of each table (``id BETWEEN pk << 32 AND (pk << 32) +
  0xFFFFFFFF``), its history reads in order with no sort, and a commit appends
  to the right-most leaf of each table it touches: with no secondary index, a
  task's commit writes about one page per table. Use ``id >> 32`` to join a row
  to ``flow_run.pk``.
* A task run's ``id`` is the ``id`` of its first transition, so task runs list
  in the order they were first recorded; its history rows and its result name
  it by that id (``task_run_id``).
* Every row a run owns is deleted with it, by that range (the store's
  ``delete_runs`` and ``prune``): those tables declare no foreign key to
  ``flow_run``, whose check on delete would need a second index on each of them,
  written on every commit.

Example:
    >>> from cairnflow.statestore.models import TaskRun
    >>> TaskRun.__tablename__
    'task_run'
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "Flow", "FlowRun", "TaskRun", "StateTransition", "TaskResult", "LogRecord",
    "SchemaVersion", "StoreModel", "metadata", "RUN_SHIFT",
]

RUN_SHIFT = 32
"""Row ids of a run's tables are ``flow_run.pk << RUN_SHIFT`` plus a sequence number."""

_NO_AUTO = {"autoincrement": False}

# Row ids are ``pk << 32 | seq``: 64-bit wherever the database has a choice. SQLite's
# INTEGER is already 64-bit, and only INTEGER PRIMARY KEY is its rowid (and takes
# AUTOINCREMENT), so SQLite keeps INTEGER; PostgreSQL gets BIGINT (a 32-bit serial
# would silently wrap ``pk << 32`` back to ``pk``).
KEY = BigInteger().with_variant(Integer(), "sqlite")


class StoreModel(SQLModel, registry=registry()):
    """Base of the store's tables: their own metadata, apart from any other models."""


metadata = StoreModel.metadata


class Flow(StoreModel, table=True):
    """A flow known to the store, by name."""

    __tablename__ = "flow"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: str


class FlowRun(StoreModel, table=True):
    """One flow run; its id is the same across attempts (resumes)."""

    __tablename__ = "flow_run"
    __table_args__ = (
        Index("ix_flow_run_created_at", "created_at"),
        Index("ix_flow_run_flow_created_at", "flow_id", "created_at"),
        Index("ix_flow_run_state_created_at", "state", "created_at"),
        {"sqlite_autoincrement": True},
    )

    pk: int | None = Field(default=None, primary_key=True, sa_type=KEY)
    id: str = Field(unique=True)
    flow_id: int = Field(foreign_key="flow.id")
    flow_hash: str
    state: str
    message: str | None = None
    parameters: str  # JSON, for people to read
    parameters_blob: bytes | None = None
    parameters_serializer: str | None = None
    parameters_python_version: str | None = None
    parameters_cloudpickle_version: str | None = None
    source_file: str | None = None
    source_variable: str | None = None
    flow_blob: bytes | None = None
    flow_serializer: str | None = None
    flow_python_version: str | None = None
    flow_cloudpickle_version: str | None = None
    attempt: int
    pid: int
    host: str
    created_at: str
    started_at: str
    ended_at: str | None = None
    updated_at: str
    # The owner's start time (clock ticks since boot), so that a later process given
    # the same pid is not taken for the owner. Schema 2 (last, where the migration
    # from schema 1 adds it).
    process_start: int | None = Field(default=None, sa_type=KEY)  # ticks: may pass 2**31


class TaskRun(StoreModel, table=True):
    """A task run: (flow run, task slug, map index) is unique, kept so by the store.

    ``id`` is the id of its first transition (see the module docstring).
    """

    __tablename__ = "task_run"

    id: int = Field(primary_key=True, sa_type=KEY, sa_column_kwargs=_NO_AUTO)
    task_slug: str
    map_index: int = -1
    task_name: str | None = None
    state: str
    message: str | None = None
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None


class StateTransition(StoreModel, table=True):
    """Append-only history: one row per transition, in the order recorded.

    ``task_run_id`` is NULL for a transition of the flow run itself.
    """

    __tablename__ = "state_transition"

    id: int = Field(primary_key=True, sa_type=KEY, sa_column_kwargs=_NO_AUTO)
    task_run_id: int | None = Field(default=None, sa_type=KEY)
    attempt: int
    state: str
    message: str | None = None
    timestamp: str


class TaskResult(StoreModel, table=True):
    """A task run's checkpointed result: bytes inline, or a file under ``results/``."""

    __tablename__ = "task_result"
    __table_args__ = (
        CheckConstraint("(data IS NULL) <> (path IS NULL)", name="ck_task_result_where"),
    )

    task_run_id: int = Field(primary_key=True, sa_type=KEY, sa_column_kwargs=_NO_AUTO)
    serializer: str
    python_version: str
    cloudpickle_version: str
    data: bytes | None = None
    path: str | None = None  # relative to the results directory
    size: int
    sha256: str | None = None  # of a file-stored result, to detect a damaged file


class LogRecord(StoreModel, table=True):
    """A log record of a run, in the order recorded.

    It names its task by slug and map index: a task may log before its task
    run row exists.
    """

    __tablename__ = "log_record"

    id: int = Field(primary_key=True, sa_type=KEY, sa_column_kwargs=_NO_AUTO)
    task_slug: str | None = None
    map_index: int = -1
    timestamp: str
    level: int
    logger: str
    message: str


class SchemaVersion(StoreModel, table=True):
    """The schema version of this database: exactly one row."""

    __tablename__ = "schema_version"
    __table_args__ = (CheckConstraint("id = 1", name="ck_schema_version_one_row"),)

    id: int = Field(default=1, primary_key=True)
    version: int
