"""``verify IMAGE``: C2PA provenance, the detached assertion, the consents it names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import msgspec

from keys.errors import KeysError
from keys.jws import parse_compact
from verifier.assertion import ProvenanceClaims, verify_assertion
from verifier.cli.common import (
    COMPACT_JWS,
    EXIT_CODES,
    MAX_DOCUMENT_BYTES,
    MAX_IMAGE_BYTES,
    StatusListSource,
    UsageError,
    Verdict,
    safe,
    verdict,
)
from verifier.cli.history import load_keys
from verifier.cli.online import Fetched, Online
from verifier.cli.sources import load_status_lists, read_file
from verifier.errors import AssertionInvalid, TrustSettingsInvalid
from verifier.imaging import sha256_hex, sniff_media_type
from verifier.tokens import (
    KEYS_UNKNOWN,
    STATUS_STALE,
    Reason,
    status_on_lists,
)
from verifier.verify import TrustSettings, verify

if TYPE_CHECKING:
    import argparse

    from verifier.cli.sources import Keys, KeysFor
    from verifier.report import Action, ConsentRef, Ingredient, Report
    from verifier.statuslist import SignedStatusList


# What the supplied status lists say of a consent the image names (``stale``: list too old).
StatusOnLists = Literal["valid", "revoked", "suspended", "stale", "unknown"]


_STATUS_NAMES: dict[str, StatusOnLists] = {
    "valid": "valid",
    Reason.REVOKED.value: "revoked",
    Reason.SUSPENDED.value: "suspended",
    STATUS_STALE: "stale",
    Reason.STATUS_UNKNOWN.value: "unknown",
}


class ConsentRefStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A consent the manifest or the assertion names (``sources``), with its list status."""

    jti: str
    status_list_uri: str
    status_idx: int
    sources: tuple[str, ...]
    status: StatusOnLists
    reason: str | None = None
    """The stable code when not valid: revoked, suspended, status_stale or status_unknown."""
    detail: str | None = None


class AssertionCheck(msgspec.Struct, frozen=True, kw_only=True):
    """``unchecked``: ``--online`` could not get the keys to check it (``keys_unknown``)."""

    status: Literal["valid", "invalid", "unchecked", "not_given"]
    code: str | None = None
    detail: str | None = None
    claims: ProvenanceClaims | None = None


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    image: str
    sha256: str
    report: Report
    assertion: AssertionCheck
    status_lists: tuple[StatusListSource, ...]
    consents: tuple[ConsentRefStatus, ...]
    verdict: Verdict
    reasons: tuple[str, ...]
    fetched: tuple[Fetched, ...] = ()
    """What ``--online`` fetched (or would not), in order."""


def verify_command(args: argparse.Namespace, out: TextIO) -> int:
    outcome = _run(args)
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    else:
        _render(outcome, out)
    return EXIT_CODES[outcome.verdict]


def _run(args: argparse.Namespace) -> Outcome:
    given = load_keys(args)
    if (args.assertion or args.status_list) and given is None and not args.online:
        raise UsageError(
            "--assertion and --status-list need --jwks or --keys (or --online) to verify signatures"
        )
    image_path = Path(args.image)
    data = read_file(image_path, MAX_IMAGE_BYTES)
    try:
        trust = TrustSettings.from_pem_files(*args.trust)
    except TrustSettingsInvalid as exc:
        raise UsageError(exc.message) from None
    online = Online(timeout=args.timeout, leeway_seconds=args.leeway) if args.online else None
    # Given keys for everything; else (--online) each artifact's own issuer's key history.
    keys: Keys | KeysFor = (
        given if given is not None else online.keys_for if online is not None else {}
    )
    digest = sha256_hex(data)
    report = verify(data, sniff_media_type(data), trust)

    assertion = AssertionCheck(status="not_given")
    if args.assertion:
        assertion = _check_assertion(args.assertion, keys, digest, args.leeway)

    lists, sources = load_status_lists(
        args.status_list, keys, leeway_seconds=args.leeway, timeout=args.timeout
    )
    referenced = _referenced(report, assertion)
    details: dict[str, str] = {}
    if online is not None:
        # A manifest that does not verify decides the verdict: what it names is not fetched.
        wanted = {
            uri
            for (_, uri, _), found in referenced.items()
            if report.state != "invalid" or "assertion" in found
        }
        for uri in sorted(wanted - lists.keys()):
            signed, source, detail = online.status_list(uri, keys)
            sources = (*sources, source)
            if signed is not None:
                lists[uri] = signed
            elif detail is not None:
                details[uri] = detail
    consents = _check_consents(referenced, lists, args.leeway, details)
    reasons = tuple(dict.fromkeys(code for code, _ in _findings(report, assertion, consents)))
    return Outcome(
        image=str(image_path),
        sha256=digest,
        report=report,
        assertion=assertion,
        status_lists=sources,
        consents=consents,
        verdict=verdict(reasons),
        reasons=reasons,
        fetched=tuple(online.fetched) if online is not None else (),
    )


def _findings(
    report: Report, assertion: AssertionCheck, consents: tuple[ConsentRefStatus, ...]
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
    if assertion.status == "unchecked":
        found.append((KEYS_UNKNOWN, "detached assertion could not be checked: no key history"))
    found.extend(
        (consent.reason, f"consent {consent.jti} is {consent.status}")
        for consent in consents
        if consent.reason is not None
    )
    return found


def _referenced(report: Report, assertion: AssertionCheck) -> dict[tuple[str, str, int], list[str]]:
    """Every consent the manifest or a verified assertion names, with where it was named."""
    referenced: dict[tuple[str, str, int], list[str]] = {}
    for ref in report.consents:
        referenced.setdefault(_key(ref), []).append("manifest")
    if assertion.claims is not None:
        for ref in assertion.claims.consent_refs():
            referenced.setdefault(_key(ref), []).append("assertion")
    return referenced


def _check_consents(
    referenced: dict[tuple[str, str, int], list[str]],
    lists: dict[str, SignedStatusList],
    leeway: int,
    details: dict[str, str],
) -> tuple[ConsentRefStatus, ...]:
    """Each referenced consent's status; ``details`` says why a URI's list is missing."""
    now = datetime.now(UTC)
    checks = []
    for (jti, uri, idx), found in referenced.items():
        status = status_on_lists(lists, uri=uri, idx=idx, now=now, leeway_seconds=leeway)
        detail = status.detail
        if status.code == Reason.STATUS_UNKNOWN.value and uri in details:
            detail = details[uri]
        checks.append(
            ConsentRefStatus(
                jti=jti,
                status_list_uri=uri,
                status_idx=idx,
                sources=tuple(found),
                status=_STATUS_NAMES.get(status.code, "unknown"),
                reason=None if status.code == "valid" else status.code,
                detail=detail,
            )
        )
    return tuple(checks)


def _key(ref: ConsentRef) -> tuple[str, str, int]:
    return (ref.jti, ref.status_list_uri, ref.status_idx)


def _check_assertion(value: str, keys: Keys | KeysFor, digest: str, leeway: int) -> AssertionCheck:
    # A compact JWS is never a usable path: no "/" and exactly two dots between base64url.
    if COMPACT_JWS.fullmatch(value):
        token = value
    else:
        token = read_file(Path(value), MAX_DOCUMENT_BYTES).decode("ascii", "replace")
    token = token.strip()
    found = keys(_unverified_issuer(token)) if callable(keys) else keys
    if isinstance(found, str):
        return AssertionCheck(status="unchecked", code=KEYS_UNKNOWN, detail=found)
    try:
        claims = verify_assertion(token, found, sha256=digest, leeway_seconds=leeway)
    except AssertionInvalid as exc:
        return AssertionCheck(status="invalid", code=exc.code, detail=exc.message)
    return AssertionCheck(status="valid", claims=claims)


def _unverified_issuer(token: str) -> object:
    """The ``iss`` a token claims, unchecked: only which key history to fetch."""
    try:
        return msgspec.json.decode(parse_compact(token)[1], type=dict[str, Any]).get("iss")
    except (KeysError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _render(outcome: Outcome, out: TextIO) -> None:
    lines = [
        f"image: {safe(outcome.image)}",
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
            f"  signer: {safe(signer.common_name)}"
            f" (issuer {safe(signer.issuer)}, {safe(signer.alg)})"
        )
    lines.extend(
        f"  {label}: {safe(value)}"
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
        f"  CAWG identity: {safe(identity.common_name)} (issuer {safe(identity.issuer)})"
        + (f" [{_codes(identity.failure_codes)}]" if identity.failure_codes else "")
        for identity in report.cawg_identities
    )
    lines.extend(
        f"  training/mining: {safe(entry.key)} = {safe(entry.use)}"
        for entry in report.training_mining
    )
    lines.extend(
        f"  soft binding: {safe(binding.alg)} (value {safe(binding.value)})"
        for binding in report.soft_bindings
    )
    if report.decision is not None:
        decision = report.decision
        lines.append(
            f"  decision: {safe(decision.id)} {safe(decision.outcome)}"
            f" (policy {safe(decision.policy_version)})"
        )
    return lines


def _action_line(action: Action) -> str:
    extra = [
        f"{name}: {safe(value)}"
        for name, value in (
            ("source", action.digital_source_type),
            ("agent", action.software_agent),
        )
        if value
    ]
    return f"  action: {safe(action.action)}" + (f" ({'; '.join(extra)})" if extra else "")


def _check_lines(outcome: Outcome) -> list[str]:
    lines = []
    assertion = outcome.assertion
    if assertion.status == "valid" and assertion.claims is not None:
        claims = assertion.claims
        lines.append(
            f"detached assertion: valid (output {safe(claims.jti)}, issuer {safe(claims.iss)})"
        )
    elif assertion.status == "invalid":
        lines.append(f"detached assertion: INVALID {assertion.code}: {safe(assertion.detail)}")
    elif assertion.status == "unchecked":
        lines.append(f"detached assertion: UNCHECKED {assertion.code}: {safe(assertion.detail)}")
    # A status list that failed is reported below, with the other lists.
    lines.extend(
        f"{fetched.kind.replace('_', ' ')} {safe(fetched.uri)}: "
        + (safe(fetched.error) if fetched.error else "fetched")
        for fetched in outcome.fetched
        if fetched.error is None or fetched.kind == "key_history"
    )
    lines.extend(
        f"status list {safe(source.source)}: {safe(source.error)}"
        for source in outcome.status_lists
        if source.error
    )
    lines.extend(
        f"consent {safe(consent.jti)} ({safe(consent.status_list_uri)} #{consent.status_idx}): "
        f"{consent.status}" + (f" - {safe(consent.detail)}" if consent.detail else "")
        for consent in outcome.consents
    )
    lines.append(f"result: {outcome.verdict.upper()}")
    lines.extend(
        f"  - {safe(code)}: {safe(text)}"
        for code, text in _findings(outcome.report, outcome.assertion, outcome.consents)
    )
    return lines


def _codes(codes: tuple[str, ...]) -> str:
    return ", ".join(safe(code) for code in codes)


def _ingredient_lines(ingredients: tuple[Ingredient, ...], depth: int) -> list[str]:
    lines = []
    for ingredient in ingredients:
        name = safe(ingredient.title or ingredient.instance_id or "(untitled)")
        ident = f" {safe(ingredient.instance_id)}" if ingredient.instance_id else ""
        if ingredient.informational_uri:
            ident += f" ({safe(ingredient.informational_uri)})"
        codes = (
            f" [{', '.join(safe(c) for c in ingredient.failure_codes)}]"
            if ingredient.failure_codes
            else ""
        )
        lines.append(f"{'  ' * depth}- {name}{ident}: {ingredient.state}{codes}")
        lines.extend(_ingredient_lines(ingredient.children, depth + 1))
    return lines
