"""The offline third-party verifier: ``python -m verifier verify IMAGE ...``.

It needs only published material: trust anchors (our C2PA root, or a trust list), the JWKS,
a detached assertion and status lists, as files or URLs the user names. It imports nothing
that needs a database or the service, and makes no request the user did not ask for.

Exit status: 0 when the image's provenance is ``trusted``, a given detached assertion
verifies and names this image, and every referenced consent is valid on a supplied status
list; 1 when any of that fails (a consent whose list was not supplied is unknown, not valid);
2 on a usage or I/O error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import msgspec

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.assertion import ProvenanceClaims, verify_assertion
from verifier.errors import AssertionInvalid, TrustSettingsInvalid
from verifier.imaging import sha256_hex, sniff_media_type
from verifier.statuslist import (
    INVALID,
    SUSPENDED,
    VALID,
    StatusList,
    StatusListError,
    parse_status_list_token,
)
from verifier.verify import TrustSettings, verify

if TYPE_CHECKING:
    from collections.abc import Sequence

    from verifier.report import Action, ConsentRef, Ingredient, Report

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_IMAGE_BYTES = 256 * 1024 * 1024
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
_DISPLAY_CHARS = 300
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

ConsentStatus = Literal["valid", "revoked", "suspended", "unknown"]
_STATUS_NAMES: dict[int, ConsentStatus] = {
    VALID: "valid",
    INVALID: "revoked",
    SUSPENDED: "suspended",
}


class UsageError(Exception):
    """A bad argument or an unreadable input: exit status 2."""


class ConsentCheck(msgspec.Struct, frozen=True, kw_only=True):
    jti: str
    status_list_uri: str
    status_idx: int
    sources: tuple[str, ...]
    status: ConsentStatus
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
    verdict: Literal["pass", "fail"]
    reasons: tuple[str, ...]


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        outcome = _run(args)
    except UsageError as exc:
        sys.stderr.write(f"error: {_safe(str(exc))}\n")
        return EXIT_USAGE
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        _render(outcome, out)
    return EXIT_OK if outcome.verdict == "pass" else EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verifier",
        description="Verify an image's C2PA provenance, detached assertion and consent status.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify one image")
    check.add_argument("image", help="the image file")
    check.add_argument(
        "--trust", action="append", default=[], metavar="PEM", help="trust anchors (PEM bundle)"
    )
    check.add_argument("--jwks", metavar="FILE|URL", help="the registry's JWKS")
    check.add_argument("--assertion", metavar="JWS|FILE", help="the detached provenance assertion")
    check.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE|URL",
        help="a status list token (repeatable)",
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


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

    lists: dict[str, StatusList] = {}
    sources = []
    for source in args.status_list:
        uri, status_list, error = _load_status_list(source, jwks or {})
        sources.append(StatusListSource(source=source, uri=uri, error=error))
        if uri is not None and status_list is not None:
            lists[uri] = status_list
    consents = _check_consents(report, assertion, lists)

    reasons = []
    if report.state != "trusted":
        reasons.append(f"C2PA provenance is {report.state}, not trusted")
    if assertion.status == "invalid":
        reasons.append(f"detached assertion is invalid ({assertion.code})")
    reasons.extend(
        f"consent {consent.jti} is {consent.status}"
        for consent in consents
        if consent.status != "valid"
    )
    return Outcome(
        image=str(image_path),
        sha256=digest,
        report=report,
        assertion=assertion,
        status_lists=tuple(sources),
        consents=consents,
        verdict="fail" if reasons else "pass",
        reasons=tuple(reasons),
    )


def _check_consents(
    report: Report, assertion: AssertionCheck, lists: dict[str, StatusList]
) -> tuple[ConsentCheck, ...]:
    """Every consent the manifest or a verified assertion names, with where it was named."""
    referenced: dict[tuple[str, str, int], list[str]] = {}
    for ref in report.consents:
        referenced.setdefault(_key(ref), []).append("manifest")
    if assertion.claims is not None:
        for ref in assertion.claims.consent_refs():
            referenced.setdefault(_key(ref), []).append("assertion")
    return tuple(
        _check_consent(jti, uri, idx, tuple(found), lists)
        for (jti, uri, idx), found in referenced.items()
    )


def _key(ref: ConsentRef) -> tuple[str, str, int]:
    return (ref.jti, ref.status_list_uri, ref.status_idx)


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


def _load_status_list(
    source: str, jwks: dict[str, Any]
) -> tuple[str | None, StatusList | None, str | None]:
    """(its URI, the verified list or None, why not); I/O problems raise UsageError."""
    token = _read_source(source).decode("ascii", "replace").strip()
    if _is_url(source):
        uri: str | None = source
    else:
        # The list names its own URI in ``sub``; parse_status_list_token then checks that
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
        return uri, parse_status_list_token(token, jwks=jwks, expected_uri=uri), None
    except StatusListError as exc:
        return uri, None, f"{exc.code}: {exc.message}"


def _check_consent(
    jti: str, uri: str, idx: int, sources: tuple[str, ...], lists: dict[str, StatusList]
) -> ConsentCheck:
    status_list = lists.get(uri)
    status: ConsentStatus = "unknown"
    detail = None
    if status_list is None:
        detail = "its status list was not supplied or did not verify"
    else:
        try:
            value = status_list.get(idx)
        except StatusListError:
            detail = "index is outside the status list"
        else:
            name = _STATUS_NAMES.get(value)
            if name is None:
                detail = f"status value {value} is not defined"
            else:
                status = name
    return ConsentCheck(
        jti=jti,
        status_list_uri=uri,
        status_idx=idx,
        sources=sources,
        status=status,
        detail=detail,
    )


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
        f"{consent.status}" + (f" - {consent.detail}" if consent.detail else "")
        for consent in outcome.consents
    )
    lines.append(f"result: {outcome.verdict.upper()}")
    lines.extend(f"  - {_safe(reason)}" for reason in outcome.reasons)
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
