"""Calling task code in another process: what is sent there and what comes back.

The task's code, its arguments and the run context go over as one cloudpickle
payload; the value (or the exception or signal raised, with its traceback as
plain data) and the log records emitted come back the same way, and the flow's
process handles the records as if they had been emitted there (a worker prints
nothing itself).

Code pickled by value keeps its file name, so a traceback from a worker names
the user's file and line, and the flow's process fills in the source lines.
"""

from __future__ import annotations

import logging
import marshal
import traceback
import types
from typing import Any

import cloudpickle

from cairnflow.context import RUN_DATES, current, enter, leave
from cairnflow.runner import logs
from cairnflow.statestore import serialize

__all__ = ["pack", "call", "call_each", "joined", "call_joined", "unpack", "remote_traceback",
           "dumps"]

_LOCAL_ONLY = ("logger",)


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    # cloudpickle renames pickled code "<dynamic-code>"; marshal keeps co_filename,
    # and needs the same Python on both sides, as cloudpickled code does anyway.
    return marshal.loads, (marshal.dumps(code),)


_REDUCERS = ((types.CodeType, _reduce_code),)


def dumps(value: Any) -> bytes:
    """cloudpickle (with its table as one plain dict: ``serialize.dumps``), except that
    code objects keep the name of their file."""
    return serialize.dumps(value, _REDUCERS)


Payload = tuple[bytes, bytes]
"""What ``call`` takes: the pickled code, and its arguments with the context."""


def pack(fn: Any, kwargs: dict[str, Any], code_cache: dict | None = None) -> Payload:
    """The payload for ``call``: code, arguments and the current context's plain values.

    With ``code_cache`` (an executor's, for one run) each task's code is pickled once,
    not once per call: a map's children share it, and the workers unpickle it once.
    """
    values = current()
    ctx = {k: v for k, v in values.items()
           if (not k.startswith("_") or k == RUN_DATES) and k not in _LOCAL_ONLY}
    log_stdout = values.get("_stdout_buffer") is not None
    code = None
    if code_cache is not None:
        try:
            code = code_cache.get(fn)
        except TypeError:  # an unhashable callable: pickled every time
            code_cache = None
    if code is None:
        code = dumps(fn)
        if code_cache is not None:
            code_cache[fn] = code
    return code, dumps((kwargs, ctx, log_stdout))


_loaded_code: dict[bytes, Any] = {}
"""In a worker: code already unpickled, by its bytes (as Dask's workers keep it)."""


def _load_code(code: bytes) -> Any:
    fn = _loaded_code.get(code)
    if fn is None:
        if len(_loaded_code) >= 256:
            _loaded_code.clear()
        fn = _loaded_code[code] = cloudpickle.loads(code)
    return fn


def call(payload: Payload) -> bytes:
    """Run in a worker process: call the code, return outcome and log records packed."""
    logs.install(console=False)  # the flow's process shows the records, in its format
    code, arguments = payload
    fn = _load_code(code)
    kwargs, ctx, log_stdout = cloudpickle.loads(arguments)
    records: list[dict[str, Any]] = []
    values = {**ctx, "_log_sink": lambda r: records.append(_plain(r))}
    if log_stdout:
        values["_stdout_buffer"] = []
    token = enter(values)
    try:
        with logs.capture_stdout(log_stdout):
            try:
                outcome: tuple = ("ok", fn(**kwargs), None)
            except BaseException as exc:  # shipped back and re-raised in the flow's process
                outcome = ("raised", exc, _frames(exc))
            logs.flush_captured_stdout()
    finally:
        leave(token)
    try:
        return dumps((outcome, records))
    except Exception as exc:  # an unpicklable value or exception: say so in one error
        kind, value, frames = outcome
        what = "result" if kind == "ok" else f"exception {type(value).__name__}: {value}"
        error = RuntimeError(f"the task's {what} cannot be sent back from the worker: {exc!r}")
        return cloudpickle.dumps((("raised", error, frames), records))


def call_each(payloads: list[Payload]) -> list[bytes]:
    """``call`` for several payloads in turn (one Dask task for several task runs)."""
    return [call(payload) for payload in payloads]


def joined(payload: Payload) -> bytes:
    """The payload as one message, for ``call_joined`` (a pipe carries bytes)."""
    code, arguments = payload
    return len(code).to_bytes(4, "little") + code + arguments


def call_joined(message: bytes) -> bytes:
    """``call`` on a payload that ``joined`` made one message."""
    size = int.from_bytes(message[:4], "little")
    return call((message[4:4 + size], message[4 + size:]))


def unpack(packed: bytes) -> Any:
    """In the flow's process: store the records, then return the value or re-raise."""
    (kind, value, frames), records = cloudpickle.loads(packed)
    # Through the logger, as if emitted here: stored by the run's handler and shown
    # by whatever shows this process's records (the console, the CLI's progress).
    for fields in records:
        record = logging.makeLogRecord(fields)
        logging.getLogger(record.name).handle(record)
    if kind == "raised":
        if frames is not None and isinstance(value, BaseException):
            value.__cairnflow_traceback__ = frames
        raise value
    return value


def remote_traceback(exc: BaseException) -> str | None:
    """The traceback of an exception raised by task code in a worker, as text, from
    the user's code down (source lines read here, where the flow's files are)."""
    frames = getattr(exc, "__cairnflow_traceback__", None)
    if frames is None:
        return None
    return "".join(frames.format()).rstrip("\n")


def _frames(exc: BaseException) -> traceback.TracebackException | None:
    """The exception's traceback without the frames of this module, as plain data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith(
            "cairnflow.runner"):
        tb = tb.tb_next
    try:
        frames = traceback.TracebackException(type(exc), exc, tb, lookup_lines=False)
        cloudpickle.dumps(frames)
    except Exception:
        return None
    return frames


def _plain(record: logging.LogRecord) -> dict[str, Any]:
    from cairnflow.runner.recorder import message_with_traceback

    return {"name": record.name, "levelno": record.levelno,
            "levelname": record.levelname, "msg": message_with_traceback(record),
            "created": record.created}
