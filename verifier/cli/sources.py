"""Reading what the user names: files and URLs (bounded), the JWKS, status list tokens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.cli.common import (
    FETCH_TIMEOUT_SECONDS,
    MAX_DOCUMENT_BYTES,
    StatusListSource,
    UsageError,
)
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.statuslist import SignedStatusList, StatusListError, verify_status_list_token

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from verifier.key_history import KeyHistory


def is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        if path.stat().st_size > max_bytes:
            raise UsageError(f"{path} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def fetch(url: str, max_bytes: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked by is_url
            body: bytes = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UsageError(f"cannot fetch {url}: {exc}") from None
    if len(body) > max_bytes:
        raise UsageError(f"{url} is larger than {max_bytes} bytes")
    return body


def read_source(value: str) -> bytes:
    if is_url(value):
        return fetch(value, MAX_DOCUMENT_BYTES)
    return read_file(Path(value), MAX_DOCUMENT_BYTES)


def load_jwks(value: str) -> dict[str, Any]:
    try:
        jwks = json.loads(read_source(value))
    except (ValueError, RecursionError):
        raise UsageError(f"{value} is not a JSON JWKS") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UsageError(f"{value} is not a JWKS (an object with a 'keys' array)")
    return jwks


def load_status_lists(
    sources: Iterable[str],
    jwks: Mapping[str, Any] | KeyHistory,
    *,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> tuple[dict[str, SignedStatusList], tuple[StatusListSource, ...]]:
    """The lists that verified, by URI, and what became of each source.

    ``jwks`` may be a verified key history (each list's ``iat`` then checked against its
    key's signing period, ``leeway_seconds`` either side).
    """
    lists: dict[str, SignedStatusList] = {}
    loaded = []
    for source in sources:
        uri, signed, error = _load_status_list(source, jwks, leeway_seconds)
        loaded.append(StatusListSource(source=source, uri=uri, error=error))
        if uri is not None and signed is not None:
            lists[uri] = signed
    return lists, tuple(loaded)


def _load_status_list(
    source: str, jwks: Mapping[str, Any] | KeyHistory, leeway_seconds: int
) -> tuple[str | None, SignedStatusList | None, str | None]:
    """(its URI, the verified list or None, why not); I/O problems raise UsageError."""
    token = read_source(source).decode("ascii", "replace").strip()
    if is_url(source):
        uri: str | None = source
    else:
        # The list names its own URI in ``sub``; verify_status_list_token then checks that
        # signed value, so the unverified read here only says which URI to expect.
        try:
            payload = json.loads(parse_compact(token)[1])
        except (KeysError, ValueError, RecursionError):
            return None, None, "not a status list token"
        sub = payload.get("sub") if isinstance(payload, dict) else None
        uri = sub if isinstance(sub, str) else None
        if uri is None:
            return None, None, "status list token names no URI (sub)"
    try:
        signed = verify_status_list_token(
            token, jwks=jwks, expected_uri=uri, leeway_seconds=leeway_seconds
        )
    except StatusListError as exc:
        return uri, None, f"{exc.code}: {exc.message}"
    return uri, signed, None
