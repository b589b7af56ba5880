"""The processes executor's worker pool on its own, with real processes: calls, a
worker that dies while idle, and closing. (Deaths and timeouts mid-task, through
the engine: ``test_executors.py``.)"""

from __future__ import annotations

import os
import signal

import pytest

import crashkit

from cairnflow.runner.process_pool import WorkerDied, WorkerPool


@pytest.fixture
def pool():
    pool = WorkerPool(1, bytes.upper)  # a worker answers each payload in capitals
    pool.wait_started()
    yield pool
    pool.close(kill=True)


def test_a_call_is_answered_by_a_worker_process(pool):
    [pid] = pool.pids
    assert pid != os.getpid()
    assert pool.call(b"hello") == b"HELLO"
    assert pool.pids == [pid]  # the same worker, kept


def test_a_worker_that_died_while_idle_is_replaced_and_the_call_still_runs(pool):
    # Seen dead (a zombie) is not enough for its pipe to refuse a write: the kernel
    # may close its end later, and a payload written meanwhile would be lost. The
    # pool asks whether the process has ended before it writes.
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)
    crashkit.wait_until(lambda: not crashkit.is_running(pid), timeout=10,
                        what="the worker to die")
    assert pool.call(b"again") == b"AGAIN"
    [new] = pool.pids
    assert new != pid


def _note_then_die(path: bytes) -> bytes:
    """A worker's target (importable by name): note the call in ``path``, then die."""
    with open(path, "a") as f:
        f.write("ran\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return b""


def test_a_worker_that_died_after_reading_its_payload_is_not_given_it_again(tmp_path):
    # The other side of the rule above: code that may have run is never run twice.
    notes = tmp_path / "calls"
    pool = WorkerPool(1, _note_then_die)
    try:
        with pytest.raises(WorkerDied, match="killed by signal SIGKILL"):
            pool.call(str(notes).encode())
    finally:
        pool.close(kill=True)
    assert notes.read_text() == "ran\n"


@pytest.mark.parametrize("kill", [False, True])
def test_a_closed_pool_leaves_no_process_and_refuses_calls(kill):
    before = set(crashkit.descendants(os.getpid()))
    pool = WorkerPool(2, bytes.upper)
    assert pool.call(b"x") == b"X"
    pool.close(kill=kill)
    assert set(crashkit.descendants(os.getpid())) - before == set()
    with pytest.raises(RuntimeError, match="closed"):
        pool.call(b"x")
