"""DaskExecutor: task code on a Dask cluster, the state machine in the flow's process.

Only task code moves to the workers (``remote.call``); triggers, retries and
every recorded transition stay here. What a real cluster adds, handled here:

* a cluster started for the run listens on 127.0.0.1 only;
* workers are checked before the first task: cairnflow importable there, the
  same Python (code pickled by value needs it), within a bounded time;
* modules the flow's files import from beside them are sent to the workers
  (``shipping``), so they resolve there as they do here;
* a worker lost mid-task, whose task Dask starts again elsewhere, is reported
  to the engine (``on_restart``) so both attempts are recorded;
* task code goes out, and results come back, in batches (``_Dispatcher``):
  Dask's round trip per task, not the code, was what a map's child cost.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from queue import SimpleQueue
from typing import Any

from cairnflow.context import current
from cairnflow.exceptions import CairnflowError
from cairnflow.runner import remote
from cairnflow.runner.executors import TaskTimeout, _PooledExecutor, abandoned

__all__ = ["DaskExecutor", "DaskWorkerError"]

WORKER_WAIT_SECONDS = float(os.environ.get("CAIRNFLOW_DASK_TIMEOUT", "30"))
"""How long to wait for a worker to join and answer before the run fails."""


IN_FLIGHT_PER_THREAD = 16
"""Task runs the engine keeps in flight per thread of the cluster's workers."""

CALLS_PER_DASK_TASK = 4
"""At most this many task runs' code in one Dask task, when more are queued than
the cluster has threads (``_Dispatcher``)."""


class DaskWorkerError(CairnflowError, RuntimeError):
    """The cluster's workers cannot run cairnflow task code (none joined, or they lack
    cairnflow or run another Python)."""


class DaskExecutor(_PooledExecutor):
    """Runs task code on a Dask cluster (``pip install "cairnflow[dask]"``).

    Prefect 1's signature. With ``address`` (``tcp://HOST:PORT``) it uses that
    cluster; without, it starts ``cluster_class(**cluster_kwargs)`` for the run
    (``distributed.LocalCluster`` by default, bound to 127.0.0.1) and closes it
    at the end. Workers need cairnflow installed and the flow's Python version.

    Args:
        address: the scheduler of an existing cluster; None starts one.
        cluster_class: the cluster class (or its import path, "pkg.Cluster") to
            start when no address is given.
        cluster_kwargs: passed to ``cluster_class``.
        adapt_kwargs: when given, passed to ``cluster.adapt()``.
        client_kwargs: passed to ``distributed.Client``.
        debug: accepted for Prefect 1 compatibility (Dask's own logging settings apply).

    Example:
        >>> from cairnflow.executors import DaskExecutor
        >>> executor = DaskExecutor(cluster_kwargs={"n_workers": 2})
        >>> remote_executor = DaskExecutor(address="tcp://127.0.0.1:8786")
    """

    parallel = True

    def __init__(self, address: str | None = None, cluster_class: Any = None,
                 cluster_kwargs: dict | None = None, adapt_kwargs: dict | None = None,
                 client_kwargs: dict | None = None, debug: bool = False):
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs) if adapt_kwargs is not None else None
        self.client_kwargs = dict(client_kwargs or {})
        self.debug = debug
        self._client: Any = None
        self._threads: ThreadPoolExecutor | None = None
        self._calls: _Dispatcher | None = None
        self._token = ""
        self._keys = itertools.count()
        self._code_cache: dict[Any, bytes] = {}  # each task's code pickled once per run

    def __repr__(self) -> str:
        return f"<DaskExecutor: {self.address or 'a local cluster'}>"

    @contextmanager
    def start(self) -> Iterator[None]:
        try:
            from distributed import Client
        except ImportError:
            raise ImportError('DaskExecutor needs Dask: pip install "cairnflow[dask]"') from None
        cluster = self._start_cluster() if self.address is None else None
        try:
            with _connect(Client, self.address or cluster, self.client_kwargs) as client:
                check_workers(client, self.address or "the local cluster")
                from cairnflow.runner import shipping  # imports Dask's plugin class

                shipped = shipping.send_to(client)
                self._client = client
                self._code_cache = {}
                self._token = uuid.uuid4().hex  # keys unique on a shared cluster
                self._keys = itertools.count()
                threads = sum(client.nthreads().values())
                self._calls = _Dispatcher(client, threads)
                # Task runs in flight: each waits in a thread of this pool while Dask
                # runs its code; several per worker thread keep the cluster busy, and
                # make the batches the dispatcher sends and gathers bigger.
                workers = max(32, IN_FLIGHT_PER_THREAD * threads)
                self._start_threads(workers, "cairnflow-dask")
                try:
                    yield
                except BaseException:
                    # Interrupted or stopped by an error: the run has recorded how it
                    # ended; do not wait for task code still running on the workers.
                    self._threads.shutdown(wait=False, cancel_futures=True)
                    self._calls.close(wait=False)
                    raise
                else:
                    self._threads.shutdown(wait=True, cancel_futures=True)
                    self._calls.close(wait=True)
                finally:
                    if shipped is not None and self.address is not None:
                        client.unregister_worker_plugin(shipped)
                    self._client = self._threads = self._calls = None
        finally:
            if cluster is not None:
                cluster.close()

    def _start_cluster(self) -> Any:
        from distributed import LocalCluster

        cls = self.cluster_class or LocalCluster
        if isinstance(cls, str):
            module, _, name = cls.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
        kwargs = dict(self.cluster_kwargs)
        if isinstance(cls, type) and issubclass(cls, LocalCluster):
            # Never reachable from the network unless asked for.
            kwargs.setdefault("host", "127.0.0.1")
            kwargs.setdefault("dashboard_address", "127.0.0.1:0")
        cluster = cls(**kwargs)
        if self.adapt_kwargs is not None:
            cluster.adapt(**self.adapt_kwargs)
        return cluster

    def run_task_code(self, fn: Callable[..., Any], kwargs: dict[str, Any],
                      timeout: float | None = None,
                      on_restart: Callable[[str], None] | None = None) -> Any:
        slug = current().get("task_slug") or "task"
        key = f"{slug}-{self._token}-{next(self._keys)}"  # no os.urandom per task
        calls = self._calls
        call = calls.submit(key, remote.pack(fn, kwargs, self._code_cache),
                            alone=timeout is not None)
        if not _wait(call, timeout, on_restart):
            where = calls.where(call)
            calls.cancel(call)
            abandoned(timeout, where)
            raise TaskTimeout()
        return remote.unpack(call.outcome())


def _wait(call: _Call, timeout: float | None, on_restart: Callable[[str], None] | None) -> bool:
    """Whether the call finished within ``timeout``; each worker lost while it held the
    call (Dask starts it again elsewhere) goes to ``on_restart`` on the way."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reported = 0
    while True:
        # Read after each wake-up: what set the event changed the call first.
        for worker in call.lost[reported:]:
            reported += 1
            if on_restart is not None:
                on_restart(f"The Dask worker running this task run ({worker}) was lost; "
                           "Dask started it again on another worker.")
        if call.done:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        call.woken.wait(left)
        call.woken.clear()


class _Call:
    """One task run's code handed to Dask, as the engine thread waiting for it sees it."""

    __slots__ = ("key", "payload", "alone", "future", "packed", "error", "lost", "done",
                 "cancelled", "woken")

    def __init__(self, key: str, payload: remote.Payload, alone: bool):
        self.key = key
        self.payload: remote.Payload | None = payload
        self.alone = alone  # in a Dask task of its own
        self.future: Any = None  # Dask's (shared with the calls sent with it), once sent
        self.packed: bytes | None = None  # what ``remote.call`` returned, once gathered
        self.error: BaseException | None = None  # the dispatcher's own failure
        self.lost: list[str] = []  # workers lost while they held it
        self.done = self.cancelled = False
        self.woken = threading.Event()

    def outcome(self) -> bytes:
        """What the worker returned; raises what Dask raised instead (a lost task)."""
        if self.error is not None:
            raise self.error
        if self.packed is not None:
            return self.packed
        return self.future.result()


class _Dispatcher:
    """Task code to the cluster and results back, in batches.

    A round trip per task run (``client.submit``, then ``future.result()``) costs
    the scheduler a graph update and a gather each: with a map's children in
    flight at once, that was what a task run cost, not the code. Here the calls
    queued while one ``client.map`` goes out go in the next one, and the results
    that arrive while one gather is under way come back in the next gather.

    When more calls are queued than the cluster has threads, the extra ones would
    only wait in the scheduler's queue: up to ``CALLS_PER_DASK_TASK`` of them go
    as one Dask task, called one after the other on one worker thread, so Dask's
    overhead per task is paid once for them. The price: a slow call delays the
    few sent with it, which another worker thread can no longer take. A call
    with a timeout always goes alone (cancelling it must not drop another's
    result).

    Worker loss comes from the scheduler's own ``remove-worker`` event (with the
    keys the worker held), not from a message per task run.
    """

    def __init__(self, client: Any, threads_on_cluster: int):
        self.client = client
        self.sent: dict[str, list[_Call]] = {}  # Dask key -> the calls its task makes
        self._threads_on_cluster = max(1, threads_on_cluster)  # as the run started
        self._lock = threading.Lock()  # guards _queued and _stopping
        self._queued: list[_Call] = []
        self._queued_event = threading.Event()
        self._stopping = False
        self._finished: SimpleQueue[Any] = SimpleQueue()  # Dask futures; None to stop
        client.subscribe_topic(_SCHEDULER_TOPIC, self._on_scheduler_event)
        self._threads = [threading.Thread(target=target, daemon=True, name=name)
                         for target, name in ((self._send, "cairnflow-dask-send"),
                                              (self._collect, "cairnflow-dask-collect"))]
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, payload: remote.Payload, alone: bool = False) -> _Call:
        """Queue a call; ``alone``: in a Dask task of its own."""
        call = _Call(key, payload, alone)
        with self._lock:
            if self._stopping:
                _fail([call], _shut_down())
            self._queued.append(call)
            self._queued_event.set()
        return call

    def cancel(self, call: _Call) -> None:
        """Stop waiting for a call; Dask drops it if it has not started."""
        call.cancelled = True  # read by _send after it sets the future: one of us cancels
        if call.future is not None:
            call.future.cancel()

    def where(self, call: _Call) -> str:
        """The worker running a call (asked of the scheduler: only when one timed out)."""
        key = call.future.key if call.future is not None else None
        try:
            for worker, keys in self.client.processing().items():
                if key in keys:
                    return f"Dask worker {worker}"
        except Exception:
            pass
        return "a Dask worker"

    def close(self, wait: bool) -> None:
        """Stop both threads (``wait``: until they are done); whoever still waits for a
        call gets an error instead of its result."""
        with self._lock:
            self._stopping = True
            self._queued_event.set()
        self._finished.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        try:
            self.client.unsubscribe_topic(_SCHEDULER_TOPIC)
        except Exception:
            pass
        for calls in list(self.sent.copy().values()):
            _fail(calls, _shut_down())

    def _send(self) -> None:
        while True:
            self._queued_event.wait()
            with self._lock:
                batch, self._queued = self._queued, []
                self._queued_event.clear()
                stopping = self._stopping
            if stopping:
                _fail(batch, _shut_down())
                return
            batch = [call for call in batch if not call.cancelled]
            try:
                self._send_batch(self._group(batch))
            except Exception as exc:  # a bug here must fail these task runs, not hang all
                _fail(batch, exc)

    def _group(self, batch: list[_Call]) -> list[list[_Call]]:
        """The calls of a batch in Dask tasks: one each while the cluster has a thread
        for each, more per task (up to CALLS_PER_DASK_TASK) past that."""
        alone = [[call] for call in batch if call.alone]
        rest = [call for call in batch if not call.alone]
        size = max(1, min(CALLS_PER_DASK_TASK, -(-len(rest) // self._threads_on_cluster)))
        return alone + [rest[i:i + size] for i in range(0, len(rest), size)]

    def _send_batch(self, groups: list[list[_Call]]) -> None:
        if not groups:
            return
        keys = [calls[0].key if len(calls) == 1 else f"{calls[0].key}+{len(calls)}"
                for calls in groups]
        try:
            futures = self.client.map(remote.call_each,
                                      [[call.payload for call in calls] for calls in groups],
                                      key=keys, pure=False)
        except Exception as exc:
            for calls in groups:
                _fail(calls, exc)
            return
        for calls, key, future in zip(groups, keys, futures):
            self.sent[key] = calls
            for call in calls:
                call.future, call.payload = future, None
                if call.cancelled:  # timed out while it was being sent (it is alone)
                    future.cancel()
            future.add_done_callback(self._finished.put)

    def _collect(self) -> None:
        while True:
            batch = [self._finished.get()]
            while not self._finished.empty():
                batch.append(self._finished.get())
            futures = [f for f in batch if f is not None]
            if futures:
                self._deliver(futures)
            if len(futures) < len(batch):
                return

    def _deliver(self, futures: list[Any]) -> None:
        """One gather for the results that finished; each waiter woken with its own."""
        finished = {f.key: f for f in futures if f.status == "finished"}
        values: dict[str, Any] = {}
        error = None
        if finished:
            try:
                values = self.client.gather(finished, errors="skip")
            except Exception as exc:
                error = exc
        for future in futures:
            packed = values.get(future.key) or ()
            for i, call in enumerate(self.sent.pop(future.key, ())):
                call.packed = packed[i] if packed else None
                call.error = error
                call.done = True
                call.woken.set()

    def _on_scheduler_event(self, event: tuple[float, Any]) -> None:
        """A worker left: the calls it held will run again (in the client's loop thread)."""
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        worker = message.get("worker", "a worker")
        for key in (*message.get("processing-tasks", ()),
                    *message.get("lost-computed-tasks", ())):
            for call in self.sent.get(key, ()):
                if not call.done:
                    call.lost.append(worker)
                    call.woken.set()


_SCHEDULER_TOPIC = "all"
"""The topic the scheduler logs worker arrivals and departures to."""


def _shut_down() -> RuntimeError:
    return RuntimeError("the Dask executor was shut down")


def _fail(calls: list[_Call], error: BaseException) -> None:
    for call in calls:
        if not call.done:
            call.error, call.done = error, True
            call.woken.set()


def _connect(client_class: Any, target: Any, kwargs: dict) -> Any:
    try:
        return client_class(target, **kwargs)
    except OSError as exc:
        raise DaskWorkerError(f"cannot reach the Dask scheduler at {target}: {exc}") from None


def check_workers(client: Any, where: str, timeout: float = WORKER_WAIT_SECONDS) -> None:
    """Fail within ``timeout`` seconds, in one clear sentence, unless at least one
    worker joined and every worker can import cairnflow on this Python version."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        raise DaskWorkerError(f"no Dask worker joined {where} within {timeout:g}s") from None
    probe = "(__import__('sys').version_info[:2], __import__('cairnflow.runner.remote') and 1)"
    try:
        answers = client.run(eval, probe, on_error="return", callback_timeout=timeout)
    except Exception as exc:
        raise DaskWorkerError(f"the Dask workers of {where} did not answer within "
                              f"{timeout:g}s ({exc!r})") from None
    here = tuple(sys.version_info[:2])
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            if isinstance(answer, ImportError):
                raise DaskWorkerError(f"Dask worker {worker} cannot import cairnflow ({answer}): "
                                      "install cairnflow where the workers run") from None
            raise DaskWorkerError(f"Dask worker {worker} cannot run cairnflow task code: "
                                  f"{answer!r}") from None
        version = tuple(answer[0])
        if version != here:
            raise DaskWorkerError(
                f"Dask worker {worker} runs Python {'.'.join(map(str, version))}, the flow "
                f"Python {'.'.join(map(str, here))}: task code needs the same version")
