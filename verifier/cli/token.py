"""``token TOKEN``: one consent token, checked offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from verifier.cli.common import (
    COMPACT_JWS,
    EXIT_CODES,
    MAX_DOCUMENT_BYTES,
    StatusListSource,
    UsageError,
    safe,
    verdict,
)
from verifier.cli.history import load_keys
from verifier.cli.sources import load_status_lists, read_file
from verifier.tokens import (
    OfflineCheck,
    check_token_offline,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable


class TokenOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """``--json`` of ``token``: ``valid`` or the deciding reason, every reason, the claims."""

    result: str
    reasons: tuple[str, ...]
    claims: dict[str, Any] | None


def token_command(args: argparse.Namespace, out: TextIO) -> int:
    jwks = load_keys(args)
    if jwks is None:
        raise UsageError("token needs --jwks or --keys to verify the signature")
    token = _token_text(args.token)
    lists, sources = load_status_lists(args.status_list, jwks, leeway_seconds=args.leeway)
    check = check_token_offline(
        token,
        jwks=jwks,
        status_lists=lists,
        now=datetime.now(UTC),
        leeway_seconds=args.leeway,
        audience=args.audience,
        issuer=args.issuer,
        use=args.use,
    )
    if args.json:
        outcome = TokenOutcome(result=check.result, reasons=check.reasons, claims=check.claims)
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        out.write("\n".join(_token_lines(check, sources)) + "\n")
    return EXIT_CODES[verdict(check.reasons)]


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


def _token_lines(check: OfflineCheck, sources: Iterable[StatusListSource]) -> list[str]:
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
    if check.status_detail:
        lines.append(f"  status: {safe(check.status_detail)}")
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
