"""The offline third-party verifier: ``python -m verifier verify IMAGE ...`` and
``python -m verifier token TOKEN ...``.

It needs only published material: trust anchors (our C2PA root, or a trust list), the JWKS,
a detached assertion and status lists, as files or URLs the user names. It imports nothing
that needs a database or the service, and makes no request the user did not ask for.

``verify`` checks an image's C2PA provenance, a given detached assertion, and every consent
the manifest or the assertion names against the supplied status lists. ``token`` checks one
consent token: its signature with the JWKS (``typ: consent+jwt``, EdDSA or ES256), ``exp``,
``nbf`` and ``iat`` with ``--leeway`` seconds of clock skew (default 5, as the registry's),
its issuer, audience and use when asked, and its status on a supplied list.

Exit status, for both commands:

- 0, ``verified`` (a token: ``valid``);
- 1, ``invalid``: a changed byte, a bad signature, a signer that does not chain to the
  anchor, an assertion that fails or names another image, a consent revoked or suspended; a
  token that is malformed, expired, not yet valid, or for another issuer, audience or use;
- 2, ``indeterminate``: what could be checked holds, but a status could not be: no verified
  status list for it (``status_unknown``), or one older than its ``ttl`` or past its ``exp``
  (``status_stale``: fetch it again);
- 64, a usage error or an unreadable input.

``--json`` prints one document: ``verdict`` for ``verify``, ``result`` for ``token``, and
``reasons``, the stable codes of every failing item (``provenance_<state>``, the assertion's
code, ``revoked``, ``suspended``, ``status_stale``, ``status_unknown``, ``expired``,
``not_yet_valid``, ``signature``, ``malformed``, ``issuer``, ``audience``,
``use_not_permitted``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO

import msgspec

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.assertion import ProvenanceClaims, verify_assertion
from verifier.clock import DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS
from verifier.errors import AssertionInvalid, TrustSettingsInvalid
from verifier.imaging import sha256_hex, sniff_media_type
from verifier.statuslist import SignedStatusList, StatusListError, verify_status_list_token
from verifier.tokens import (
    INDETERMINATE_CODES,
    STATUS_STALE,
    OfflineCheck,
    Reason,
    check_token_offline,
    status_on_lists,
)
from verifier.verify import TrustSettings, verify

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from verifier.report import Action, ConsentRef, Ingredient, Report

__all__ = ["main"]

EXIT_VERIFIED = 0
EXIT_INVALID = 1
EXIT_INDETERMINATE = 2
# sysexits.h EX_USAGE: 2 means indeterminate here, so usage errors need a code of their own.
EXIT_USAGE = 64
MAX_IMAGE_BYTES = 256 * 1024 * 1024
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
_DISPLAY_CHARS = 300
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

Verdict = Literal["verified", "invalid", "indeterminate"]
ConsentStatus = Literal["valid", "revoked", "suspended", "stale", "unknown"]
_STATUS_NAMES: dict[str, ConsentStatus] = {
    "valid": "valid",
    Reason.REVOKED.value: "revoked",
    Reason.SUSPENDED.value: "suspended",
    STATUS_STALE: "stale",
    Reason.STATUS_UNKNOWN.value: "unknown",
}
_EXIT_CODES: dict[Verdict, int] = {
    "verified": EXIT_VERIFIED,
    "invalid": EXIT_INVALID,
    "indeterminate": EXIT_INDETERMINATE,
}


class UsageError(Exception):
    """A bad argument or an unreadable input: exit status 64."""


class ConsentCheck(msgspec.Struct, frozen=True, kw_only=True):
    jti: str
    status_list_uri: str
    status_idx: int
    sources: tuple[str, ...]
    status: ConsentStatus
    reason: str | None = None
    """The stable code when not valid: revoked, suspended, status_stale or status_unknown."""
    detail: str | None = None


class AssertionCheck(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["valid", "invalid", "not_given"]
    code: str | None = None
    detail: str | None = None
    claims: ProvenanceClaims | None = None


class StatusListSource(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    uri: str | None
    error: str | None = None


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    image: str
    sha256: str
    report: Report
    assertion: AssertionCheck
    status_lists: tuple[StatusListSource, ...]
    consents: tuple[ConsentCheck, ...]
    verdict: Verdict
    reasons: tuple[str, ...]


class TokenOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """``--json`` of ``token``: ``valid`` or the deciding reason, every reason, the claims."""

    result: str
    reasons: tuple[str, ...]
    claims: dict[str, Any] | None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2, which here means indeterminate.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "token":
            return _token_command(args, out)
        return _verify_command(args, out)
    except UsageError as exc:
        sys.stderr.write(f"error: {_safe(str(exc))}\n")
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m verifier",
        description="Verify an image's C2PA provenance, detached assertion and consent status, "
        "or one consent token, offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify one image")
    check.add_argument("image", help="the image file")
    check.add_argument(
        "--trust", action="append", default=[], metavar="PEM", help="trust anchors (PEM bundle)"
    )
    check.add_argument("--jwks", metavar="FILE|URL", help="the registry's JWKS")
    check.add_argument("--assertion", metavar="JWS|FILE", help="the detached provenance assertion")
    _status_list_argument(check)
    _leeway_argument(check)
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    token = commands.add_parser("token", help="verify one consent token")
    token.add_argument("token", metavar="TOKEN_OR_FILE", help="the consent token, or a file")
    token.add_argument("--jwks", metavar="FILE|URL", required=True, help="the registry's JWKS")
    _status_list_argument(token)
    token.add_argument("--audience", metavar="AUD", help="the audience the token must name")
    token.add_argument("--issuer", metavar="ISS", help="the issuer the token must name")
    token.add_argument("--use", metavar="USE", help="a use the token must grant")
    _leeway_argument(token)
    token.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _status_list_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE|URL",
        help="a status list token (repeatable)",
    )


def _leeway_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--leeway",
        type=_leeway,
        default=DEFAULT_LEEWAY_SECONDS,
        metavar="SECONDS",
        help=f"clock skew allowed on exp, nbf and iat (0 to {MAX_LEEWAY_SECONDS}, "
        f"default {DEFAULT_LEEWAY_SECONDS})",
    )


def _leeway(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of seconds") from None
    if not 0 <= seconds <= MAX_LEEWAY_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_LEEWAY_SECONDS} seconds")
    return seconds


# verify IMAGE


def _verify_command(args: argparse.Namespace, out: TextIO) -> int:
    outcome = _run(args)
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        _render(outcome, out)
    return _EXIT_CODES[outcome.verdict]


def _run(args: argparse.Namespace) -> Outcome:
    if (args.assertion or args.status_list) and not args.jwks:
        raise UsageError("--assertion and --status-list need --jwks to verify signatures")
    image_path = Path(args.image)
    data = _read_file(image_path, MAX_IMAGE_BYTES)
    try:
        trust = TrustSettings.from_pem_files(*args.trust)
    except TrustSettingsInvalid as exc:
        raise UsageError(exc.message) from None
    jwks = _load_jwks(args.jwks) if args.jwks else None
    digest = sha256_hex(data)
    report = verify(data, sniff_media_type(data), trust)

    assertion = AssertionCheck(status="not_given")
    if args.assertion and jwks is not None:
        assertion = _check_assertion(args.assertion, jwks, digest)

    lists, sources = _load_status_lists(args.status_list, jwks or {})
    consents = _check_consents(report, assertion, lists, args.leeway)
    reasons = tuple(dict.fromkeys(code for code, _ in _findings(report, assertion, consents)))
    return Outcome(
        image=str(image_path),
        sha256=digest,
        report=report,
        assertion=assertion,
        status_lists=sources,
        consents=consents,
        verdict=_verdict(reasons),
        reasons=reasons,
    )


def _verdict(reasons: Iterable[str]) -> Verdict:
    codes = set(reasons)
    if not codes:
        return "verified"
    return "indeterminate" if codes <= INDETERMINATE_CODES else "invalid"


def _findings(
    report: Report, assertion: AssertionCheck, consents: tuple[ConsentCheck, ...]
) -> list[tuple[str, str]]:
    """(stable code, explanation) of every item that keeps the image from ``verified``."""
    found = []
    if report.state != "trusted":
        found.append(
            (f"provenance_{report.state}", f"C2PA provenance is {report.state}, not trusted")
        )
    if assertion.status == "invalid":
        code = assertion.code or AssertionInvalid.code
        found.append((code, f"detached assertion is invalid ({code})"))
    found.extend(
        (consent.reason, f"consent {consent.jti} is {consent.status}")
        for consent in consents
        if consent.reason is not None
    )
    return found


def _check_consents(
    report: Report, assertion: AssertionCheck, lists: dict[str, SignedStatusList], leeway: int
) -> tuple[ConsentCheck, ...]:
    """Every consent the manifest or a verified assertion names, with where it was named."""
    referenced: dict[tuple[str, str, int], list[str]] = {}
    for ref in report.consents:
        referenced.setdefault(_key(ref), []).append("manifest")
    if assertion.claims is not None:
        for ref in assertion.claims.consent_refs():
            referenced.setdefault(_key(ref), []).append("assertion")
    now = datetime.now(UTC)
    checks = []
    for (jti, uri, idx), found in referenced.items():
        status = status_on_lists(lists, uri=uri, idx=idx, now=now, leeway_seconds=leeway)
        checks.append(
            ConsentCheck(
                jti=jti,
                status_list_uri=uri,
                status_idx=idx,
                sources=tuple(found),
                status=_STATUS_NAMES.get(status.code, "unknown"),
                reason=None if status.code == "valid" else status.code,
                detail=status.detail,
            )
        )
    return tuple(checks)


def _key(ref: ConsentRef) -> tuple[str, str, int]:
    return (ref.jti, ref.status_list_uri, ref.status_idx)


# token TOKEN


def _token_command(args: argparse.Namespace, out: TextIO) -> int:
    jwks = _load_jwks(args.jwks)
    token = _token_text(args.token)
    lists, sources = _load_status_lists(args.status_list, jwks)
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
    return _EXIT_CODES[_verdict(check.reasons)]


def _token_text(value: str) -> str:
    """The token itself, or the contents of the file ``value`` names."""
    if _COMPACT_JWS.fullmatch(value):
        return value
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        # Neither a compact JWS nor a file: it is a token, and reported as malformed.
        return value
    return _read_file(path, MAX_DOCUMENT_BYTES).decode("ascii", "replace").strip()


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
        lines.append(f"  status: {_safe(check.status_detail)}")
    lines.extend(
        f"  status list {_safe(source.source)}: {_safe(source.error)}"
        for source in sources
        if source.error
    )
    return lines


def _claim_text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_safe(item) for item in value)
    return _safe(value)


def _timestamp(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return _safe(value)


# Inputs.


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        if path.stat().st_size > max_bytes:
            raise UsageError(f"{path} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _fetch(url: str, max_bytes: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked by _is_url
            body: bytes = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UsageError(f"cannot fetch {url}: {exc}") from None
    if len(body) > max_bytes:
        raise UsageError(f"{url} is larger than {max_bytes} bytes")
    return body


def _read_source(value: str) -> bytes:
    if _is_url(value):
        return _fetch(value, MAX_DOCUMENT_BYTES)
    return _read_file(Path(value), MAX_DOCUMENT_BYTES)


def _load_jwks(value: str) -> dict[str, Any]:
    try:
        jwks = json.loads(_read_source(value))
    except (ValueError, RecursionError):
        raise UsageError(f"{value} is not a JSON JWKS") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UsageError(f"{value} is not a JWKS (an object with a 'keys' array)")
    return jwks


def _check_assertion(value: str, jwks: dict[str, Any], digest: str) -> AssertionCheck:
    # A compact JWS is never a usable path: no "/" and exactly two dots between base64url.
    if _COMPACT_JWS.fullmatch(value):
        token = value
    else:
        token = _read_file(Path(value), MAX_DOCUMENT_BYTES).decode("ascii", "replace")
    try:
        claims = verify_assertion(token.strip(), jwks, sha256=digest)
    except AssertionInvalid as exc:
        return AssertionCheck(status="invalid", code=exc.code, detail=exc.message)
    return AssertionCheck(status="valid", claims=claims)


def _load_status_lists(
    sources: Iterable[str], jwks: dict[str, Any]
) -> tuple[dict[str, SignedStatusList], tuple[StatusListSource, ...]]:
    """The lists that verified, by URI, and what became of each source."""
    lists: dict[str, SignedStatusList] = {}
    loaded = []
    for source in sources:
        uri, signed, error = _load_status_list(source, jwks)
        loaded.append(StatusListSource(source=source, uri=uri, error=error))
        if uri is not None and signed is not None:
            lists[uri] = signed
    return lists, tuple(loaded)


def _load_status_list(
    source: str, jwks: dict[str, Any]
) -> tuple[str | None, SignedStatusList | None, str | None]:
    """(its URI, the verified list or None, why not); I/O problems raise UsageError."""
    token = _read_source(source).decode("ascii", "replace").strip()
    if _is_url(source):
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
        return uri, verify_status_list_token(token, jwks=jwks, expected_uri=uri), None
    except StatusListError as exc:
        return uri, None, f"{exc.code}: {exc.message}"


# Output.


def _safe(value: object, limit: int = _DISPLAY_CHARS) -> str:
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


def _render(outcome: Outcome, out: TextIO) -> None:
    lines = [
        f"image: {_safe(outcome.image)}",
        f"sha256: {outcome.sha256}",
        f"C2PA provenance: {outcome.report.state}",
        *_report_lines(outcome.report),
        *_check_lines(outcome),
    ]
    out.write("\n".join(lines) + "\n")


def _report_lines(report: Report) -> list[str]:
    lines = []
    if report.signer is not None:
        signer = report.signer
        lines.append(
            f"  signer: {_safe(signer.common_name)}"
            f" (issuer {_safe(signer.issuer)}, {_safe(signer.alg)})"
        )
    lines.extend(
        f"  {label}: {_safe(value)}"
        for label, value in (
            ("claim generator", report.claim_generator),
            ("signing time", report.signing_time),
            ("digital source type", report.digital_source_type),
            ("remote manifest", report.remote_url),
            ("detail", report.detail),
            ("generation", report.generation_id),
        )
        if value
    )
    if report.has_manifest:
        lines.append(f"  AI-generated: {'yes' if report.ai_generated else 'no'}")
    if report.failure_codes:
        lines.append(f"  failure codes: {_codes(report.failure_codes)}")
    lines.extend(_action_line(action) for action in report.actions)
    if report.ingredients:
        lines.append("  ingredients:")
        lines.extend(_ingredient_lines(report.ingredients, 2))
    lines.extend(
        f"  CAWG identity: {_safe(identity.common_name)} (issuer {_safe(identity.issuer)})"
        + (f" [{_codes(identity.failure_codes)}]" if identity.failure_codes else "")
        for identity in report.cawg_identities
    )
    lines.extend(
        f"  training/mining: {_safe(entry.key)} = {_safe(entry.use)}"
        for entry in report.training_mining
    )
    if report.decision is not None:
        decision = report.decision
        lines.append(
            f"  decision: {_safe(decision.id)} {_safe(decision.outcome)}"
            f" (policy {_safe(decision.policy_version)})"
        )
    return lines


def _action_line(action: Action) -> str:
    extra = [
        f"{name}: {_safe(value)}"
        for name, value in (
            ("source", action.digital_source_type),
            ("agent", action.software_agent),
        )
        if value
    ]
    return f"  action: {_safe(action.action)}" + (f" ({'; '.join(extra)})" if extra else "")


def _check_lines(outcome: Outcome) -> list[str]:
    lines = []
    assertion = outcome.assertion
    if assertion.status == "valid" and assertion.claims is not None:
        claims = assertion.claims
        lines.append(
            f"detached assertion: valid (output {_safe(claims.jti)}, issuer {_safe(claims.iss)})"
        )
    elif assertion.status == "invalid":
        lines.append(f"detached assertion: INVALID {assertion.code}: {_safe(assertion.detail)}")
    lines.extend(
        f"status list {_safe(source.source)}: {_safe(source.error)}"
        for source in outcome.status_lists
        if source.error
    )
    lines.extend(
        f"consent {_safe(consent.jti)} ({_safe(consent.status_list_uri)} #{consent.status_idx}): "
        f"{consent.status}" + (f" - {_safe(consent.detail)}" if consent.detail else "")
        for consent in outcome.consents
    )
    lines.append(f"result: {outcome.verdict.upper()}")
    lines.extend(
        f"  - {_safe(code)}: {_safe(text)}"
        for code, text in _findings(outcome.report, outcome.assertion, outcome.consents)
    )
    return lines


def _codes(codes: tuple[str, ...]) -> str:
    return ", ".join(_safe(code) for code in codes)


def _ingredient_lines(ingredients: tuple[Ingredient, ...], depth: int) -> list[str]:
    lines = []
    for ingredient in ingredients:
        name = _safe(ingredient.title or ingredient.instance_id or "(untitled)")
        ident = f" {_safe(ingredient.instance_id)}" if ingredient.instance_id else ""
        codes = (
            f" [{', '.join(_safe(c) for c in ingredient.failure_codes)}]"
            if ingredient.failure_codes
            else ""
        )
        lines.append(f"{'  ' * depth}- {name}{ident}: {ingredient.state}{codes}")
        lines.extend(_ingredient_lines(ingredient.children, depth + 1))
    return lines
