"""What the public check page says about an image, in plain words.

Turns the provenance service's ``Verification`` (and, when the file carries no manifest, its
``Lookup`` of similar signed outputs) into one verdict sentence and the facts under it. The
text here is plain; every string from a manifest stays untrusted and the templates escape it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from registry.provenance import (
        ConsentStatusView,
        Lookup,
        LookupMatch,
        OutputRecord,
        Verification,
    )
    from verifier import Action, Ingredient

__all__ = ["CONSENT_WORDS", "ConsentLine", "Tone", "VerifyView", "verify_view"]

Tone: TypeAlias = Literal["good", "warn", "bad", "neutral"]

# Our records' token status → (word shown, tone).
CONSENT_WORDS: dict[str, tuple[str, Tone]] = {
    "valid": ("valid", "good"),
    "revoked": ("withdrawn", "bad"),
    "suspended": ("suspended", "warn"),
    "unknown": ("not in our records", "neutral"),
}
_TAMPER_HINTS = ("dataHash.mismatch", "bmffHash.mismatch", "boxesHash.mismatch", "hash.mismatch")


class ConsentLine(msgspec.Struct, kw_only=True, frozen=True):
    jti: str
    status_list_uri: str
    status_idx: int
    word: str
    tone: Tone


class VerifyView(msgspec.Struct, kw_only=True, frozen=True):
    tone: Tone
    sentence: str
    state: str
    signer: str | None
    signer_issuer: str | None
    signing_time: str | None
    ai_generated: bool
    digital_source_type: str | None
    actions: tuple[Action, ...]
    ingredients: tuple[Ingredient, ...]
    consents: tuple[ConsentLine, ...]
    failure_codes: tuple[str, ...]
    generation_id: str | None
    decision: str | None
    match_kind: str | None
    """``sha256``, ``perceptual`` or ``watermark`` when the image is one of our signed
    outputs."""
    match_distance: int | None
    signed_at: str | None
    similar: tuple[LookupMatch, ...]
    detail: str | None
    watermark_output: str | None = None
    """The signed output our watermark in the pixels names (found by watermark)."""
    watermark_generation: str | None = None


def verify_view(verification: Verification, lookup: Lookup | None = None) -> VerifyView:
    """The page's verdict for one image."""
    report = verification.state
    match = verification.registry
    consents = _consent_lines(verification)
    similar = lookup.matches if lookup is not None else ()
    marked = _marked(verification, similar)
    signer_name = None
    signer_issuer = None
    if verification.signer is not None:
        signer_name = verification.signer.common_name or verification.signer.issuer
        signer_issuer = verification.signer.issuer
    tone: Tone
    if report == "invalid":
        tone = "bad"
        tampered = any(code.endswith(_TAMPER_HINTS) for code in verification.failure_codes)
        sentence = (
            "Tampered after signing: the picture no longer matches what was signed."
            if tampered
            else "Tampered after signing: the provenance does not verify."
        )
    elif report in {"trusted", "valid_untrusted"}:
        who = signer_name or "an unnamed signer"
        says = "says AI-generated" if verification.ai_generated else "does not say AI-generated"
        phrase, consent_tone = _consent_phrase(consents, has_claims=bool(verification.consents))
        if report == "trusted":
            sentence = f"Signed by {who}, {says}, {phrase}."
            tone = consent_tone
        else:
            sentence = f"Signed by {who} (a signer we do not trust), {says}, {phrase}."
            tone = "warn"
    elif report == "remote_manifest":
        tone = "warn"
        sentence = "The provenance is stored elsewhere and was not fetched."
    elif report == "unsupported":
        tone = "neutral"
        sentence = "This kind of file cannot carry provenance we can read."
    else:
        tone = "neutral"
        sentence = "No provenance found."
        if marked is not None:
            sentence = (
                "No provenance found in the file, but it looks like an image we signed: it "
                "carries our invisible watermark (its provenance was probably stripped)."
            )
            tone = "warn"
        elif match is not None or similar:
            sentence = (
                "No provenance found in the file, but it looks like an image we signed "
                "(its provenance was probably stripped)."
            )
            tone = "warn"
    return VerifyView(
        tone=tone,
        sentence=sentence,
        state=report,
        signer=signer_name,
        signer_issuer=signer_issuer,
        signing_time=verification.signing_time,
        ai_generated=verification.ai_generated,
        digital_source_type=verification.digital_source_type,
        actions=verification.actions,
        ingredients=verification.ingredients,
        consents=consents,
        failure_codes=verification.failure_codes,
        generation_id=verification.generation_id or (match.output.generation_id if match else None),
        decision=(
            f"{verification.decision.outcome} ({verification.decision.id})"
            if verification.decision is not None
            else None
        ),
        match_kind=match.match if match is not None else None,
        match_distance=match.distance if match is not None else None,
        signed_at=match.output.signed_at.isoformat(timespec="seconds") if match else None,
        similar=similar,
        detail=verification.detail,
        watermark_output=marked.output_id if marked is not None else None,
        watermark_generation=marked.generation_id if marked is not None else None,
    )


def _marked(verification: Verification, similar: tuple[LookupMatch, ...]) -> OutputRecord | None:
    """The output our watermark names, as found by the verification or the lookup."""
    finding = verification.watermark
    if finding is None or finding.output_id is None:
        return None
    if verification.registry is not None and verification.registry.output.output_id == (
        finding.output_id
    ):
        return verification.registry.output
    return next((m.output for m in similar if m.output.output_id == finding.output_id), None)


def _consent_lines(verification: Verification) -> tuple[ConsentLine, ...]:
    """Each consent the manifest names, with its status in our records (when we have it)."""
    known: dict[str, ConsentStatusView] = {}
    if verification.registry is not None:
        known = {c.jti: c for c in verification.registry.output.consents}
    lines = []
    for ref in verification.consents:
        status = known[ref.jti].status if ref.jti in known else "unknown"
        word, tone = CONSENT_WORDS[status]
        lines.append(
            ConsentLine(
                jti=ref.jti,
                status_list_uri=ref.status_list_uri,
                status_idx=ref.status_idx,
                word=word,
                tone=tone,
            )
        )
    if not verification.consents and verification.registry is not None:
        # A stripped copy: the manifest is gone, our record still names the consents.
        for view in verification.registry.output.consents:
            word, tone = CONSENT_WORDS[view.status]
            lines.append(
                ConsentLine(
                    jti=view.jti,
                    status_list_uri=view.status_list_uri,
                    status_idx=view.status_idx,
                    word=word,
                    tone=tone,
                )
            )
    return tuple(lines)


def _consent_phrase(consents: tuple[ConsentLine, ...], *, has_claims: bool) -> tuple[str, Tone]:
    if not consents:
        return "names no consent (no reference photo of a person)", "good"
    words = {line.word for line in consents}
    if "withdrawn" in words:
        return "consent withdrawn", "bad"
    if "suspended" in words:
        return "consent suspended", "warn"
    if words == {"valid"}:
        return "consent still valid", "good"
    if has_claims:
        return "consent not in our records", "warn"
    return "consent status unknown", "warn"
