"""The processes executor's worker pool on its own, with real processes: calls, a
worker that dies while idle, and closing. (Deaths and timeouts mid-task, through
the engine: ``test_executors.py``.)"""

from __future__ import annotations

import os
import signal

import pytest

import crashkit

from cairnflow.runner.process_pool import WorkerPool


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


@pytest.mark.xfail(strict=False, reason=(
    "intermittent (about 1 run in 3 here): the send to the killed worker can succeed "
    "and the call then fails with WorkerDied instead of going to the replacement; "
    "neither its exit code nor EOF on its socket is visible yet when the call is "
    "made. Not understood; see issue 12's notes."))
def test_a_worker_that_died_while_idle_is_replaced_and_the_call_still_runs(pool):
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)
    crashkit.wait_until(lambda: not crashkit.is_running(pid), timeout=10,
                        what="the worker to die")
    assert pool.call(b"again") == b"AGAIN"
    [new] = pool.pids
    assert new != pid


@pytest.mark.parametrize("kill", [False, True])
def test_a_closed_pool_leaves_no_process_and_refuses_calls(kill):
    before = set(crashkit.descendants(os.getpid()))
    pool = WorkerPool(2, bytes.upper)
    assert pool.call(b"x") == b"X"
    pool.close(kill=kill)
    assert set(crashkit.descendants(os.getpid())) - before == set()
    with pytest.raises(RuntimeError, match="closed"):
        pool.call(b"x")
