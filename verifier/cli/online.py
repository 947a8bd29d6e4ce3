"""``--online``: the status lists and key histories an artifact names, fetched when asked.

Without ``--online`` the verifier makes no request the user did not name. With it,
``verify``, ``token`` and ``signed`` fetch

- the status list of every consent the artifact names, from the ``uri`` of its status
  reference, unless a list for that URI was supplied (``--status-list``);
- when neither ``--keys`` nor ``--jwks`` is given, the key history of the artifact's issuer,
  ``<iss>/.well-known/registry-keys.json`` (``token --issuer`` names the issuer instead of
  the token's own ``iss``), verified as ``--keys`` would be, and which must name that issuer.

Each fetch is bounded in size and by ``--timeout``, and goes only to an https:// URI or to
http:// on this machine (``verifier.cli.sources.online_refusal``). A fetch that fails
(refused, unreachable, timed out, an HTTP error) leaves a status unknown (``status_unknown``)
or a signature unchecked (``keys_unknown``): an indeterminate answer, never ``invalid``. A
list that was fetched but does not verify counts as a supplied one that does not verify.

What a history fetched from an artifact's own ``iss`` proves: that the artifact was signed
by whoever serves that address, no more. An artifact forged by someone else names their
address. Read the issuer the verifier prints, pin it (``token --issuer``), or pass ``--keys``
fetched from our address yourself.
"""

from __future__ import annotations

import argparse
import math
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import msgspec

from verifier.cli.common import (
    FETCH_TIMEOUT_SECONDS,
    MAX_DOCUMENT_BYTES,
    MAX_FETCH_TIMEOUT_SECONDS,
    StatusListSource,
)
from verifier.cli.sources import FetchError, check_status_list, download, online_refusal
from verifier.key_history import MAX_HISTORY_CHARS, KeyHistory, KeyHistoryError, verify_key_history
from verifier.tokens import KEYS_UNKNOWN

if TYPE_CHECKING:
    from verifier.cli.sources import Keys, KeysFor
    from verifier.statuslist import SignedStatusList

__all__ = ["KEY_HISTORY_PATH", "Fetched", "Online", "add_online_arguments", "key_history_url"]

KEY_HISTORY_PATH = "/.well-known/registry-keys.json"
_MAX_ISSUER_CHARS = 2048


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """One URI ``--online`` fetched (or would not), and what became of it."""

    uri: str
    kind: Literal["key_history", "status_list"]
    error: str | None = None


def add_online_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--online`` (``what`` it fetches) and ``--timeout SECONDS``."""
    parser.add_argument(
        "--online",
        action="store_true",
        help=f"fetch {what} from the URIs the artifact names (https:// only; http:// only "
        "from 127.0.0.1 or localhost); a fetch that fails leaves the answer indeterminate",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=FETCH_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"the longest wait for each fetch (above 0, at most {MAX_FETCH_TIMEOUT_SECONDS:g}; "
        f"default {FETCH_TIMEOUT_SECONDS:g})",
    )


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_FETCH_TIMEOUT_SECONDS):
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_FETCH_TIMEOUT_SECONDS:g} seconds"
        )
    return seconds


def key_history_url(issuer: object) -> str | None:
    """``<issuer>/.well-known/registry-keys.json``, or None for an issuer that is no URL."""
    if not isinstance(issuer, str) or len(issuer) > _MAX_ISSUER_CHARS:
        return None
    try:
        parts = urllib.parse.urlsplit(issuer)
    except ValueError:
        return None
    if parts.scheme not in {"https", "http"} or not parts.netloc or parts.query or parts.fragment:
        return None
    path = parts.path.rstrip("/") + KEY_HISTORY_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Online:
    """The fetches of one command: each key history once (by issuer), a record of each."""

    def __init__(self, *, timeout: float, leeway_seconds: int) -> None:
        self.timeout = timeout
        self.leeway_seconds = leeway_seconds
        self.fetched: list[Fetched] = []
        self._histories: dict[str, KeyHistory | str] = {}

    def keys_for(self, issuer: object) -> KeyHistory | str:
        """The verified key history of ``issuer``, or why there is none (a detail)."""
        url = key_history_url(issuer)
        if url is None:
            return "it names no issuer URL (iss) to fetch the key history from"
        if url not in self._histories:
            self._histories[url] = self._history(url, str(issuer))
        return self._histories[url]

    def _history(self, url: str, issuer: str) -> KeyHistory | str:
        body = self._get(url, "key_history", MAX_HISTORY_CHARS)
        if isinstance(body, str):
            return f"the key history {url} {body}"
        text = body.decode("ascii", "replace").strip()
        try:
            history = verify_key_history(
                text, now=datetime.now(UTC), leeway_seconds=self.leeway_seconds
            )
        except KeyHistoryError as exc:
            problem = f"was refused ({exc.code}): {exc.message}"
        else:
            if history.issuer.rstrip("/") == issuer.rstrip("/"):
                self.fetched.append(Fetched(uri=url, kind="key_history"))
                return history
            problem = f"is of issuer {history.issuer!r}, not {issuer!r}"
        self.fetched.append(Fetched(uri=url, kind="key_history", error=problem))
        return f"the key history {url} {problem}"

    def status_list(
        self, uri: str, keys: Keys | KeysFor
    ) -> tuple[SignedStatusList | None, StatusListSource, str | None]:
        """The verified list at ``uri``, what became of it, and why not (a consent's detail)."""
        body = self._get(uri, "status_list", MAX_DOCUMENT_BYTES)
        if isinstance(body, str):
            return (
                None,
                StatusListSource(source=uri, uri=uri, error=body),
                f"its status list {uri} {body}",
            )
        token = body.decode("ascii", "replace").strip()
        _, signed, error = check_status_list(
            token, uri=uri, keys=keys, leeway_seconds=self.leeway_seconds
        )
        self.fetched.append(Fetched(uri=uri, kind="status_list", error=error))
        source = StatusListSource(source=uri, uri=uri, error=error)
        if signed is not None:
            return signed, source, None
        keys_problem = (error or "").removeprefix(f"{KEYS_UNKNOWN}: ")
        if keys_problem != error:
            return None, source, f"its status list {uri} could not be checked: {keys_problem}"
        return None, source, f"its status list {uri} was fetched but did not verify: {error}"

    def _get(
        self, uri: str, kind: Literal["key_history", "status_list"], max_bytes: int
    ) -> bytes | str:
        """The body at ``uri``, or what went wrong (recorded), as a phrase after the URI."""
        refusal = online_refusal(uri)
        if refusal is not None:
            problem = f"was not fetched: {refusal}"
        else:
            try:
                return download(uri, max_bytes, timeout=self.timeout, online=True)
            except FetchError as exc:
                problem = f"could not be fetched: {exc}"
        self.fetched.append(Fetched(uri=uri, kind=kind, error=problem))
        return problem
