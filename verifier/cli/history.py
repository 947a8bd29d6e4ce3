"""The key history on the command line: ``--keys`` for every command that verifies
signatures, ``keys HISTORY`` (check the history itself) and ``signed ARTIFACT`` (one of the
registry's long-lived artifacts: a consent receipt, an audit checkpoint, a takedown notice,
a detached assertion, a status list).

``--jwks`` holds only the keys that can still sign or whose tokens can still be live; the
key history (``GET /.well-known/registry-keys.json``) holds every key that ever signed, with
its signing period, so what was signed before any number of rotations still verifies. A
history that does not verify is refused (exit 64, like any unusable input) before anything
is checked with it. ``signed --online`` without ``--keys`` fetches the history of the
artifact's own ``iss`` (``verifier.cli.online``); when it cannot be had the answer is
``keys_unknown``, exit 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from keys.errors import KeysError
from keys.jws import parse_compact, verify_compact
from verifier.cli.common import (
    COMPACT_JWS,
    EXIT_INDETERMINATE,
    EXIT_INVALID,
    EXIT_VERIFIED,
    FETCH_TIMEOUT_SECONDS,
    MAX_DOCUMENT_BYTES,
    UsageError,
    safe,
)
from verifier.cli.online import Online, add_online_arguments
from verifier.cli.sources import load_jwks, read_file, read_source
from verifier.key_history import (
    MAX_HISTORY_CHARS,
    HistoricKey,
    KeyHistory,
    KeyHistoryError,
    SignedArtifactError,
    purpose_of,
    verify_key_history,
    verify_signed,
)
from verifier.tokens import KEYS_UNKNOWN, jwks_resolver

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

__all__ = [
    "COMMANDS",
    "add_commands",
    "add_key_arguments",
    "load_key_history",
    "load_keys",
]

_SIGNED_ALGORITHMS = ("EdDSA", "ES256")


def add_key_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--jwks FILE|URL`` or ``--keys FILE|URL``, one of them."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--jwks", metavar="FILE|URL", help="the registry's JWKS (current keys)")
    group.add_argument(
        "--keys",
        metavar="FILE|URL",
        help="the registry's key history (every key that signed, with when): "
        "verifies what was signed before key rotations",
    )


def load_keys(args: argparse.Namespace) -> Mapping[str, Any] | KeyHistory | None:
    """The JWKS or the verified key history the arguments name, or None for neither."""
    timeout = getattr(args, "timeout", FETCH_TIMEOUT_SECONDS)
    if getattr(args, "keys", None):
        return load_key_history(args.keys, leeway_seconds=args.leeway, timeout=timeout)
    if args.jwks:
        return load_jwks(args.jwks, timeout=timeout)
    return None


def load_key_history(
    source: str, *, leeway_seconds: int, timeout: float = FETCH_TIMEOUT_SECONDS
) -> KeyHistory:
    """Read and verify a key history; a history that does not verify is a UsageError."""
    text = read_source(source, timeout=timeout).decode("ascii", "replace").strip()
    if len(text) > MAX_HISTORY_CHARS:
        raise UsageError(f"key history {source} is longer than {MAX_HISTORY_CHARS} characters")
    try:
        return verify_key_history(text, now=datetime.now(UTC), leeway_seconds=leeway_seconds)
    except KeyHistoryError as exc:
        raise UsageError(f"key history {source} refused ({exc.code}): {exc.message}") from None


def add_commands(commands: Any) -> list[argparse.ArgumentParser]:
    """Add ``keys`` and ``signed`` to the subcommands; returns their parsers."""
    history = commands.add_parser("keys", help="verify a key history and list its keys")
    history.add_argument("history", metavar="FILE|URL", help="the key history")
    history.add_argument("--json", action="store_true", help="print the result as JSON")

    signed = commands.add_parser(
        "signed", help="verify a receipt, checkpoint, notice, assertion or status list"
    )
    signed.add_argument("artifact", metavar="JWS_OR_FILE", help="the signed artifact, or a file")
    add_key_arguments(signed)
    add_online_arguments(signed, what="the key history (<iss>/.well-known/registry-keys.json)")
    signed.add_argument(
        "--typ", metavar="TYP", help="the typ it must have (e.g. consent-receipt+jwt)"
    )
    signed.add_argument("--json", action="store_true", help="print the result as JSON")
    return [history, signed]


class HistoryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """``--json`` of ``keys``: ``valid`` or the history's error code, and its keys."""

    result: str
    detail: str | None = None
    issuer: str | None = None
    issued_at: int | None = None
    signed_by: str | None = None
    keys: tuple[HistoricKey, ...] = ()


def keys_command(args: argparse.Namespace, out: TextIO) -> int:
    text = read_source(args.history).decode("ascii", "replace").strip()
    try:
        history = verify_key_history(text, now=datetime.now(UTC), leeway_seconds=args.leeway)
    except KeyHistoryError as exc:
        outcome = HistoryOutcome(result=exc.code, detail=exc.message)
    else:
        outcome = HistoryOutcome(
            result="valid",
            issuer=history.issuer,
            issued_at=history.issued_at,
            signed_by=history.signed_by,
            keys=history.keys,
        )
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        out.write("\n".join(_history_lines(outcome)) + "\n")
    return EXIT_VERIFIED if outcome.result == "valid" else EXIT_INVALID


def _history_lines(outcome: HistoryOutcome) -> list[str]:
    if outcome.result != "valid":
        return [f"key history: REFUSED {outcome.result}: {safe(outcome.detail)}"]
    lines = [
        "key history: valid",
        f"  issuer: {safe(outcome.issuer)}",
        f"  issued at: {_time(outcome.issued_at)}",
        f"  signed by: {safe(outcome.signed_by)}",
    ]
    lines.extend(
        f"  key {safe(key.kid)} ({safe(key.alg)}): signed {key.period_text()}"
        f" - {', '.join(key.signs) or 'nothing'}"
        for key in outcome.keys
    )
    return lines


class SignedOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """``--json`` of ``signed``: ``valid`` or the reason, what it is, who signed it, when."""

    result: str
    reasons: tuple[str, ...]
    detail: str | None = None
    typ: str | None = None
    kid: str | None = None
    iat: float | None = None
    period_checked: bool = False
    claims: dict[str, Any] | None = None


def signed_command(args: argparse.Namespace, out: TextIO) -> int:
    keys = load_keys(args)
    if keys is None and not args.online:
        raise UsageError("signed needs --keys or --jwks (or --online)")
    token = _artifact_text(args.artifact)
    if keys is None:
        outcome = _online(token, args)
    elif isinstance(keys, KeyHistory):
        outcome = _with_history(token, keys, typ=args.typ, leeway=args.leeway)
    else:
        outcome = _with_jwks(token, keys, typ=args.typ)
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        out.write("\n".join(_signed_lines(outcome)) + "\n")
    if outcome.result == "valid":
        return EXIT_VERIFIED
    return EXIT_INDETERMINATE if outcome.result == KEYS_UNKNOWN else EXIT_INVALID


def _online(token: str, args: argparse.Namespace) -> SignedOutcome:
    """With the key history of the artifact's own ``iss``, fetched (``--online``)."""
    try:
        claims = msgspec.json.decode(parse_compact(token)[1], type=dict[str, Any])
    except KeysError as exc:
        return _failed("malformed", f"not a compact JWS: {exc.message}")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _failed("malformed", "the payload is not a JSON object")
    found = Online(timeout=args.timeout, leeway_seconds=args.leeway).keys_for(claims.get("iss"))
    if isinstance(found, str):
        return _failed(KEYS_UNKNOWN, found)
    return _with_history(token, found, typ=args.typ, leeway=args.leeway)


def _with_history(
    token: str, history: KeyHistory, *, typ: str | None, leeway: int
) -> SignedOutcome:
    try:
        artifact = verify_signed(token, history, typ=typ, leeway_seconds=leeway)
    except SignedArtifactError as exc:
        return SignedOutcome(result=exc.code, reasons=(exc.code,), detail=exc.message)
    return SignedOutcome(
        result="valid",
        reasons=(),
        detail=f"signed by key {artifact.kid}, which signed from {artifact.key.period_text()}",
        typ=artifact.typ,
        kid=artifact.kid,
        iat=artifact.iat,
        period_checked=True,
        claims=artifact.claims,
    )


def _with_jwks(token: str, jwks: Mapping[str, Any], *, typ: str | None) -> SignedOutcome:
    """Signature and typ only: a JWKS says nothing of when a key signed."""
    try:
        header = parse_compact(token)[0]
    except KeysError as exc:
        return _failed("malformed", f"not a compact JWS: {exc.message}")
    found = header.get("typ")
    if purpose_of(found) is None or (typ is not None and purpose_of(found) != purpose_of(typ)):
        return _failed("malformed", f"typ {safe(found, 64)} is not {typ or 'one we sign'}")
    resolve: Callable[[str], Any] = jwks_resolver(jwks)
    kid = header.get("kid")
    try:
        verified = verify_compact(
            token,
            resolve_key=lambda h: resolve(h["kid"]) if isinstance(h.get("kid"), str) else None,
            typ=str(found),
            algorithms=_SIGNED_ALGORITHMS,
        )
        claims = msgspec.json.decode(verified.payload, type=dict[str, Any])
    except KeysError as exc:
        return _failed(exc.code, exc.message)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _failed("malformed", "the payload is not a JSON object")
    iat = claims.get("iat")
    return SignedOutcome(
        result="valid",
        reasons=(),
        detail="signature checked with the JWKS; a JWKS has no signing periods",
        typ=str(found),
        kid=str(kid),
        iat=float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None,
        claims=claims,
    )


def _failed(code: str, detail: str) -> SignedOutcome:
    return SignedOutcome(result=code, reasons=(code,), detail=detail)


def _artifact_text(value: str) -> str:
    if COMPACT_JWS.fullmatch(value):
        return value
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise UsageError(f"{value[:64]} is neither a compact JWS nor a readable file")
    return read_file(path, MAX_DOCUMENT_BYTES).decode("ascii", "replace").strip()


def _signed_lines(outcome: SignedOutcome) -> list[str]:
    lines = [outcome.result]
    claims = outcome.claims or {}
    if outcome.typ:
        lines.append(f"  typ: {safe(outcome.typ)}")
    if "iss" in claims:
        lines.append(f"  issuer: {safe(claims['iss'])}")
    if "jti" in claims:
        lines.append(f"  id: {safe(claims['jti'])}")
    if outcome.iat is not None:
        lines.append(f"  signed at: {_time(outcome.iat)}")
    if outcome.detail:
        lines.append(
            f"  {'key' if outcome.result == 'valid' else 'detail'}: {safe(outcome.detail)}"
        )
    return lines


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    try:
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return safe(value)


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "keys": keys_command,
    "signed": signed_command,
}
