"""Reading what the user names, and what ``--online`` fetches: files and URLs (bounded in
size and time), the JWKS, status list tokens.

A URL the user names is fetched as given (``https://`` or ``http://``). What ``--online``
fetches is named by an artifact, not by the user, so it is fetched only over ``https://``,
or ``http://`` from this machine (127.0.0.1, ``::1`` or localhost), and a redirect is
followed only to such a URL. ``timeout`` bounds the connection and every wait for data, and
the whole transfer is checked against it between reads.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.cli.common import (
    FETCH_TIMEOUT_SECONDS,
    MAX_DOCUMENT_BYTES,
    StatusListSource,
    UsageError,
)
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.key_history import KeyHistory
from verifier.statuslist import SignedStatusList, StatusListError, verify_status_list_token
from verifier.tokens import KEYS_UNKNOWN

if TYPE_CHECKING:
    from collections.abc import Iterable

Keys: TypeAlias = Mapping[str, Any] | KeyHistory
# The keys to check an artifact with, from its (unverified) ``iss``; or why there are none.
KeysFor: TypeAlias = Callable[[object], "Keys | str"]

# ``--online`` fetches http:// only from these hosts (a test or a local mirror).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
ONLINE_RULE = "--online fetches only https:// URIs (http:// only from 127.0.0.1 or localhost)"
_CHUNK_BYTES = 64 * 1024


class FetchError(Exception):
    """A fetch that did not succeed: refused, unreachable, timed out, an HTTP error, too big."""


def online_refusal(uri: str) -> str | None:
    """Why ``--online`` does not fetch ``uri``, or None when it may."""
    try:
        parts = urllib.parse.urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return "not a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    return ONLINE_RULE


class _OnlineRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL ``--online`` may fetch."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        refusal = online_refusal(newurl)
        if refusal is not None:
            raise FetchError(f"redirected to {newurl}, not followed: {refusal}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener()
_ONLINE_OPENER = urllib.request.build_opener(_OnlineRedirects)


def is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        if path.stat().st_size > max_bytes:
            raise UsageError(f"{path} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def download(url: str, max_bytes: int, *, timeout: float, online: bool = False) -> bytes:
    """The body at ``url``, at most ``max_bytes``, within about ``timeout`` seconds.

    ``online``: the URL came from an artifact; it and every redirect must pass
    ``online_refusal``. Raises FetchError, with a message fit to show.
    """
    if online and (refusal := online_refusal(url)) is not None:
        raise FetchError(f"not fetched: {refusal}")
    opener = _ONLINE_OPENER if online else _OPENER
    deadline = time.monotonic() + timeout
    try:
        with opener.open(url, timeout=timeout) as response:
            return _read_body(response, max_bytes, deadline, timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise FetchError(f"timed out after {timeout:g} s") from None
        raise FetchError(str(exc.reason)) from None
    except TimeoutError:
        raise FetchError(f"timed out after {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise FetchError(str(exc) or type(exc).__name__) from None


def _read_body(response: Any, max_bytes: int, deadline: float, timeout: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(_CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchError(f"timed out after {timeout:g} s")
    return b"".join(chunks)


def fetch(url: str, max_bytes: int, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """A URL the user named; a failure is a UsageError."""
    try:
        return download(url, max_bytes, timeout=timeout)
    except FetchError as exc:
        raise UsageError(f"cannot fetch {url}: {exc}") from None


def read_source(value: str, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    if is_url(value):
        return fetch(value, MAX_DOCUMENT_BYTES, timeout=timeout)
    return read_file(Path(value), MAX_DOCUMENT_BYTES)


def load_jwks(value: str, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> dict[str, Any]:
    try:
        jwks = json.loads(read_source(value, timeout=timeout))
    except (ValueError, RecursionError):
        raise UsageError(f"{value} is not a JSON JWKS") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UsageError(f"{value} is not a JWKS (an object with a 'keys' array)")
    return jwks


def load_status_lists(
    sources: Iterable[str],
    jwks: Keys | KeysFor,
    *,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    timeout: float = FETCH_TIMEOUT_SECONDS,
) -> tuple[dict[str, SignedStatusList], tuple[StatusListSource, ...]]:
    """The lists that verified, by URI, and what became of each source.

    ``jwks`` may be a verified key history (each list's ``iat`` then checked against its
    key's signing period, ``leeway_seconds`` either side), or a function from a list's
    ``iss`` to its keys (``--online`` without ``--keys``).
    """
    lists: dict[str, SignedStatusList] = {}
    loaded = []
    for source in sources:
        token = read_source(source, timeout=timeout).decode("ascii", "replace").strip()
        uri, signed, error = check_status_list(
            token, uri=source if is_url(source) else None, keys=jwks, leeway_seconds=leeway_seconds
        )
        loaded.append(StatusListSource(source=source, uri=uri, error=error))
        if uri is not None and signed is not None:
            lists[uri] = signed
    return lists, tuple(loaded)


def check_status_list(
    token: str, *, uri: str | None, keys: Keys | KeysFor, leeway_seconds: int
) -> tuple[str | None, SignedStatusList | None, str | None]:
    """(its URI, the verified list or None, why not) of a status list token.

    ``uri`` is where it was fetched from, which its ``sub`` must name; None for a file.
    """
    # The list names its own URI in ``sub`` and its issuer in ``iss``; verify_status_list_token
    # then checks the signed ``sub``, so this unverified read only says what to expect.
    try:
        payload = json.loads(parse_compact(token)[1])
    except (KeysError, ValueError, RecursionError):
        return uri, None, "not a status list token"
    if not isinstance(payload, dict):
        return uri, None, "not a status list token"
    if uri is None:
        sub = payload.get("sub")
        if not isinstance(sub, str):
            return None, None, "status list token names no URI (sub)"
        uri = sub
    found = keys(payload.get("iss")) if callable(keys) else keys
    if isinstance(found, str):
        return uri, None, f"{KEYS_UNKNOWN}: {found}"
    try:
        signed = verify_status_list_token(
            token, jwks=found, expected_uri=uri, leeway_seconds=leeway_seconds
        )
    except StatusListError as exc:
        return uri, None, f"{exc.code}: {exc.message}"
    return uri, signed, None
