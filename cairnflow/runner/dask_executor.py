"""DaskExecutor: task code on a Dask cluster, the state machine in the flow's process.

Only task code moves to the workers (``remote.call``); triggers, retries and
every recorded transition stay here. What a real cluster adds, handled here:

* a cluster started for the run listens on 127.0.0.1 only;
* workers are checked before the first task: cairnflow importable there, the
  same Python (code pickled by value needs it), within a bounded time;
* modules the flow's files import from beside them are sent to the workers
  (``shipping``), so they resolve there as they do here;
* a worker lost mid-task, whose task Dask starts again elsewhere, is reported
  to the engine (``on_restart``) so both attempts are recorded.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from cairnflow.context import current
from cairnflow.exceptions import CairnflowError
from cairnflow.runner import remote
from cairnflow.runner.executors import TaskTimeout, _PooledExecutor, abandoned

__all__ = ["DaskExecutor", "DaskWorkerError"]

WORKER_WAIT_SECONDS = float(os.environ.get("CAIRNFLOW_DASK_TIMEOUT", "30"))
"""How long to wait for a worker to join and answer before the run fails."""


IN_FLIGHT_PER_THREAD = 4
"""Task runs the engine keeps in flight per thread of the cluster's workers."""


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
        self._topic = ""
        self._token = ""
        self._keys = itertools.count()
        self._starts: dict[str, list[str]] = defaultdict(list)
        self._changed = threading.Condition()  # guards _starts and _woken
        self._woken: dict[str, threading.Event] = {}
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
                self._topic = f"cairnflow-started-{self._token}"
                client.subscribe_topic(self._topic, self._on_started)
                # Task runs in flight: each waits in a thread of this pool, and Dask's
                # round trip (milliseconds) is what bounds a map's throughput, so
                # several per worker thread keep the cluster busy.
                workers = max(32, IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()))
                self._threads = ThreadPoolExecutor(workers, thread_name_prefix="cairnflow-dask")
                try:
                    yield
                except BaseException:
                    # Interrupted or stopped by an error: the run has recorded how it
                    # ended; do not wait for task code still running on the workers.
                    self._threads.shutdown(wait=False, cancel_futures=True)
                    raise
                else:
                    self._threads.shutdown(wait=True, cancel_futures=True)
                finally:
                    client.unsubscribe_topic(self._topic)
                    if shipped is not None and self.address is not None:
                        client.unregister_worker_plugin(shipped)
                    self._client = self._threads = None
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

    def _on_started(self, event: tuple[float, Any]) -> None:
        """A worker began a task's code (called in the client's event-loop thread)."""
        _, (key, worker) = event
        with self._changed:
            self._starts[key].append(worker)
            woken = self._woken.get(key)
        if woken is not None:
            woken.set()

    def run_task_code(self, fn: Callable[..., Any], kwargs: dict[str, Any],
                      timeout: float | None = None,
                      on_restart: Callable[[str], None] | None = None) -> Any:
        slug = current().get("task_slug") or "task"
        key = f"{slug}-{self._token}-{next(self._keys)}"  # no os.urandom per task
        # One event per task run: a start or the end wakes its own waiter, not all
        # of them (a condition shared by the pool's threads woke every one each time).
        woken = threading.Event()
        with self._changed:
            self._woken[key] = woken
        try:
            future = self._client.submit(remote.call_on_dask,
                                         remote.pack(fn, kwargs, self._code_cache),
                                         self._topic, key, key=key, pure=False)
            future.add_done_callback(lambda _: woken.set())
            self._wait(future, key, woken, timeout, on_restart)
        finally:
            with self._changed:
                starts = self._starts.pop(key, [])
                self._woken.pop(key, None)
        if not future.done():
            future.cancel()
            where = f"Dask worker {starts[-1]}" if starts else "a Dask worker"
            abandoned(timeout, where)
            raise TaskTimeout()
        return remote.unpack(future.result())

    def _wait(self, future: Any, key: str, woken: threading.Event, timeout: float | None,
              on_restart: Callable[[str], None] | None) -> None:
        """Until the code is done or past ``timeout``; each start after the first (the
        worker running it was lost and Dask started it again) goes to ``on_restart``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while True:
            with self._changed:
                starts = list(self._starts.get(key, ()))
            if len(starts) == seen and not future.done():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                woken.wait(left)
                woken.clear()  # then read again: a later set is seen by the next wait
                with self._changed:
                    starts = list(self._starts.get(key, ()))
            for i in range(max(seen, 1), len(starts)):
                if on_restart is not None:
                    on_restart(f"The Dask worker running this task run ({starts[i - 1]}) "
                               f"was lost; Dask started it again on {starts[i]}.")
            seen = max(seen, len(starts))
            if future.done():
                return


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
