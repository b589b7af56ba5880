"""What only the SQLite store does: its policy, schema versions, files, processes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pendulum
import pytest

from cairnflow.exceptions import (
    ResultLoadError, ResultNotFoundError, SchemaVersionError, StoreError, StoreLockedError,
    UnknownRunError,
)
from cairnflow.statestore import default_url, open_store
from cairnflow.statestore import sqlite_policy as policy
from cairnflow.statestore.base import FlowRunRecord, Transition
from cairnflow.statestore.serialize import SerializedResult, dump, load
from cairnflow.statestore.sqlite import SQLiteStore, path_from_url

REPO = Path(__file__).resolve().parents[1]
T0 = pendulum.datetime(2024, 5, 1, 12, tz="UTC")
BIG = SerializedResult(os.urandom((1 << 20) + 1))


def record(run_id="run-1", pid=None) -> FlowRunRecord:
    return FlowRunRecord(
        id=run_id, flow_name="etl", flow_hash="h", parameters={"n": 1},
        parameters_blob=dump({"n": 1}), source_file=None, source_variable=None,
        flow_blob=None, attempt=1, pid=os.getpid() if pid is None else pid,
        host=os.uname().nodename, started_at=T0)


def tr(state, slug=None, run_id="run-1", result=None, map_index=None) -> Transition:
    return Transition(run_id, 1, slug, slug, map_index, state, None, T0, result)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "cairnflow.db"


@pytest.fixture
def store(db):
    made = SQLiteStore(db)
    made.record_flow_run(record())
    yield made
    made.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sql(db: Path, query: str, *params):
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


# -- the policy -----------------------------------------------------------------


def test_database_is_in_wal_mode_with_foreign_keys(store, db):
    assert sql(db, "PRAGMA journal_mode") == [("wal",)]
    assert store._conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)


@pytest.mark.parametrize("env, expected", [(None, 1), ("full", 2), ("FULL", 2), ("normal", 1)])
def test_durability_env_sets_synchronous(db, monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("CAIRNFLOW_DURABILITY", raising=False)
    else:
        monkeypatch.setenv("CAIRNFLOW_DURABILITY", env)
    with_store = SQLiteStore(db)
    assert with_store._conn.execute("PRAGMA synchronous").fetchone() == (expected,)
    with_store.close()


def test_timestamps_are_stored_as_sortable_utc_text_and_read_as_aware_utc_datetimes(store, db):
    paris = pendulum.datetime(2024, 5, 1, 14, 0, 0, 7, tz="Europe/Paris")
    store.record_transitions([Transition("run-1", 1, None, None, None, "Failed", None, paris)])
    [(stored,)] = sql(db, "SELECT ended_at FROM flow_run")
    assert stored == "2024-05-01T12:00:00.000007+00:00"
    ended = store.get_flow_run("run-1").ended_at
    assert type(ended) is datetime and ended.tzinfo is timezone.utc
    assert ended == paris and ended.isoformat() == stored


def test_retrying_backs_off_until_the_lock_is_gone():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert policy.retrying(flaky, budget=5, where="x.db") == "done"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(gaps) == 3 and gaps[-1] > gaps[0]


def test_retrying_gives_up_with_store_locked_error():
    def locked():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(StoreLockedError, match="stayed locked by another process"):
        policy.retrying(locked, budget=0.2, where="x.db")


def test_other_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nope")

    with pytest.raises(sqlite3.OperationalError):
        policy.retrying(broken, budget=5, where="x.db")
    assert calls == [1]


def hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    """Another connection takes the write lock and keeps it for ``seconds``."""
    held = threading.Event()

    def hold():
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    return thread


def test_a_briefly_locked_database_is_waited_out(store, db):
    holder = hold_write_lock(db, 0.5)
    started = time.monotonic()
    store.record_transitions([tr("Running", "a-1")])
    assert time.monotonic() - started > 0.3
    holder.join()
    assert store.get_task_runs("run-1")[0].state == "Running"


def test_a_lock_past_the_busy_timeout_is_retried(db):
    patient = SQLiteStore(db, busy_timeout=0.05, lock_retry=10)
    patient.record_flow_run(record())
    holder = hold_write_lock(db, 0.6)
    patient.record_transitions([tr("Running", "a-1")])
    holder.join()
    assert len(patient.get_history("run-1")) == 1


def test_a_database_locked_for_too_long_is_store_locked_error(db):
    impatient = SQLiteStore(db, busy_timeout=0.05, lock_retry=0.3)
    impatient.record_flow_run(record())
    holder = hold_write_lock(db, 1.5)
    with pytest.raises(StoreLockedError, match="locked"):
        impatient.record_transitions([tr("Running", "a-1")])
    holder.join()
    assert impatient.get_history("run-1") == []


# -- schema versions --------------------------------------------------------------


def test_a_new_database_records_the_schema_version(store, db):
    assert sql(db, "SELECT version FROM schema_version") == [(policy.SCHEMA_VERSION,)]


def test_a_newer_database_is_refused_and_left_untouched(store, db):
    store.close()
    sql(db, "UPDATE schema_version SET version = 99")
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    before = digest(db)
    for readonly in (False, True):
        with pytest.raises(SchemaVersionError, match=(
                r"written by a newer cairnflow \(schema 99, this one reads up to "
                rf"{policy.SCHEMA_VERSION}\): upgrade cairnflow")):
            SQLiteStore(db, readonly=readonly)
    assert digest(db) == before


def add_note_column(cur: sqlite3.Cursor) -> None:
    cur.execute("ALTER TABLE flow_run ADD COLUMN note TEXT")
    cur.execute("CREATE INDEX ix_test_note ON flow_run (note)")


def test_an_older_database_is_upgraded_step_by_step(store, db, monkeypatch):
    store.record_transitions([tr("Success", "a-1", result=dump(1))])
    store.close()
    monkeypatch.setattr(policy, "SCHEMA_VERSION", policy.SCHEMA_VERSION + 1)
    monkeypatch.setitem(policy.MIGRATIONS, policy.SCHEMA_VERSION, add_note_column)
    with pytest.raises(StoreError, match="older than this cairnflow"):
        SQLiteStore(db, readonly=True)
    upgraded = SQLiteStore(db)
    assert sql(db, "SELECT version FROM schema_version") == [(policy.SCHEMA_VERSION,)]
    assert ("note",) in sql(db, "SELECT name FROM pragma_table_info('flow_run')")
    assert load(upgraded.load_result("run-1", "a-1")) == 1
    upgraded.close()


def test_a_failed_upgrade_changes_nothing(store, db, monkeypatch):
    store.close()

    def broken_step(cur):
        cur.execute("ALTER TABLE flow_run ADD COLUMN note TEXT")
        cur.execute("THIS IS NOT SQL")

    monkeypatch.setattr(policy, "SCHEMA_VERSION", policy.SCHEMA_VERSION + 1)
    monkeypatch.setitem(policy.MIGRATIONS, policy.SCHEMA_VERSION, broken_step)
    with pytest.raises(StoreError):
        SQLiteStore(db)
    assert sql(db, "SELECT version FROM schema_version") == [(policy.SCHEMA_VERSION - 1,)]
    assert ("note",) not in sql(db, "SELECT name FROM pragma_table_info('flow_run')")


def test_a_missing_migration_step_is_a_clear_error(store, db, monkeypatch):
    store.close()
    monkeypatch.setattr(policy, "SCHEMA_VERSION", policy.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="no migration from schema"):
        SQLiteStore(db)


def schema(db: Path) -> list[tuple]:
    """Every table, index and column of a database, in a comparable form."""
    tables = sql(db, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                     "ORDER BY type, name")
    columns = [(t, c[1], c[2], c[3], c[5]) for _, t in tables
               for c in sql(db, f"SELECT * FROM pragma_table_info('{t}')")]
    return sorted(tables) + sorted(columns)


def test_a_database_of_schema_1_is_upgraded_to_2_and_its_runs_resume(tmp_path, monkeypatch):
    """``tests/data/store_v1.db`` was written by the first release (schema 1)."""
    from cairnflow.runner.api import resume_run

    db = tmp_path / "old.db"
    db.write_bytes((REPO / "tests" / "data" / "store_v1.db").read_bytes())
    assert sql(db, "SELECT version FROM schema_version") == [(1,)]
    old = sorted(sql(db, "SELECT id, state, attempt FROM flow_run"))
    history = sql(db, "SELECT * FROM state_transition ORDER BY id")
    logs = sql(db, "SELECT * FROM log_record ORDER BY id")
    upgraded = SQLiteStore(db)
    assert sql(db, "SELECT version FROM schema_version") == [(2,)]
    fresh = tmp_path / "fresh.db"
    SQLiteStore(fresh).close()
    assert schema(db) == schema(fresh)  # the same schema as a new database
    assert sorted(sql(db, "SELECT id, state, attempt FROM flow_run")) == old
    assert sql(db, "SELECT * FROM state_transition ORDER BY id") == history
    assert sql(db, "SELECT * FROM log_record ORDER BY id") == logs
    [failed] = upgraded.list_runs(state="Failed")
    assert failed.state == "Failed"  # a finished v1 run, no start time recorded
    upgraded.close()
    monkeypatch.setenv("CAIRNFLOW_V1_FIXED", "1")
    state = resume_run(failed.id, store=f"sqlite:///{db}")
    assert state.is_successful()
    reader = SQLiteStore(db, readonly=True)
    try:
        runs = {(t.task_slug, t.map_index): t for t in reader.get_task_runs(failed.id)}
        # the mapped children that succeeded at schema 1 were not run again
        assert {k: (t.state, t.attempts) for k, t in runs.items() if k[0] == "square-1"} == {
            ("square-1", None): ("Mapped", 0), ("square-1", 0): ("Success", 1),
            ("square-1", 1): ("Success", 1), ("square-1", 2): ("Success", 1)}
        assert (runs[("half-1", None)].state, runs[("half-1", None)].attempts) == ("Success", 2)
        assert load(reader.load_result(failed.id, "half-1")) == (0 + 1 + 4) // 2
        assert reader.get_flow_run(failed.id).process_start is not None
    finally:
        reader.close()
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]


# -- large results in files -----------------------------------------------------------


def test_a_resume_removes_temporary_result_files_a_killed_attempt_left(store, db):
    run_dir = db.parent / "results" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / ".abc.pkl.tmp").write_bytes(b"half a result")
    (run_dir / "kept.pkl").write_bytes(b"a whole one")
    store.record_transitions([tr("Crashed")])
    store.record_flow_run(record()._replace(attempt=2))
    assert sorted(p.name for p in run_dir.iterdir()) == ["kept.pkl"]


def result_files(db: Path) -> list[Path]:
    return sorted((db.parent / "results").rglob("*.pkl"))


def test_a_large_result_goes_to_a_file_and_round_trips(store, db):
    store.record_transitions([tr("Success", "big-1", result=BIG),
                              tr("Success", "small-1", result=dump("small"))])
    [file] = result_files(db)
    assert file.parent.name == "run-1" and file.stat().st_size == len(BIG.data)
    assert sql(db, "SELECT t.task_slug, x.data IS NULL, x.path IS NULL FROM task_result x "
                   "JOIN task_run t ON t.id = x.task_run_id "
                   "ORDER BY t.task_slug") == [("big-1", 1, 0), ("small-1", 0, 1)]
    assert store.load_result("run-1", "big-1") == BIG
    assert store.load_resume_data("run-1").results[("big-1", None)] == BIG
    assert not list((db.parent / "results").rglob("*.tmp"))


def test_the_threshold_can_be_set(db):
    small = SQLiteStore(db, large_result_bytes=10)
    small.record_flow_run(record())
    small.record_transitions([tr("Success", "a-1", result=dump("more than ten bytes"))])
    assert len(result_files(db)) == 1
    assert load(small.load_result("run-1", "a-1")) == "more than ten bytes"


@pytest.mark.parametrize("damage", [
    lambda f: f.unlink(),
    lambda f: f.write_bytes(f.read_bytes()[:-1]),
    lambda f: f.write_bytes(b"\x00" + f.read_bytes()[1:]),
])
def test_a_missing_or_damaged_result_file_is_result_load_error(store, db, damage):
    store.record_transitions([tr("Success", "big-1", result=BIG)])
    damage(result_files(db)[0])
    with pytest.raises(ResultLoadError, match="'big-1' of run run-1"):
        store.load_result("run-1", "big-1")
    data = store.load_resume_data("run-1")  # results are read when first used
    with pytest.raises(ResultLoadError, match="'big-1' of run run-1"):
        data.results[("big-1", None)]


def test_deleting_and_pruning_runs_removes_their_files(store, db):
    store.record_transitions([tr("Success", "big-1", result=BIG), tr("Success")])
    store.record_flow_run(record("run-2"))
    store.record_transitions([tr("Success", "big-1", "run-2", result=BIG)])
    assert len(result_files(db)) == 2
    assert store.delete_runs(["run-2"]) == 1
    assert [f.parent.name for f in result_files(db)] == ["run-1"]
    assert store.prune(T0.add(days=1)) == 1
    assert result_files(db) == []


def test_a_replaced_file_result_is_removed(store, db):
    store.record_transitions([tr("Success", "big-1", result=BIG)])
    store.record_transitions([tr("Success", "big-1", result=dump("now small"))])
    assert result_files(db) == []
    assert load(store.load_result("run-1", "big-1")) == "now small"


def test_a_file_whose_transaction_failed_is_removed(store, db):
    with pytest.raises(UnknownRunError):
        store.record_transitions([tr("Success", "big-1", "no-such-run", result=BIG)])
    assert result_files(db) == []


# -- opening: read-only, bad files, URLs -------------------------------------------------


def test_read_only_on_a_missing_database_is_an_empty_store(tmp_path):
    empty = SQLiteStore(tmp_path / "nothing.db", readonly=True)
    assert empty.list_runs() == [] and empty.list_flows() == []
    with pytest.raises(UnknownRunError):
        empty.resolve_run_id("last")
    with pytest.raises(UnknownRunError):
        empty.get_task_runs("abc")
    assert list(tmp_path.iterdir()) == []


def test_reads_never_change_the_file(store, db):
    store.record_transitions([tr("Success", "a-1", result=dump(1))])
    store.close()
    before = digest(db)
    reader = SQLiteStore(db, readonly=True)
    reader.list_runs(), reader.get_task_runs("run-1"), reader.get_history("run-1")
    reader.load_resume_data("run-1"), reader.list_flows(), reader.get_logs("run-1")
    with pytest.raises(StoreError, match="read-only"):
        reader.record_transitions([tr("Running", "b-1")])
    with pytest.raises(StoreError, match="read-only"):
        reader.delete_runs(["run-1"])
    reader.close()
    assert digest(db) == before


def test_a_directory_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path, readonly):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just some text" * 100)
    before = digest(junk)
    with pytest.raises(StoreError, match="not a database") as caught:
        SQLiteStore(junk, readonly=readonly)
    assert "\n" not in str(caught.value)
    assert digest(junk) == before


def test_someone_elses_sqlite_database_is_refused(tmp_path):
    other = tmp_path / "other.db"
    sql(other, "CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="not a cairnflow store"):
        SQLiteStore(other)


def test_a_missing_directory_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "no" / "such" / "dir.db")


@pytest.mark.parametrize("url, path", [
    ("sqlite:///relative.db", "relative.db"),
    ("sqlite:////abs/olute.db", "/abs/olute.db"),
    ("sqlite+pysqlite:////abs/olute.db", "/abs/olute.db"),
    ("sqlite://", ":memory:"), ("sqlite:///:memory:", ":memory:"), (":memory:", ":memory:"),
    ("/plain/path.db", "/plain/path.db"),
])
def test_urls_name_paths(url, path):
    assert path_from_url(url) == path


@pytest.mark.parametrize("url", ["postgresql://127.0.0.1:1/db", "mysql://x", "sqlite:///x.db?mode=ro",
                                 "sqlite://host/x.db"])
def test_unsupported_urls_are_store_errors(url):
    with pytest.raises(StoreError):
        open_store(url)


def test_open_store_defaults_to_cairnflow_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CAIRNFLOW_HOME", str(home))
    monkeypatch.delenv("CAIRNFLOW_DB_URL", raising=False)
    assert default_url() == f"sqlite:///{home}/cairnflow.db"
    assert open_store(readonly=True).list_runs() == []
    assert not home.exists()
    opened = open_store()
    opened.record_flow_run(record())
    opened.close()
    assert (home / "cairnflow.db").is_file()


def test_open_store_follows_cairnflow_db_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRNFLOW_DB_URL", f"sqlite:///{tmp_path}/elsewhere.db")
    assert open_store().path == f"{tmp_path}/elsewhere.db"
    monkeypatch.chdir(tmp_path)
    assert Path(open_store("sqlite:///here.db").path).resolve() == tmp_path / "here.db"


def test_a_store_in_memory_works(tmp_path):
    memory = open_store("sqlite://")
    memory.record_flow_run(record())
    memory.record_transitions([tr("Success", "big-1", result=BIG)])
    assert memory.load_result("run-1", "big-1") == BIG
    assert open_store(":memory:", readonly=True).list_runs() == []


# -- several store objects, threads and processes ---------------------------------------


def test_a_closed_store_refuses_use(store):
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()
    with pytest.raises(StoreError, match="closed"):
        store.record_transitions([tr("Running", "a-1")])


def test_runs_survive_closing_and_reopening(store, db):
    store.record_transitions([tr("Running", "a-1"), tr("Success", "a-1", result=dump(5))])
    store.close()
    again = SQLiteStore(db)
    assert again.get_task_runs("run-1")[0].state == "Success"
    assert load(again.load_result("run-1", "a-1")) == 5


def test_two_store_objects_share_task_runs(store, db):
    other = SQLiteStore(db)
    store.record_transitions([tr("Running", "a-1")])
    other.record_transitions([tr("Retrying", "a-1"), tr("Running", "a-1")])
    store.record_transitions([tr("Success", "a-1", result=dump(1))])
    other.record_transitions([tr("Success", "a-1", result=dump(2))])
    [task] = store.get_task_runs("run-1")
    assert (task.state, task.attempts) == ("Success", 2)
    assert load(store.load_result("run-1", "a-1")) == 2
    assert [t.state for t in store.get_history("run-1")] == [
        "Running", "Retrying", "Running", "Success", "Success"]


def test_a_map_expanded_after_another_store_wrote_the_run_is_written_afresh(store, db):
    # Its children's first Pending take the ids next in this store's cache: taken by
    # the other store's rows, so the batch is retried with the run read again.
    store.record_transitions([tr("Running", "a-1")])
    SQLiteStore(db).record_transitions([tr("Running", "b-1"), tr("Pending", "c-1")])
    store.record_transitions([tr("Mapped", "m-1")] + [
        tr("Pending", "m-1", map_index=i) for i in range(500)])
    assert [(t.task_slug, t.map_index, t.state) for t in store.get_history("run-1")] == [
        ("a-1", None, "Running"), ("b-1", None, "Running"), ("c-1", None, "Pending"),
        ("m-1", None, "Mapped"), *(("m-1", i, "Pending") for i in range(500))]
    assert len(store.get_task_runs("run-1")) == 504


def test_writing_to_a_run_deleted_elsewhere_is_unknown_run_error(store, db):
    store.record_transitions([tr("Running", "a-1")])
    SQLiteStore(db).delete_runs(["run-1"])
    with pytest.raises(UnknownRunError):
        store.record_transitions([tr("Success", "a-1")])


def test_a_run_deleted_and_recorded_again_elsewhere_is_written_as_it_now_is(store, db):
    store.record_transitions([tr("Running", "a-1"), tr("Success", "a-1", result=dump(1))])
    other = SQLiteStore(db)
    other.delete_runs(["run-1"])
    other.record_flow_run(record())
    store.record_transitions([tr("Running", "b-1"), tr("Success", "b-1", result=dump(2))])
    assert [(t.task_slug, t.state) for t in other.get_history("run-1")] == [
        ("b-1", "Running"), ("b-1", "Success")]
    assert [t.task_slug for t in other.get_task_runs("run-1")] == ["b-1"]
    with pytest.raises(ResultNotFoundError):
        other.load_result("run-1", "a-1")
    assert load(other.load_result("run-1", "b-1")) == 2


def test_a_batch_that_fails_half_way_leaves_nothing_and_the_store_goes_on(store, db):
    store.record_transitions([tr("Running", "a-1")])
    sql(db, "CREATE TRIGGER no_results BEFORE INSERT ON task_result "
            "BEGIN SELECT RAISE(FAIL, 'no results today'); END")
    with pytest.raises(StoreError, match="no results today"):
        store.record_transitions([tr("Success", "a-1", result=dump(1)), tr("Running", "b-1")])
    assert [(t.task_slug, t.state) for t in store.get_history("run-1")] == [("a-1", "Running")]
    assert [(t.task_slug, t.state) for t in store.get_task_runs("run-1")] == [
        ("a-1", "Running")]
    sql(db, "DROP TRIGGER no_results")
    store.record_transitions([tr("Success", "a-1", result=dump(1)), tr("Running", "b-1")])
    assert [(t.task_slug, t.state, t.has_result) for t in store.get_task_runs("run-1")] == [
        ("a-1", "Success", True), ("b-1", "Running", False)]
    assert [t.state for t in store.get_history("run-1")] == ["Running", "Success", "Running"]


def test_the_last_of_two_results_in_one_batch_is_kept(store, db):
    store.record_transitions([tr("Success", "big-1", result=BIG)])
    store.record_transitions([tr("Success", "big-1", result=dump("first")),
                              tr("Success", "big-1", result=dump("second"))])
    assert load(store.load_result("run-1", "big-1")) == "second"
    assert result_files(db) == []


def test_the_store_and_the_models_agree_on_the_row_id_layout():
    from cairnflow.statestore import models, sqlite_batch
    assert models.RUN_SHIFT == sqlite_batch.RUN_SHIFT


def test_a_task_commit_writes_about_one_page_per_table(db):
    """The layout's point (see models): appends land on each table's last page."""
    writer = SQLiteStore(db)
    writer.record_flow_run(record(), [tr("Running")])
    writer._conn.execute("PRAGMA wal_autocheckpoint = 0")
    writer._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = writer._conn.execute("PRAGMA page_size").fetchone()[0]
    wal = Path(f"{db}-wal")
    before, tasks = wal.stat().st_size, 2000
    writer.record_transitions([tr("Running", "inc-1")])
    for i in range(1, tasks):
        writer.record_transitions([tr("Success", f"inc-{i}", result=dump(i)),
                                   tr("Running", f"inc-{i + 1}")])
    frames = (wal.stat().st_size - before) / (page + 24)
    writer.close()
    # history, task runs and results: three pages, plus the occasional new page.
    assert frames / tasks < 3.5, frames / tasks


WRITER = textwrap.dedent("""
    import os, sys, time
    import pendulum
    from cairnflow.statestore.base import FlowRunRecord, LogEntry, Transition
    from cairnflow.statestore.serialize import dump
    from cairnflow.statestore.sqlite import SQLiteStore
    db, me, tasks, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, start - time.time()))
    store = SQLiteStore(db)
    now = pendulum.now("UTC")
    store.record_flow_run(FlowRunRecord(me, "etl", "h", {}, None, None, None, None, 1,
                                        os.getpid(), "host", now))
    for run in (me, "shared"):
        for i in range(tasks):
            slug = f"{me}-{i}"
            store.record_transitions([Transition(run, 1, slug, None, None, "Running", None, now)])
            store.record_transitions([Transition(run, 1, slug, None, None, "Success", None,
                                                 now, dump(i))])
            store.record_logs([LogEntry(run, slug, None, now, 20, "x", slug)])
    store.record_transitions([Transition(me, 1, None, None, None, "Success", None, now)])
""")


def test_several_processes_write_to_one_new_database_at_once(tmp_path):
    db = tmp_path / "shared.db"
    writers, tasks = 4, 60
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"p{n}", str(tasks),
                               str(start)], env=env, stderr=subprocess.PIPE)
             for n in range(writers)]
    # The shared run appears while the writers are starting, racing them to the schema.
    time.sleep(max(0.0, start - time.time() - 0.2))
    opener = SQLiteStore(db)
    opener.record_flow_run(record("shared"))
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * writers, errors
    for n in range(writers):
        assert opener.get_flow_run(f"p{n}").state == "Success"
        assert len(opener.get_history(f"p{n}")) == 2 * tasks + 1
    assert len(opener.get_task_runs("shared")) == writers * tasks
    history = opener.get_history("shared")
    assert len(history) == 2 * writers * tasks
    for n in range(writers):  # each writer's transitions kept their order
        mine = [t.task_slug for t in history if t.task_slug.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i}" for i in range(tasks) for _ in (0, 1)]
    assert len(opener.get_logs("shared")) == writers * tasks


# -- the write path ---------------------------------------------------------------------


def wal_commits(wal: Path) -> tuple[int, int]:
    """(frames, commit frames) in a WAL file: a 32-byte header, then frames of a 24-byte
    header and a page; a commit frame's header holds the database size (else 0), and
    frames of an earlier pass through the file have older salts."""
    data = wal.read_bytes()
    page_size, salts = int.from_bytes(data[8:12], "big"), data[16:24]
    frames = commits = 0
    for at in range(32, len(data) - 23, 24 + page_size):
        if data[at + 8:at + 16] != salts:
            break
        frames += 1
        commits += data[at + 4:at + 8] != bytes(4)
    return frames, commits


def pages_per_commit(db: Path, flow) -> float:
    """WAL pages each commit of a second run of ``flow`` writes, on a new store
    (the first run builds the schema); the WAL keeps every frame meanwhile."""
    store = SQLiteStore(db)
    wal = Path(f"{db}-wal")
    try:
        assert flow.run(store=store).is_successful()
        frames_before, commits_before = wal_commits(wal)
        assert flow.run(store=store).is_successful()
        frames, commits = wal_commits(wal)
    finally:
        store.close()
    assert commits - commits_before >= 400  # one commit a task, about
    return (frames - frames_before) / (commits - commits_before)


@pytest.mark.parametrize("shape", ["chain", "map"])
def test_pending_rows_are_written_at_their_final_size_so_task_commits_write_fewer_pages(
        tmp_path, monkeypatch, shape):
    """A task's commit updates its task run's row, Pending to Running to Success; a
    row that grows splits its page now and then. Against the same run with the
    Pending messages as short as they were (rows that grow by about 40 bytes), each
    commit writes over a tenth of a page fewer (SQLite 3.40: chain 3.65 against 3.87,
    map 3.50 against 3.71; the old code wrote 3.99 and 3.69, its run's row growing
    too; benchmarks/store.py prints them for 10,000 tasks)."""
    from cairnflow import Flow, task
    from cairnflow.runner import recorder

    monkeypatch.setattr(policy, "WAL_CHECKPOINT_BYTES", 1 << 40)  # every frame stays to count

    @task
    def inc(x):
        return x + 1

    with Flow(f"pages-{shape}") as flow:
        if shape == "chain":
            value = 0
            for _ in range(400):
                value = inc(value)
        else:
            inc.map(list(range(400)))
    final_size = pages_per_commit(tmp_path / "final.db", flow)
    short = {recorder.PENDING_MESSAGE: "Not started yet: the flow run has not reached it.",
             recorder.PENDING_CHILD_MESSAGE: "Not started yet: created when its map expanded."}
    pending = recorder.Recorder.pending
    monkeypatch.setattr(recorder.Recorder, "pending",
                        lambda self, runs, when, message=recorder.PENDING_MESSAGE:
                        pending(self, runs, when, short[message]))
    growing = pages_per_commit(tmp_path / "growing.db", flow)
    assert final_size < growing - 0.1, (final_size, growing)


# -- queries stay indexed ----------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "SELECT pk FROM flow_run WHERE id = 'x'",
    "SELECT * FROM task_run WHERE id BETWEEN 4294967296 AND 8589934591 ORDER BY id",
    "SELECT * FROM state_transition WHERE id BETWEEN 4294967296 AND 8589934591 ORDER BY id",
    "SELECT * FROM log_record WHERE id BETWEEN 4294967296 AND 8589934591 ORDER BY id",
    "SELECT * FROM task_result WHERE task_run_id BETWEEN 4294967296 AND 8589934591",
    "SELECT * FROM flow_run ORDER BY created_at DESC, rowid DESC LIMIT 20",
    "SELECT * FROM flow_run WHERE state = 'Failed' ORDER BY created_at DESC, rowid DESC",
    "SELECT * FROM flow_run WHERE flow_id = 1 ORDER BY created_at DESC, rowid DESC",
    "SELECT id FROM flow_run WHERE id >= 'ab' AND id < 'ab\U0010ffff' ORDER BY id",
])
def test_reads_use_indexes(store, db, query):
    plan = " ".join(row[-1] for row in sql(db, f"EXPLAIN QUERY PLAN {query}"))
    assert "SEARCH" in plan or "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


# -- sizes the CLI must handle ----------------------------------------------------------


def many_runs(store: SQLiteStore, db: Path, count: int) -> None:
    """``count`` more runs, one a second after T0: copies of run-1, made in SQL for speed."""
    sql(db, """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        INSERT INTO flow_run SELECT NULL, printf('%08d-copy', i), flow_id, flow_hash,
            CASE i % 3 WHEN 0 THEN 'Failed' ELSE 'Success' END, message, parameters,
            parameters_blob, parameters_serializer, parameters_python_version,
            parameters_cloudpickle_version, source_file, source_variable, flow_blob,
            flow_serializer, flow_python_version, flow_cloudpickle_version, attempt, pid,
            host, strftime('%Y-%m-%dT%H:%M:%f000+00:00', '2024-05-01 12:00:00', i || ' seconds'),
            started_at, ended_at, updated_at, process_start, flow_version_id, labels,
            scheduled_start, schedule_key, agent_id, cancel_requested_at
        FROM n, flow_run WHERE flow_run.id = 'run-1'""", count)


def big_run(store: SQLiteStore, tasks: int, batch: int = 2000) -> None:
    for start in range(0, tasks, batch):
        store.record_transitions([
            t for i in range(start, min(start + batch, tasks))
            for t in (tr("Running", "sq-1", map_index=i),
                      tr("Success", "sq-1", map_index=i, result=dump(i)))])


def statements(store: SQLiteStore, fn) -> list[str]:
    """The SQL statements ``fn`` makes the store run, with their values (a query per
    row, or a scan where an index should serve, shows here whatever the machine's load)."""
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        store._conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def full_scans(store: SQLiteStore, queries: list[str]) -> list[str]:
    """The query-plan steps of ``queries`` that read a whole table without an index."""
    steps = []
    for query in queries:
        for row in store._conn.execute(f"EXPLAIN QUERY PLAN {query}"):
            detail = row[-1]
            if detail.startswith("SCAN") and "USING" not in detail:
                steps.append(detail)
    return steps


def test_listing_10000_runs_is_one_indexed_query(store, db):
    many_runs(store, db, 10_000)
    for listing in (lambda: store.list_runs(limit=20),
                    lambda: store.list_runs(state="Failed", limit=20),
                    lambda: store.resolve_run_id("00005123")):
        queries = statements(store, listing)
        assert 1 <= len(queries) <= 2, queries
        assert full_scans(store, queries) == [], queries
    runs = []
    assert len(statements(store, lambda: runs.extend(store.list_runs()))) <= 2
    assert len(runs) == 10_001 and runs[0].id == "00010000-copy"


def test_a_run_with_10000_task_runs_is_read_in_a_few_queries(store):
    big_run(store, 10_000)
    task_runs, data = [], []
    assert len(statements(store, lambda: task_runs.extend(store.get_task_runs("run-1")))) <= 3
    assert len(statements(store, lambda: data.append(store.load_resume_data("run-1")))) <= 5
    assert [t.map_index for t in task_runs] == list(range(10_000))
    assert len(statements(store, lambda: load(data[0].results[("sq-1", 9_999)]))) <= 3
    assert load(data[0].results[("sq-1", 9_999)]) == 9_999
    assert len(statements(store, lambda: store.get_history("run-1", task_slug="sq-1"))) <= 3


READER = textwrap.dedent("""
    import resource, sys, time
    started = time.perf_counter()
    from cairnflow.statestore import open_store
    store = open_store(sys.argv[1], readonly=True)
    what = sys.argv[2]
    if what == "ls":
        store.list_runs()
    else:
        data = store.load_resume_data("run-1")
        assert len(data.task_runs) == len(data.results) == int(what)
        assert len(store.get_task_runs("run-1")) == int(what)
        assert len(store.get_history("run-1")) == 2 * int(what)
    print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def read_in_a_new_process(db: Path, what: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", READER, f"sqlite:///{db}", what], env=env,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]) * 1024


@pytest.mark.slow
def test_a_run_with_100000_mapped_children_is_readable_within_1_gib(store, db):
    big_run(store, 100_000, batch=5000)
    store.close()
    seconds, peak = read_in_a_new_process(db, "100000")
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="Python 3.11+")
def test_a_maps_expansion_fits_sqlites_smallest_variable_limit(store):
    # A 3,000-child map's Pending rows go in one batch; SQLite builds older than 3.32
    # (and some distributions) allow only 999 variables per statement.
    store._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    store.record_transitions([tr("Running")])
    store.record_transitions([tr("Mapped", "sq-1")] + [
        tr("Pending", "sq-1", map_index=i) for i in range(3_000)])
    runs = store.get_task_runs("run-1")
    assert [(t.map_index, t.state) for t in runs] == [(None, "Mapped")] + [
        (i, "Pending") for i in range(3_000)]
    assert len(store.get_history("run-1")) == 3_002


def test_none_and_bytes_are_bound_as_null_and_blob_and_a_programs_adapter_is_kept(tmp_path):
    """The store's adapters (``bind_none_and_bytes_directly``) only skip the sqlite3
    module's slow path: what is stored is unchanged, and an adapter a program
    registered itself for either type still wins."""
    code = textwrap.dedent("""
        import sqlite3, sys
        sqlite3.register_adapter(bytes, lambda b: b"mine:" + b)
        from cairnflow import Flow, task
        from cairnflow.statestore import sqlite_policy

        @task
        def blob():
            return b"payload"

        with Flow("blobs") as flow:
            blob()
        assert flow.run(store=f"sqlite:///{sys.argv[1]}").is_successful()
        conn = sqlite3.connect(sys.argv[1])
        print(conn.execute("SELECT typeof(started_at), typeof(ended_at) FROM task_run "
                           "WHERE state = 'Success'").fetchone())
        print(conn.execute("SELECT typeof(data), typeof(path) FROM task_result").fetchone())
        print(sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None),
              sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)](b"x"))
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.db")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["('text', 'text')", "('blob', 'null')", "None b'mine:x'"]


def test_timestamps_are_stored_as_fixed_width_utc_text_whatever_the_second():
    from datetime import datetime, timedelta, timezone as tz

    from cairnflow.statestore.sqlite_batch import ts

    def spelled(w):
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00" % (
            w.year, w.month, w.day, w.hour, w.minute, w.second, w.microsecond)

    start = datetime(2026, 5, 1, 12, 0, 59, 999998, tzinfo=tz.utc)
    cases = [start + timedelta(microseconds=i) for i in range(4)]  # across a second
    cases += [datetime(1, 1, 1, tzinfo=tz.utc), datetime(1969, 12, 31, 23, 59, 59, 999999,
                                                         tzinfo=tz.utc),
              datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=tz.utc), start, start]
    for when in cases:
        assert ts(when) == spelled(when)
    two_hours_ahead = datetime(2026, 5, 1, 14, 0, tzinfo=tz(timedelta(hours=2)))
    assert ts(two_hours_ahead) == "2026-05-01T12:00:00.000000+00:00"
