"""What the commands print: JSON documents, times for people, and failures without tracebacks."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import msgspec


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def print_json(value: Any) -> None:
    """``value`` as one indented JSON document on stdout."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


def when(value: datetime | None, none: str = "never") -> str:
    """``value`` in UTC to the second (``2030-01-01T00:00:00Z``), or ``none`` if there is none."""
    if value is None:
        return none
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
