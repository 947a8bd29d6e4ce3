"""What the verifier's commands share: exit codes, limits, the verdict, safe display."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Literal

import msgspec

from verifier.tokens import (
    INDETERMINATE_CODES,
)

if TYPE_CHECKING:
    from collections.abc import Iterable


EXIT_VERIFIED = 0


EXIT_INVALID = 1


EXIT_INDETERMINATE = 2


# sysexits.h EX_USAGE: 2 means indeterminate here, so usage errors need a code of their own.
EXIT_USAGE = 64


MAX_IMAGE_BYTES = 256 * 1024 * 1024


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


FETCH_TIMEOUT_SECONDS = 10.0


# ``--timeout`` accepts more than 0 and at most this many seconds.
MAX_FETCH_TIMEOUT_SECONDS = 300.0


DISPLAY_CHARS = 300


COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


Verdict = Literal["verified", "invalid", "indeterminate"]


EXIT_CODES: dict[Verdict, int] = {
    "verified": EXIT_VERIFIED,
    "invalid": EXIT_INVALID,
    "indeterminate": EXIT_INDETERMINATE,
}


class UsageError(Exception):
    """A bad argument or an unreadable input: exit status 64."""


class StatusListSource(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    uri: str | None
    error: str | None = None


def verdict(reasons: Iterable[str]) -> Verdict:
    codes = set(reasons)
    if not codes:
        return "verified"
    return "indeterminate" if codes <= INDETERMINATE_CODES else "invalid"


def safe(value: object, limit: int = DISPLAY_CHARS) -> str:
    """Text from a manifest, safe for a terminal: controls and format characters escaped."""
    text = str(value)
    clipped = len(text) > limit
    parts = []
    for char in text[:limit]:
        if char == "\\":
            parts.append("\\\\")
        elif unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            code = ord(char)
            parts.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")  # noqa: PLR2004 - one byte
        else:
            parts.append(char)
    return "".join(parts) + ("…" if clipped else "")
