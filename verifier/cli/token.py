"""``token TOKEN``: one consent token, checked offline; with ``--photo FILE``, that it binds
that photo (the token's salted commitment of the file's SHA-256, ``asset_mismatch`` if not)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.cli.common import (
    COMPACT_JWS,
    EXIT_CODES,
    MAX_DOCUMENT_BYTES,
    MAX_IMAGE_BYTES,
    StatusListSource,
    UsageError,
    safe,
    verdict,
)
from verifier.cli.history import load_keys
from verifier.cli.online import Fetched, Online
from verifier.cli.sources import load_status_lists, read_file
from verifier.imaging import sha256_hex
from verifier.tokens import (
    KEYS_UNKNOWN,
    DecodedToken,
    OfflineCheck,
    Reason,
    check_token_offline,
    decode_token,
    jwks_resolver,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable

    from verifier.cli.sources import Keys


class TokenOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``--json`` of ``token``: ``valid`` or the deciding reason, every reason, the claims;
    ``detail`` when a status or the keys could not be had, and what ``--online`` fetched."""

    result: str
    reasons: tuple[str, ...]
    claims: dict[str, Any] | None
    detail: str | None = None
    fetched: tuple[Fetched, ...] = ()


def token_command(args: argparse.Namespace, out: TextIO) -> int:
    given = load_keys(args)
    if given is None and not args.online:
        raise UsageError("token needs --jwks or --keys (or --online) to verify the signature")
    token = _token_text(args.token)
    # The photo is hashed here and tested against the token's commitments; it goes nowhere.
    photo = sha256_hex(read_file(Path(args.photo), MAX_IMAGE_BYTES)) if args.photo else None
    online = Online(timeout=args.timeout, leeway_seconds=args.leeway) if args.online else None
    keys: Keys | str | None = given
    if keys is None and online is not None:
        keys = _online_keys(token, args.issuer, online)
    sources: tuple[StatusListSource, ...] = ()
    if keys is None:
        malformed = Reason.MALFORMED.value
        check = OfflineCheck(result=malformed, reasons=(malformed,), claims=None)
    elif isinstance(keys, str):
        # No keys to check it with (--online): indeterminate, whatever the token says.
        check = OfflineCheck(
            result=KEYS_UNKNOWN, reasons=(KEYS_UNKNOWN,), claims=None, status_detail=keys
        )
    else:
        check, sources = _check(token, keys, online, args, photo)
    fetched = tuple(online.fetched) if online is not None else ()
    if args.json:
        outcome = TokenOutcome(
            result=check.result,
            reasons=check.reasons,
            claims=check.claims,
            detail=check.status_detail,
            fetched=fetched,
        )
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        out.write("\n".join(_token_lines(check, sources, fetched)) + "\n")
    return EXIT_CODES[verdict(check.reasons)]


def _online_keys(token: str, issuer: str | None, online: Online) -> Keys | str | None:
    """The key history of ``--issuer`` or of the token's ``iss``; None when the token has no
    readable ``iss`` (malformed: a consent token always names its issuer)."""
    if issuer is not None:
        return online.keys_for(issuer)
    try:
        claims = msgspec.json.decode(parse_compact(token)[1], type=dict[str, Any])
    except (KeysError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not isinstance(claims.get("iss"), str):
        return None
    return online.keys_for(claims["iss"])


def _check(
    token: str, keys: Keys, online: Online | None, args: argparse.Namespace, photo: str | None
) -> tuple[OfflineCheck, tuple[StatusListSource, ...]]:
    lists, sources = load_status_lists(
        args.status_list, keys, leeway_seconds=args.leeway, timeout=args.timeout
    )
    detail = None
    # The list the token names is fetched only once its signature verified.
    decoded = decode_token(token, jwks_resolver(keys)) if online is not None else None
    if online is not None and isinstance(decoded, DecodedToken):
        uri = decoded.claims.status.status_list.uri
        if uri not in lists:
            signed, source, detail = online.status_list(uri, keys)
            sources = (*sources, source)
            if signed is not None:
                lists[uri] = signed
    check = check_token_offline(
        token,
        jwks=keys,
        status_lists=lists,
        now=datetime.now(UTC),
        leeway_seconds=args.leeway,
        audience=args.audience,
        issuer=args.issuer,
        use=args.use,
        photo_sha256=photo,
    )
    if detail is not None and Reason.STATUS_UNKNOWN.value in check.reasons:
        check = msgspec.structs.replace(check, status_detail=detail)
    return check, sources


def _token_text(value: str) -> str:
    """The token itself, or the contents of the file ``value`` names."""
    if COMPACT_JWS.fullmatch(value):
        return value
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        # Neither a compact JWS nor a file: it is a token, and reported as malformed.
        return value
    return read_file(path, MAX_DOCUMENT_BYTES).decode("ascii", "replace").strip()


def _token_lines(
    check: OfflineCheck, sources: Iterable[StatusListSource], fetched: Iterable[Fetched]
) -> list[str]:
    lines = [check.result]
    if len(check.reasons) > 1:
        lines.append(f"  reasons: {', '.join(check.reasons)}")
    claims = check.claims or {}
    lines.extend(
        f"  {label}: {_claim_text(claims[name])}"
        for label, name in (
            ("token", "jti"),
            ("consent", "cid"),
            ("issuer", "iss"),
            ("audience", "aud"),
            ("uses", "uses"),
        )
        if name in claims
    )
    lines.extend(
        f"  {label}: {_timestamp(claims[name])}"
        for label, name in (("not before", "nbf"), ("expires", "exp"))
        if name in claims
    )
    lines.extend(
        f"  {item.kind.replace('_', ' ')} {safe(item.uri)}: fetched"
        for item in fetched
        if item.error is None
    )
    if check.status_detail:
        label = "keys" if check.result == KEYS_UNKNOWN else "status"
        lines.append(f"  {label}: {safe(check.status_detail)}")
    lines.extend(
        f"  status list {safe(source.source)}: {safe(source.error)}"
        for source in sources
        if source.error
    )
    return lines


def _claim_text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(safe(item) for item in value)
    return safe(value)


def _timestamp(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return safe(value)
