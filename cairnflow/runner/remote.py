"""Calling task code in another process: what is sent there and what comes back.

The task's code, its arguments and the run context go over as one cloudpickle
payload; the value (or the exception or signal raised) and the log records
emitted come back the same way, and the flow's process handles the records as
if they had been emitted there (a worker prints nothing itself).
"""

from __future__ import annotations

import logging
from typing import Any

import cloudpickle

from cairnflow.context import current, enter, leave
from cairnflow.runner import logs

_LOCAL_ONLY = ("logger",)


def pack(fn: Any, kwargs: dict[str, Any]) -> bytes:
    """The payload for ``call``: code, arguments and the current context's plain values."""
    ctx = {k: v for k, v in current().items() if not k.startswith("_") and k not in _LOCAL_ONLY}
    log_stdout = current().get("_stdout_buffer") is not None
    return cloudpickle.dumps((fn, kwargs, ctx, log_stdout))


def call(payload: bytes) -> bytes:
    """Run in a worker process: call the code, return outcome and log records packed."""
    logs.install(console=False)  # the flow's process shows the records, in its format
    fn, kwargs, ctx, log_stdout = cloudpickle.loads(payload)
    records: list[dict[str, Any]] = []
    values = {**ctx, "_log_sink": lambda r: records.append(_plain(r))}
    if log_stdout:
        values["_stdout_buffer"] = []
    token = enter(values)
    try:
        with logs.capture_stdout(log_stdout):
            try:
                outcome = ("ok", fn(**kwargs))
            except BaseException as exc:  # shipped back and re-raised in the flow's process
                outcome = ("raised", exc)
            logs.flush_captured_stdout()
    finally:
        leave(token)
    return cloudpickle.dumps((outcome, records))


def unpack(packed: bytes) -> Any:
    """In the flow's process: store the records, then return the value or re-raise."""
    (kind, value), records = cloudpickle.loads(packed)
    # Through the logger, as if emitted here: stored by the run's handler and shown
    # by whatever shows this process's records (the console, the CLI's progress).
    for fields in records:
        record = logging.makeLogRecord(fields)
        logging.getLogger(record.name).handle(record)
    if kind == "raised":
        raise value
    return value


def _plain(record: logging.LogRecord) -> dict[str, Any]:
    from cairnflow.runner.recorder import message_with_traceback

    return {"name": record.name, "levelno": record.levelno,
            "levelname": record.levelname, "msg": message_with_traceback(record),
            "created": record.created}
