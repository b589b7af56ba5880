"""A pool of worker processes, each with a pipe of its own, for task code.

The thread that needs code run takes an idle worker, writes the payload to its
pipe and blocks reading the reply: no feeder or result threads, no futures, so
a call costs the flow's process a write and a read, and no hand-off between
its threads (``concurrent.futures.ProcessPoolExecutor`` had three per call).

Workers are started with "spawn" (the flow's process has threads and locks, so
never a plain fork), ignore Ctrl-C (the flow's process handles it and stops
them) and exit when the flow's process is gone. A worker that dies, or whose
code overruns its timeout (it is killed), is replaced by a new one.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import socket
import threading
import time
from typing import Any

__all__ = ["WorkerPool", "WorkerDied"]

_READY = b"ready"


class WorkerDied(RuntimeError):
    """The worker process running a task's code died before it answered."""


class _Channel:
    """One end of a socket pair carrying messages: an 8-byte length, then the bytes.

    (``multiprocessing.Connection`` reads a message with two system calls and
    a ``BytesIO``; a small message here takes one ``recv``.)
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send_bytes(self, data: bytes) -> None:
        self._sock.sendall(len(data).to_bytes(8, "little") + data)

    def recv_bytes(self) -> bytes:
        data = self._sock.recv(_CHUNK)
        while len(data) < 8:
            data += self._more(8 - len(data))
        size = int.from_bytes(data[:8], "little")
        if len(data) == size + 8:
            return data[8:]
        buffer = bytearray(size + 8)  # a big message: read into place
        buffer[:len(data)] = data
        view, got = memoryview(buffer), len(data)
        while got < size + 8:
            count = self._sock.recv_into(view[got:])
            if not count:
                raise EOFError
            got += count
        return bytes(view[8:])

    def _more(self, count: int) -> bytes:
        data = self._sock.recv(count)
        if not data:
            raise EOFError
        return data

    def poll(self, timeout: float) -> bool:
        """Whether a message (or the end) can be read within ``timeout`` seconds."""
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def close(self) -> None:
        self._sock.close()


_CHUNK = 1 << 16


class _Worker:
    """One worker process and the flow's end of its pipe."""

    def __init__(self, context: Any, target: Any) -> None:
        ours, theirs = socket.socketpair()
        self.process = context.Process(target=_serve, args=(theirs, os.getpid(), target),
                                       name="cairnflow-worker")
        self.process.start()
        theirs.close()  # else our copy keeps the pipe open when the worker dies
        self.conn = _Channel(ours)
        self.ready = False

    def wait_ready(self) -> None:
        """Until the worker has started (its start-up is not the task's time)."""
        if not self.ready:
            self.conn.recv_bytes()
            self.ready = True

    def kill(self) -> None:
        """Kill the process, reap it and close the pipe."""
        self.signal_kill()
        self.reap()

    def signal_kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError, AttributeError):
            pass

    def reap(self, wait: float = 5.0) -> None:
        """Wait (briefly) for the process to end, so it leaves no zombie; close the pipe."""
        self.process.join(wait)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(wait)
        self.conn.close()

    def how_it_ended(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "its pipe closed"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"


class WorkerPool:
    """``size`` worker processes; ``call`` runs one payload on an idle one.

    A task whose code runs past its timeout has its worker killed and replaced
    (a process, unlike a thread, can be stopped, and a worker still running
    abandoned code must not be given new work). A worker that dies mid-call
    (``os._exit``, a signal, a crash) makes that call raise ``WorkerDied``;
    a new worker takes its place for the calls after it.

    Args:
        size: how many worker processes.
        target: the function, importable by name, that a worker calls with each
            payload (``bytes``); it returns the reply (``bytes``).
    """

    def __init__(self, size: int, target: Any) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()  # None: closed
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        try:
            for _ in range(size):
                self._add()
        except BaseException:
            self.close(kill=True)
            raise

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers (those started and not yet stopped)."""
        with self._lock:
            return [worker.process.pid for worker in self._all]

    def wait_started(self) -> None:
        """Until every worker has started; one that could not start is left to the
        first call that takes it (which starts another and reports the failure)."""
        with self._lock:
            workers = list(self._all)
        for worker in workers:
            try:
                worker.wait_ready()
            except (EOFError, OSError):
                pass

    def _add(self) -> None:
        """Start a worker and make it idle (unless the pool was closed meanwhile)."""
        if self._closed:
            return
        worker = _Worker(self._context, self._target)
        with self._lock:
            if not self._closed:
                self._all.add(worker)
                self._idle.put(worker)
                return
        worker.kill()

    def call(self, payload: bytes, timeout: float | None = None) -> bytes:
        """Run ``payload`` on a worker; its reply, or ``TimeoutError`` past ``timeout``
        seconds (the worker killed), or ``WorkerDied``."""
        worker = self._take()
        try:
            try:
                reply = _exchange(worker.conn, payload, timeout)
            except (BrokenPipeError, ConnectionResetError):
                # It died while idle: the payload was refused, or left unread (a
                # reset; a worker that read it and died gives EOF). Its code never
                # ran, so another worker runs it.
                self._replace(worker)
                worker = self._take()
                reply = _exchange(worker.conn, payload, timeout)
            if reply is not None:
                self._idle.put(worker)
                return reply
        except (EOFError, OSError):
            self._replace(worker)
            if self._closed:
                raise WorkerDied("the worker process was stopped with the run") from None
            raise WorkerDied(f"the worker process (pid {worker.process.pid}) running the "
                             f"task's code died: {worker.how_it_ended()}") from None
        self._replace(worker)
        raise TimeoutError(f"the code ran past {timeout:g}s; its worker was killed")

    def _take(self) -> _Worker:
        """An idle worker that has started (a replacement for one that failed to)."""
        while True:
            worker = self._idle.get()
            if worker is None:
                self._idle.put(None)  # for the next thread that waits
                raise RuntimeError("the worker pool is closed")
            try:
                worker.wait_ready()
                return worker
            except (EOFError, OSError):
                self._replace(worker)
                if self._closed:
                    raise RuntimeError("the worker pool is closed") from None
                raise WorkerDied(f"a worker process could not start: "
                                 f"{worker.how_it_ended()}") from None

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` (if it still runs) and start another in its place."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        self._add()

    def close(self, kill: bool = False) -> None:
        """Stop every worker: idle ones read EOF and exit; busy ones (all of them
        with ``kill``) are killed, and the thread waiting on each reaps it."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        idle = []
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker is not None:
                idle.append(worker)
        self._idle.put(None)  # wakes any thread waiting for a worker
        for worker in workers:
            if kill or not worker.ready or worker not in idle:  # not waiting for a boot
                worker.signal_kill()
        for worker in idle:
            worker.conn.close()
        for worker in idle:
            worker.reap()


def _exchange(conn: _Channel, payload: bytes, timeout: float | None) -> bytes | None:
    """Send ``payload`` and read the reply; None past ``timeout`` seconds.

    A worker killed while idle may look dead (a zombie) before the kernel closes
    its end of the pipe, which then accepts the payload: the read of the reply
    is reset, not ended, since the payload is still unread.
    """
    conn.send_bytes(payload)
    if timeout is None or conn.poll(timeout):
        return conn.recv_bytes()
    return None


def _serve(sock: socket.socket, parent_pid: int, target: Any) -> None:
    """A worker's life: greet, then answer payloads until the pipe closes."""
    _exit_with_parent(parent_pid)
    conn = _Channel(sock)
    try:
        conn.send_bytes(_READY)
        while True:
            conn.send_bytes(target(conn.recv_bytes()))
    except (EOFError, OSError):  # the pool closed the pipe: done
        return


def _exit_with_parent(parent_pid: int) -> None:
    """In a worker process: exit as soon as the flow's process is gone.

    A killed flow must not leave workers finishing its tasks behind the back
    of the run that resumes it. Ctrl-C (which a terminal sends to every process
    of the group) is left to the flow's process, which records the run as
    Cancelled and stops the workers; a worker would only print a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="cairnflow-parent-watch").start()
