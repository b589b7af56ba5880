"""Executors: where task runs are scheduled and where task code runs.

The engine's bookkeeping for a task run (triggers, retries, recording every
transition) always happens in the flow's own process. An executor decides two
things: whether independent task runs proceed at the same time (``submit``),
and where the task's own code is called (``run_task_code``): in this thread,
in a pool of processes, or on a Dask cluster.

Example:
    >>> from cairnflow import executors
    >>> executor = executors.LocalDaskExecutor(scheduler="threads", num_workers=4)
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from cairnflow.runner.process_pool import WorkerPool

# concurrent.futures, multiprocessing, the process pool and cloudpickle (``remote``) are
# imported by the executors that use them: a flow on LocalExecutor, and ``import
# cairnflow``, never pay for them.

__all__ = ["Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor", "TaskTimeout"]

log = logging.getLogger("cairnflow.executor")


class TaskTimeout(Exception):
    """Raised to the engine (never to user code) when task code exceeds its timeout."""


class Executor:
    """Base executor: runs everything in order, in the calling thread.

    Subclasses set ``parallel`` and override ``start``, ``submit`` or
    ``run_task_code``.
    """

    parallel = False
    """Whether independent task runs may proceed at the same time."""

    concurrency: int | None = None
    """How many task runs' engine work may proceed at once (a pooled executor's
    threads, while started): a map is run by that many lanes, each taking the next
    child. None: no limit known, so each child is submitted on its own."""

    @contextmanager
    def start(self) -> Iterator[None]:
        """Acquire the executor's resources for the duration of a flow run."""
        yield

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` (engine work for one task run); return a future."""
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)
        return future

    def wait(self, futures: Iterable[Future]) -> list[Any]:
        """The results of ``futures``, in order, once all are done."""
        return [f.result() for f in futures]

    def run_task_code(self, fn: Callable[..., Any], kwargs: dict[str, Any],
                      timeout: float | None = None,
                      on_restart: Callable[[str], None] | None = None) -> Any:
        """Call the task's code; raise ``TaskTimeout`` past ``timeout`` seconds.

        An executor that may lose a worker and start the code again elsewhere
        (Dask) calls ``on_restart(why)`` when it does, so the engine records it.
        """
        if timeout is None:
            return fn(**kwargs)
        return _call_with_timeout(fn, kwargs, timeout)


class LocalExecutor(Executor):
    """Runs tasks one at a time, in the flow's thread, in dependency order (the default)."""


class _PooledExecutor(Executor):
    """Engine work for each task run goes to a pool of threads of the flow's process."""

    _threads: ThreadPoolExecutor | None = None

    def _start_threads(self, count: int, prefix: str) -> ThreadPoolExecutor:
        from concurrent.futures import ThreadPoolExecutor

        self._threads = ThreadPoolExecutor(count, thread_name_prefix=prefix)
        self.concurrency = count
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        if self._threads is None:
            return super().submit(fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        return self._threads.submit(ctx.run, fn, *args, **kwargs)


class LocalDaskExecutor(_PooledExecutor):
    """Runs independent tasks at the same time on this machine.

    Prefect 1's name; it needs no Dask. ``scheduler="threads"`` calls task code
    in a pool of threads (good for I/O), ``"processes"`` in a pool of worker
    processes (good for CPU-bound Python; task code, arguments and results
    must be picklable by cloudpickle), ``"synchronous"`` in order, like
    ``LocalExecutor``.

    Args:
        scheduler: "threads", "processes" or "synchronous".
        num_workers: how many task runs proceed at once (the CPU count by default).
    """

    def __init__(self, scheduler: str = "threads", num_workers: int | None = None):
        if scheduler not in ("threads", "processes", "synchronous"):
            raise ValueError(f'scheduler must be "threads", "processes" or "synchronous", '
                             f"not {scheduler!r}")
        if num_workers is not None and num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        self.scheduler = scheduler
        self.num_workers = num_workers or os.cpu_count() or 1
        self.parallel = scheduler != "synchronous"
        self._threads: ThreadPoolExecutor | None = None
        self._processes: WorkerPool | None = None
        self._code_cache: dict[Any, bytes] = {}

    def __repr__(self) -> str:
        return f"<LocalDaskExecutor: {self.scheduler}, {self.num_workers} workers>"

    @contextmanager
    def start(self) -> Iterator[None]:
        if not self.parallel:
            yield
            return
        self._start_threads(self.num_workers, "cairnflow")
        self._code_cache = {}  # each task's code pickled once per run
        try:
            if self.scheduler == "processes":
                self._processes = _start_workers(self.num_workers)
            yield
        except BaseException:
            # Interrupted (Ctrl-C) or stopped by an error: the run has recorded how it
            # ended; do not wait for task code still running. Threads cannot be killed
            # (they finish unrecorded); worker processes are.
            self._threads.shutdown(wait=False, cancel_futures=True)
            if self._processes is not None:
                self._processes.close(kill=True)
            self._threads = self._processes = None
            self._code_cache = {}
            raise
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self._processes is not None:
            self._processes.close()
        self._threads = self._processes = None
        self._code_cache = {}

    def run_task_code(self, fn: Callable[..., Any], kwargs: dict[str, Any],
                      timeout: float | None = None,
                      on_restart: Callable[[str], None] | None = None) -> Any:
        if self._processes is None:
            return super().run_task_code(fn, kwargs, timeout)
        from cairnflow.runner import remote

        payload = remote.joined(remote.pack(fn, kwargs, self._code_cache))
        try:
            packed = self._processes.call(payload, timeout)
        except TimeoutError:
            log.warning("The task run timed out after %gs and was abandoned: its worker "
                        "process was killed (a new one takes its place); its log lines "
                        "are lost.", timeout)
            raise TaskTimeout() from None
        return remote.unpack(packed)


def _start_workers(count: int) -> WorkerPool:
    """``count`` worker processes, once all have started: a run's first tasks do not
    wait for them, and a run on an executor kept started (as the benchmarks keep it)
    has their start-up behind it."""
    from cairnflow.runner import remote
    from cairnflow.runner.process_pool import WorkerPool

    pool = WorkerPool(count, remote.call_joined)
    try:
        pool.wait_started()
    except BaseException:  # Ctrl-C while they start
        pool.close(kill=True)
        raise
    return pool


def abandoned(timeout: float | None, where: str) -> None:
    """Say in the run's logs that timed-out code was left running, and what that means."""
    log.warning("The task run timed out after %gs and was abandoned: its code may still be "
                "running on %s; its result and log lines are ignored.", timeout, where)


def _call_with_timeout(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> Any:
    """Run ``fn`` in a helper thread and stop waiting after ``timeout`` seconds.

    Python cannot kill a thread: task code that overruns keeps running in the
    background, but its result is ignored and the task is TimedOut.
    """
    outcome: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = ctx.run(fn, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="cairnflow-timeout")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TaskTimeout()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]



def __getattr__(name: str) -> Any:
    if name == "DaskExecutor":  # its module imports Dask's pieces only when it starts
        from cairnflow.runner.dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
