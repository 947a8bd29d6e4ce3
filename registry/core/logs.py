"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

Lines are formatted and written by a thread of their own (``QueueHandler`` and
``QueueListener``), not on the event loop: logging a line there costs a copy of the record
and a queue put. ``drain`` writes what is queued and from then on writes each line as it
comes; the service calls it when it shuts down (uvicorn then ends the process by re-raising
SIGTERM, so exit hooks do not run), and exit hooks call it for the commands.

The embedded PostgreSQL's library (pgserver) narrates every start and stop at INFO, with
whole command lines and initdb's output; its INFO records are logged at DEBUG, so they show
only when asked for, while its warnings and errors (a server that did not start, with its
log) stay as they are. httpx and httpcore, which would log outbound URLs and headers, log
only their warnings.

Secrets never reach a line as sent: ``redact`` replaces what looks like a JWT (a consent
token, a receipt, a status list), an API key, or the value of a query parameter named like a
credential (``token``, ``key``, ``secret``, ``sig``, ``session``, ``code``, ``password``,
``auth``, ``csrf``) with ``[redacted]``. The formatters apply it to every message, the
access log's ``path`` and exception text, so no call site has to remember it.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import logging
import logging.handlers
import queue
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import msgspec

from registry.core.auth import KEY_PREFIX

REDACTED = "[redacted]"
"""What a secret in a log line is replaced with."""

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The request id a queued record was logged under (the writing thread has no context).
_REQUEST_ID = "registry_request_id"
_UNSET: Any = object()

# A compact JWS or JWE: three to five base64url parts joined by dots, the first the encoding
# of a JSON object. '{' followed by '"' or a space encodes as "ey", by a line break or tab as
# "ew": requiring it keeps host names and dotted module names ("registry.core.db") intact.
_JWT = re.compile(r"(?<![A-Za-z0-9_-])e[wy][A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){2,4}")
# Our API keys (registry.core.auth: the prefix and 43 base64url characters), and a key with
# characters missing or added, which is still most of a secret.
_API_KEY = re.compile(rf"(?<![A-Za-z0-9]){KEY_PREFIX}[A-Za-z0-9_-]{{16,}}")
# name=value after "?", "&" or ";": in a path, ASGI has already decoded "%3F" to "?", so a
# caller's query can hide in it; in a message, a URL's query.
_SECRET_PARAMETER = re.compile(
    r"(?<=[?&;])([^=&;?#/\s]*(?:token|key|secret|sig|session|code|password|auth|csrf)"
    r"[^=&;?#/\s]*)=[^&;#\s\"']*",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def redact(text: str) -> str:
    """``text`` with every JWT, API key and credential-named parameter's value replaced by
    ``REDACTED`` (the parameter's name stays, to show what was there)."""
    text = _JWT.sub(REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    return _SECRET_PARAMETER.sub(rf"\1={REDACTED}", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = record.__dict__.get(_REQUEST_ID, _UNSET)
        if rid is _UNSET:
            rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms", "client_id", "client_address"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = redact(value) if key == "path" else value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and frames can hold request data.
            entry["exc_type"] = record.exc_info[0].__name__
        return msgspec.json.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """Lines for a terminal (REGISTRY_LOG_JSON=false): redacted, and one line per message,
    since control characters from a request (a decoded path) are shown as ``\\xNN``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = _CONTROL.sub(_escape, redact(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


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
        stream.setFormatter(TextFormatter())
    handler = _OffLoop(stream)
    handler.setLevel(level)
    # Configured again (the CLI, then the ASGI factory): what the old handler holds goes first.
    drain()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates ours, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outbound request's whole URL at INFO (a caller's image_url, a tenant's
    # webhook address with its query), httpcore every request's and response's headers at
    # DEBUG: neither is ours to log. Their warnings stay.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # One function object, so configuring twice (CLI, then the ASGI factory) adds it once.
    logging.getLogger("pgserver").addFilter(_as_debug)
    # Registered once: atexit keeps duplicates, and drain() covers every handler anyway.
    atexit.unregister(drain)
    atexit.register(drain)
