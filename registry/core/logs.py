"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

The embedded PostgreSQL's library (pgserver) narrates every start and stop at INFO, with
whole command lines and initdb's output; its INFO records are logged at DEBUG, so they show
only when asked for, while its warnings and errors (a server that did not start, with its
log) stay as they are.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import msgspec

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
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


def configure(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # The handler filters by level too: a record demoted to DEBUG after its logger let it
    # through at INFO is dropped here unless DEBUG was asked for.
    handler.setLevel(level)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates ours, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # One function object, so configuring twice (CLI, then the ASGI factory) adds it once.
    logging.getLogger("pgserver").addFilter(_as_debug)
