"""The checkpoint store's tables, as sqlmodel models: the schema's one definition.

The SQLite store creates a new database from these tables. Its queries are
plain SQL over the same table and column names, so that opening the store
(and every CLI read) does not pay for importing SQLAlchemy; this module is
imported only when a database is created or migrated.

Conventions:

* Timestamps are ISO-8601 UTC text of fixed width
  (``2024-05-01T12:00:00.000000+00:00``), so they sort as text and read well
  in any SQLite browser.
* ``map_index`` is -1 for a task that is not a mapped child, so it can be part
  of the key (flow_run_id, task_slug, map_index); the store converts None <-> -1.
* The tables written on every transition (``task_run``, ``state_transition``,
  ``task_result``, ``log_record``) are WITHOUT ROWID tables clustered on the
  run: a run's rows are one range of each table, and a commit writes one page
  per table it touches, with no secondary index pages.
* Every row a run owns is deleted with it (``ON DELETE CASCADE``).

Example:
    >>> from cairnflow.statestore.models import TaskRun
    >>> TaskRun.__tablename__
    'task_run'
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, ForeignKeyConstraint, Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "Flow", "FlowRun", "TaskRun", "StateTransition", "TaskResult", "LogRecord",
    "SchemaVersion", "StoreModel", "metadata",
]


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
    )

    id: str = Field(primary_key=True)
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


class TaskRun(StoreModel, table=True):
    """A task run, keyed by (flow run, task slug, map index).

    Clustered on that key (WITHOUT ROWID): a run's task runs are one range of
    the table and no second index is written per task. ``first_seq`` is the
    ``seq`` of its first transition: the order task runs were first recorded.
    """

    __tablename__ = "task_run"
    __table_args__ = {"sqlite_with_rowid": False}

    flow_run_id: str = Field(sa_column=Column(
        ForeignKey("flow_run.id", ondelete="CASCADE"), primary_key=True))
    task_slug: str = Field(primary_key=True)
    map_index: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    first_seq: int
    task_name: str | None = None
    state: str
    message: str | None = None
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None


class StateTransition(StoreModel, table=True):
    """Append-only history: one row per transition, ``task_slug`` NULL for the flow run.

    Clustered on (flow_run_id, seq), ``seq`` numbering the run's transitions
    from 1 in the order they were recorded: a run's history is one range of
    the table. It names its task run by slug and map index, with no foreign
    key (whose checks on delete would need a second index); rows go with their
    flow run.
    """

    __tablename__ = "state_transition"
    __table_args__ = {"sqlite_with_rowid": False}

    flow_run_id: str = Field(sa_column=Column(
        ForeignKey("flow_run.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    task_slug: str | None = None
    map_index: int = Field(default=-1)
    attempt: int
    state: str
    message: str | None = None
    timestamp: str


class TaskResult(StoreModel, table=True):
    """A checkpointed result: bytes inline, or a file under ``results/``."""

    __tablename__ = "task_result"
    __table_args__ = (
        ForeignKeyConstraint(
            ["flow_run_id", "task_slug", "map_index"],
            ["task_run.flow_run_id", "task_run.task_slug", "task_run.map_index"],
            ondelete="CASCADE"),
        CheckConstraint("(data IS NULL) <> (path IS NULL)", name="ck_task_result_where"),
        {"sqlite_with_rowid": False},
    )

    flow_run_id: str = Field(primary_key=True)
    task_slug: str = Field(primary_key=True)
    map_index: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    serializer: str
    python_version: str
    cloudpickle_version: str
    data: bytes | None = None
    path: str | None = None  # relative to the results directory
    size: int
    sha256: str | None = None  # of a file-stored result, to detect a damaged file


class LogRecord(StoreModel, table=True):
    """A log record of a run, clustered on (flow_run_id, seq) like the history.

    It names its task by slug and map index: a task may log before its task
    run row exists.
    """

    __tablename__ = "log_record"
    __table_args__ = {"sqlite_with_rowid": False}

    flow_run_id: str = Field(sa_column=Column(
        ForeignKey("flow_run.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    task_slug: str | None = None
    map_index: int = Field(default=-1)
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
