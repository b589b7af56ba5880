"""Executors: LocalExecutor runs in order; LocalDaskExecutor runs independent tasks at once.

Concurrency is proven by rendezvous (a barrier, or files each task waits for),
never by wall-clock timing: run one at a time, the rendezvous would time out.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta

import pytest

import crashkit

from cairnflow import Flow, executors, get_run_logger, states, task, triggers, unmapped


def _threads():
    return executors.LocalDaskExecutor(scheduler="threads", num_workers=4)


def _processes():
    return executors.LocalDaskExecutor(scheduler="processes", num_workers=2)


def _map_reduce_flow():
    """numbers -> square.map -> add offset (unmapped) .map -> total."""

    @task
    def numbers():
        return [1, 2, 3, 4]

    @task
    def square(x):
        return x * x

    @task
    def shift(x, offset):
        return x + offset

    @task
    def total(xs):
        return sum(xs)

    with Flow("map-reduce") as flow:
        squared = square.map(numbers())
        shifted = shift.map(squared, unmapped(100))
        summed = total(shifted)
    return flow, shifted, summed


def _map_reduce_results(flow_state, shifted, summed):
    return ([c.result for c in flow_state.result[shifted].map_states],
            flow_state.result[summed].result)


EXPECTED_MAP_REDUCE = ([101, 104, 109, 116], 430)


# -- LocalExecutor -------------------------------------------------------------------------


def test_local_executor_runs_tasks_one_at_a_time_in_dependency_order(memory_store):
    order = []

    @task
    def step(label):
        order.append(("start", label))
        order.append(("end", label))
        return label

    with Flow("ordered") as flow:
        first = step("first")
        second = step("second", upstream_tasks=[first])
        step("third", upstream_tasks=[second])
    flow.run(store=memory_store, executor=executors.LocalExecutor())
    assert order == [("start", "first"), ("end", "first"), ("start", "second"),
                     ("end", "second"), ("start", "third"), ("end", "third")]


def test_local_executor_runs_independent_tasks_in_the_order_they_were_added(memory_store):
    order = []

    @task
    def step(label):
        order.append(label)

    with Flow("added-order") as flow:
        for label in ["a", "b", "c"]:
            step(label)
    flow.run(store=memory_store, executor=executors.LocalExecutor())
    assert order == ["a", "b", "c"]


def test_default_executor_runs_task_code_in_the_calling_thread(memory_store):
    threads = []

    @task
    def where():
        threads.append(threading.get_ident())

    with Flow("same-thread") as flow:
        where()
        where()
    flow.run(store=memory_store)
    assert threads == [threading.get_ident()] * 2


# -- LocalDaskExecutor: settings -------------------------------------------------------------


def test_local_dask_executor_refuses_an_unknown_scheduler():
    with pytest.raises(ValueError, match="scheduler"):
        executors.LocalDaskExecutor(scheduler="gpu")


def test_local_dask_executor_refuses_zero_workers():
    with pytest.raises(ValueError, match="num_workers"):
        executors.LocalDaskExecutor(num_workers=0)


def test_synchronous_scheduler_runs_in_order(memory_store):
    order = []

    @task
    def step(label):
        order.append(label)

    with Flow("synchronous") as flow:
        for label in ["a", "b", "c"]:
            step(label)
    flow.run(store=memory_store, executor=executors.LocalDaskExecutor(scheduler="synchronous"))
    assert order == ["a", "b", "c"]


# -- LocalDaskExecutor: threads --------------------------------------------------------------


def test_threads_run_independent_tasks_at_the_same_time(memory_store):
    barrier = threading.Barrier(3, timeout=5)  # broken (and the tasks failed) if run in turn

    @task
    def meet(i):
        barrier.wait()
        return i

    with Flow("barrier") as flow:
        met = [meet(i) for i in range(3)]
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert [flow_state.result[t].result for t in met] == [0, 1, 2]
    assert flow_state.is_successful()


def test_threads_run_mapped_children_at_the_same_time(memory_store):
    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet(i):
        barrier.wait()
        return i * 2

    with Flow("mapped-barrier") as flow:
        mapped = meet.map([1, 2, 3])
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert [c.result for c in flow_state.result[mapped].map_states] == [2, 4, 6]


def test_threads_a_slow_mapped_child_holds_up_only_its_own_thread(memory_store):
    """The children of a map are taken one at a time by whichever thread is free: the
    first child waits for all the others to finish, which two threads can only do if
    the second takes every other child."""
    others_done = threading.Semaphore(0)

    @task
    def child(i):
        if i == 0:
            for _ in range(9):
                assert others_done.acquire(timeout=10), "the other children did not run"
        else:
            others_done.release()
        return i

    with Flow("one-slow-child") as flow:
        mapped = child.map(list(range(10)))
    executor = executors.LocalDaskExecutor(scheduler="threads", num_workers=2)
    flow_state = flow.run(store=memory_store, executor=executor)
    assert [c.result for c in flow_state.result[mapped].map_states] == list(range(10))


def test_threads_start_no_more_mapped_children_once_the_run_is_interrupted(memory_store):
    started = []
    release = threading.Event()

    @task
    def child(i):
        started.append(i)
        if i == 0:
            raise KeyboardInterrupt  # as if Ctrl-C: the run stops
        release.wait(10)  # child 1, on the other thread, is still running then
        return i

    with Flow("interrupted-map") as flow:
        child.map(list(range(40)))
    executor = executors.LocalDaskExecutor(scheduler="threads", num_workers=2)
    with pytest.raises(KeyboardInterrupt):
        flow.run(store=memory_store, executor=executor)
    release.set()
    crashkit.wait_until(lambda: not any(t.name.startswith("cairnflow_")
                                        for t in threading.enumerate()),
                        10, "the executor's threads to end")
    assert 0 in started and set(started) <= {0, 1}
    run = memory_store.list_runs()[0]
    assert run.stored_state == "Cancelled"


def test_threads_executor_set_on_the_flow_is_used(memory_store):
    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet():
        barrier.wait()

    with Flow("flow-executor", executor=_threads()) as flow:
        for _ in range(3):
            meet()
    assert flow.run(store=memory_store).is_successful()


def test_threads_respect_dependencies(memory_store):
    order = []

    @task
    def first():
        time.sleep(0.05)  # a downstream task started early would overtake it
        order.append("first")
        return 1

    @task
    def second(x):
        order.append("second")
        return x + 1

    with Flow("deps") as flow:
        result = second(first())
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert flow_state.result[result].result == 2
    assert order == ["first", "second"]


def test_threads_give_the_same_mapped_results_as_local(memory_store):
    flow, shifted, summed = _map_reduce_flow()
    local = _map_reduce_results(flow.run(store=memory_store), shifted, summed)
    threaded = _map_reduce_results(flow.run(store=memory_store, executor=_threads()),
                                   shifted, summed)
    assert local == threaded == EXPECTED_MAP_REDUCE


def test_threads_trigger_fail_downstream_of_a_failure(memory_store):
    @task
    def broken():
        raise ValueError("x")

    @task
    def after():
        return 1

    with Flow("threads-fail") as flow:
        down = after(upstream_tasks=[broken()])
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert type(flow_state.result[down]) is states.TriggerFailed
    assert flow_state.is_failed()


def test_threads_retry_a_failing_task(memory_store):
    calls = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")
        return "ok"

    with Flow("threads-retry") as flow:
        t = flaky()
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert flow_state.result[t].result == "ok"
    assert memory_store.get_task_runs(memory_store.list_runs()[0].id)[0].attempts == 2


def test_threads_time_out_a_slow_task(memory_store):
    @task(timeout=0.2)
    def slow():
        time.sleep(2)

    with Flow("threads-timeout") as flow:
        t = slow()
    flow_state = flow.run(store=memory_store, executor=_threads())
    assert type(flow_state.result[t]) is states.TimedOut


def test_threads_store_run_logger_records_with_their_task(memory_store):
    @task
    def talk(i):
        get_run_logger().info("thread %d", i)

    with Flow("threads-logs") as flow:
        talkers = [talk(i) for i in range(3)]
    flow.run(store=memory_store, executor=_threads())
    run_id = memory_store.list_runs()[0].id
    for i, t in enumerate(talkers):
        records = memory_store.get_logs(run_id, task_slug=flow.slugs[t])
        assert [r.message for r in records] == [f"thread {i}"]


# -- LocalDaskExecutor: processes (each run spawns workers: keep these few) -----------------


def test_processes_run_independent_tasks_at_the_same_time_in_other_processes(
        memory_store, tmp_path):
    @task
    def meet(i, folder, others):
        start = time.time()
        (folder / f"started-{i}").touch()
        deadline = time.time() + 10  # run in turn, this would time out and fail
        while not all((folder / f"started-{j}").exists() for j in others):
            if time.time() > deadline:
                raise TimeoutError("the other task never started")
            time.sleep(0.01)
        (folder / f"{i}.json").write_text(json.dumps([os.getpid(), start, time.time()]))
        return i

    with Flow("processes-overlap") as flow:
        met = [meet(i, tmp_path, [0, 1]) for i in range(2)]
    flow_state = flow.run(store=memory_store, executor=_processes())
    assert [flow_state.result[t].result for t in met] == [0, 1]
    (pid0, start0, end0), (pid1, start1, end1) = (
        json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2))
    assert os.getpid() not in (pid0, pid1)
    assert pid0 != pid1
    assert max(start0, start1) < min(end0, end1)  # the two intervals overlap


def test_processes_give_the_same_mapped_results_as_local(memory_store):
    flow, shifted, summed = _map_reduce_flow()
    local = _map_reduce_results(flow.run(store=memory_store), shifted, summed)
    in_processes = _map_reduce_results(flow.run(store=memory_store, executor=_processes()),
                                       shifted, summed)
    assert local == in_processes == EXPECTED_MAP_REDUCE


def test_processes_store_logs_and_errors_from_the_worker(memory_store):
    @task
    def talk():
        get_run_logger().info("hello from pid %d", os.getpid())
        return os.getpid()

    @task
    def broken():
        raise ValueError("in a worker")

    with Flow("processes-logs") as flow:
        talker = talk()
        failing = broken()
    flow_state = flow.run(store=memory_store, executor=_processes())
    worker_pid = flow_state.result[talker].result
    assert worker_pid != os.getpid()
    records = memory_store.get_logs(memory_store.list_runs()[0].id,
                                    task_slug=flow.slugs[talker])
    assert [r.message for r in records] == [f"hello from pid {worker_pid}"]
    state = flow_state.result[failing]
    assert type(state) is states.Failed
    assert state.message == "Error during execution of task: ValueError('in a worker')"


class _Scale(__import__("cairnflow").Task):
    """A class-based task: its code is a bound method, so each instance is its own code."""

    def __init__(self, factor, **kwargs):
        self.factor = factor
        super().__init__(**kwargs)

    def run(self, x):
        return x * self.factor


def test_each_task_code_reaches_the_worker_processes_as_its_own(memory_store):
    """Code is pickled once per task per run: two instances of one Task class, and
    two functions, each run with their own code and settings on the workers."""
    @task
    def plus_one(x):
        return x + 1

    @task
    def minus_one(x):
        return x - 1

    double, triple = _Scale(2, name="double"), _Scale(3, name="triple")
    with Flow("codes") as flow:
        a = double.map([1, 2, 3])
        b = triple.map([1, 2, 3])
        c = plus_one.map(a)
        d = minus_one.map(b)
    state = flow.run(store=memory_store, executor=_processes())
    assert state.is_successful()
    assert state.result[c].result == [3, 5, 7]
    assert state.result[d].result == [2, 5, 8]
    state = flow.run(store=memory_store, executor=_processes())  # a second run, anew
    assert state.result[a].result == [2, 4, 6] and state.result[b].result == [3, 6, 9]


# -- the processes executor's pool: lost workers, timeouts, nothing left behind -------------


def _one_worker():
    return executors.LocalDaskExecutor(scheduler="processes", num_workers=1)


def _descendants() -> set[int]:
    """This process's children and theirs, zombies included (Linux /proc)."""
    return set(crashkit.descendants(os.getpid()))


@pytest.mark.parametrize("how, ended", [("kill", "killed by signal SIGKILL"),
                                        ("exit", "exited with code 3")])
def test_a_worker_that_dies_mid_task_fails_that_task_run_and_the_others_run_on(
        memory_store, how, ended):
    @task
    def die(how):
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)

    @task(trigger=triggers.always_run)
    def after(i):
        return i

    with Flow("dying-worker") as flow:
        dead = die(how)
        later = after.map(range(3), upstream_tasks=[unmapped(dead)])
    before = _descendants()
    state = flow.run(store=memory_store, executor=_one_worker())  # the only worker dies
    failed = state.result[dead]
    assert type(failed) is states.Failed
    assert failed.message.startswith("Error during execution of task: WorkerDied(")
    assert "running the task's code died: " + ended in failed.message
    assert [c.result for c in state.result[later].map_states] == [0, 1, 2]
    assert _descendants() - before == set()


def test_a_timed_out_task_has_its_worker_killed_and_not_given_more_work(
        memory_store, tmp_path):
    @task(timeout=0.5)
    def stuck(folder):
        (folder / "stuck").write_text(str(os.getpid()))
        time.sleep(120)

    @task(trigger=triggers.always_run)
    def after(i):
        return os.getpid()

    with Flow("stuck-worker") as flow:
        timed_out = stuck(tmp_path)
        later = after.map(range(3), upstream_tasks=[unmapped(timed_out)])
    before = _descendants()
    state = flow.run(store=memory_store, executor=_one_worker())
    assert type(state.result[timed_out]) is states.TimedOut
    stuck_pid = int((tmp_path / "stuck").read_text())
    assert not crashkit.is_running(stuck_pid)
    assert stuck_pid not in {c.result for c in state.result[later].map_states}
    [warning] = [r.message for r in memory_store.get_logs(memory_store.list_runs()[0].id)
                 if "timed out" in r.message]
    assert "abandoned" in warning and "worker process was killed" in warning
    assert _descendants() - before == set()


def test_a_run_on_worker_processes_leaves_none_behind(memory_store):
    flow, shifted, summed = _map_reduce_flow()
    before = _descendants()
    state = flow.run(store=memory_store, executor=_processes())
    assert _map_reduce_results(state, shifted, summed) == EXPECTED_MAP_REDUCE
    assert _descendants() - before == set()


def test_big_values_cross_to_the_worker_processes_and_back(memory_store):
    @task
    def grow(data):
        return data * 2

    with Flow("big-values") as flow:
        grown = grow(b"ab" * (3 << 20))  # 6 MiB there, 12 MiB back
    state = flow.run(store=memory_store, executor=_processes())
    assert state.result[grown].result == b"ab" * (6 << 20)


def test_threads_commit_each_childs_running_before_its_code_runs(tmp_path):
    """Group commit on 8 threads: however the commits are shared, a child's code runs
    only once its Running is in the database, as a second handle on the file reads it."""
    from cairnflow.context import context
    from cairnflow.statestore import open_store

    url = f"sqlite:///{tmp_path / 'cairnflow.db'}"
    reader = open_store(url)
    seen = {}

    @task
    def child(i):
        run_id, slug = context.flow_run_id, context.task_slug
        [mine] = [t for t in reader.get_task_runs(run_id)
                  if t.task_slug == slug and t.map_index == i]
        seen[i] = mine.state
        return i

    with Flow("durable-threads") as flow:
        child.map(list(range(200)))
    store = open_store(url)
    executor = executors.LocalDaskExecutor(scheduler="threads", num_workers=8)
    try:
        assert flow.run(store=store, executor=executor).is_successful()
    finally:
        store.close()
        reader.close()
    assert seen == {i: "Running" for i in range(200)}


def test_an_executor_of_ones_own_runs_mapped_children_at_the_same_time(memory_store):
    """An Executor subclass that sets ``parallel`` and its own ``submit`` (the
    extension point the base class documents) runs a map's children at once."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    class OwnPool(executors.Executor):
        parallel = True

        @contextmanager
        def start(self):
            with ThreadPoolExecutor(4) as self.pool:
                yield

        def submit(self, fn, *args, **kwargs):
            return self.pool.submit(fn, *args, **kwargs)

    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet(i):
        barrier.wait()
        return i

    with Flow("own-executor-map") as flow:
        mapped = meet.map([1, 2, 3])
    flow_state = flow.run(store=memory_store, executor=OwnPool())
    assert [c.result for c in flow_state.result[mapped].map_states] == [1, 2, 3]
