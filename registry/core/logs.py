"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

Lines are formatted and written by a thread of their own (``QueueHandler`` and
``QueueListener``), not on the event loop: logging a line there costs a copy of the record
and a queue put. ``drain`` writes what is queued and from then on writes each line as it
comes; the service calls it when it shuts down (uvicorn then ends the process by re-raising
SIGTERM, so exit hooks do not run), and exit hooks call it for the commands.

The embedded PostgreSQL's library (pgserver) narrates every start and stop at INFO, with
whole command lines and initdb's output; its INFO records are logged at DEBUG, so they show
only when asked for, while its warnings and errors (a server that did not start, with its
log) stay as they are.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import logging
import logging.handlers
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import msgspec

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The request id a queued record was logged under (the writing thread has no context).
_REQUEST_ID = "registry_request_id"
_UNSET: Any = object()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = record.__dict__.get(_REQUEST_ID, _UNSET)
        if rid is _UNSET:
            rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms", "client_id", "client_address"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and frames can hold request data.
            entry["exc_type"] = record.exc_info[0].__name__
        return msgspec.json.encode(entry).decode()


def _as_debug(record: logging.LogRecord) -> bool:
    if record.levelno < logging.WARNING:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


class _OffLoop(logging.handlers.QueueHandler):
    """Queues records for a thread that formats and writes them with ``target``."""

    def __init__(self, target: logging.Handler) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        super().__init__(self._queue)
        self._target = target
        self._lock = threading.RLock()
        self._listener: logging.handlers.QueueListener | None = logging.handlers.QueueListener(
            self._queue, target, respect_handler_level=True
        )
        self._listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Only what the writing thread could not know: the request id (a context variable of
        # this task) and the message with its arguments as they are now. No formatting here.
        queued = copy.copy(record)
        queued.__dict__[_REQUEST_ID] = request_id.get()
        queued.msg = record.getMessage()
        queued.args = None
        return queued

    def enqueue(self, record: logging.LogRecord) -> None:
        with self._lock:
            if self._listener is None:
                self._target.handle(record)
            else:
                self._queue.put_nowait(record)

    def drain(self) -> None:
        """Write every queued record, and each later one as it is logged."""
        with self._lock:
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
        self._target.flush()


def drain() -> None:
    """Write what the root logger's handlers hold; from then on they write as records come."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _OffLoop):
            handler.drain()


def configure(level: str, *, json_lines: bool) -> None:
    stream = logging.StreamHandler(sys.stderr)
    # The handlers filter by level too: a record demoted to DEBUG after its logger let it
    # through at INFO is dropped here unless DEBUG was asked for.
    stream.setLevel(level)
    if json_lines:
        stream.setFormatter(JsonFormatter())
    else:
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler = _OffLoop(stream)
    handler.setLevel(level)
    # Configured again (the CLI, then the ASGI factory): what the old handler holds goes first.
    drain()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates ours, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # One function object, so configuring twice (CLI, then the ASGI factory) adds it once.
    logging.getLogger("pgserver").addFilter(_as_debug)
    # Registered once: atexit keeps duplicates, and drain() covers every handler anyway.
    atexit.unregister(drain)
    atexit.register(drain)
