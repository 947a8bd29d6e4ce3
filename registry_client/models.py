"""The service's JSON as typed values: what callers send and what the service answers.

Written from the service's handlers (``registry/http``), not imported from them: the client
installs without the service. Answers are decoded leniently: a member the service adds later
is ignored, so an older client keeps working against a newer service. Only the members a
caller acts on are typed narrowly (``safety_status``); codes and states are plain strings.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = [
    "JWKS",
    "Appeal",
    "Consent",
    "ConsentAsset",
    "ConsentSigner",
    "ConsentSubmitted",
    "Erasure",
    "GateDecision",
    "Grant",
    "HashLookup",
    "HashMatch",
    "HashQuery",
    "ImageCheck",
    "IssuedToken",
    "OutputConsent",
    "OutputRecord",
    "ProvenanceLookup",
    "ProvenanceLookupMatch",
    "ProvenanceReport",
    "RegistryMatch",
    "Resumption",
    "SafetyStatus",
    "SignedOutput",
    "SignerEnrolled",
    "SignerRole",
    "SourceAsset",
    "SubmittedAsset",
    "Suspension",
    "Template",
    "TemplateRef",
    "TokenCheck",
    "Withdrawal",
]

SignerRole: TypeAlias = Literal["subject", "guardian", "agent", "rights_holder"]
SafetyStatus: TypeAlias = Literal["allowed", "review", "blocked"]


# What callers send.


class SourceAsset(msgspec.Struct, kw_only=True, frozen=True):
    """A source an image was (or will be) made from: a reference photo and its token.

    ``type`` is ``photo`` (a real person), ``artwork`` or ``synthetic``; the policy treats a
    type it does not name as a real person's photo.
    """

    asset_id: str
    """The registry's asset id, from the consent's ``assets``."""
    consent_token: str | None = None
    type: str = "photo"
    sha256: str | None = None
    """SHA-256 of the source file as the caller holds it; the service checks it against the
    token's binding."""


class HashQuery(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One hash to look up: ``signal`` ``pdq`` (64 hex digits) or ``phash`` (16)."""

    signal: Literal["pdq", "phash"]
    hash: str
    max_distance: int | None = None
    """Bits; at most (and by default) the policy's review distance for the signal."""


# Templates, signers and consents.


class Template(msgspec.Struct, kw_only=True, frozen=True):
    """A consent text: forms name its ``id`` and ``sha256``."""

    id: str
    title: str
    text: str
    sha256: str
    uses: list[str]
    created_at: datetime


class SignerEnrolled(msgspec.Struct, kw_only=True, frozen=True):
    signer_id: str
    kid: str
    """The key's RFC 7638 thumbprint: the ``kid`` its forms name."""
    role: str


class SubmittedAsset(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    sha256: str | None = None
    phash: str | None = None


class ConsentSubmitted(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    assets: list[SubmittedAsset]
    receipt: str | None
    """The registry's signed receipt (compact JWS, ``typ: consent-receipt+jwt``)."""


class TemplateRef(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    sha256: str


class ConsentSigner(msgspec.Struct, kw_only=True, frozen=True):
    role: str
    assurance: str
    """``enrolled``, ``x509`` or ``self_asserted``."""
    signer_id: str | None = None
    key_thumbprint: str | None = None


class ConsentAsset(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    uploaded: bool
    sha256: str | None = None
    phash: str | None = None
    label: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None


class Consent(msgspec.Struct, kw_only=True, frozen=True):
    """A consent record as its own tenant sees it."""

    consent_id: str
    status: str
    """``active``, ``pending``, ``expired``, ``suspended``, ``withdrawn`` or ``erased``."""
    template: TemplateRef
    signer: ConsentSigner
    assets: list[ConsentAsset]
    permitted_uses: list[str]
    prohibited_uses: list[str]
    valid_from: datetime
    valid_until: datetime
    jurisdiction: str
    grants: list[str]
    """Generator clients that may obtain tokens for it."""
    tenant: str | None = None
    subject_ref: str | None = None
    signed_at: datetime | None = None
    created_at: datetime | None = None
    withdrawn_at: datetime | None = None
    erased_at: datetime | None = None
    receipt: str | None = None
    suspended_at: datetime | None = None
    """When the running suspension began; None when the consent is not suspended."""


class Grant(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    client_id: str
    created: bool = True
    """False when the generator already had the grant (granting twice changes nothing)."""


# Tokens.


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    """The consent token: a JWT (``typ: consent+jwt``) to attach to the photo it binds."""
    expires_at: datetime
    jti: str


class TokenCheck(msgspec.Struct, kw_only=True, frozen=True):
    """The service's online verdict on a token, live revocation included."""

    valid: bool
    reasons: list[str]
    """Stable codes of every failed check: ``signature``, ``expired``, ``revoked``, ..."""
    claims: dict[str, Any] | None = None


# The gate.


class GateDecision(msgspec.Struct, kw_only=True, frozen=True):
    """A stored decision of the publish gate or the prompt check."""

    generation_id: str
    decision_id: str
    safety_status: SafetyStatus
    reasons: list[str]
    """Stable reason codes, most severe first (docs/publishers.md explains each)."""
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    review_ticket: str | None = None
    policy_version: str = ""
    """SHA-256 of the policy file that decided."""
    replayed: bool = False
    """The service answered with the decision it had stored for this ``generation_id``
    (header ``Idempotent-Replayed``): a retry, not a new decision."""


class Appeal(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    status: str
    appealed_status: str
    created_at: datetime
    deadline: datetime
    """When a reviewer should have decided it."""


ReportCategory: TypeAlias = Literal[
    "nonconsensual", "sexual", "minor", "violence", "hate", "self_harm", "other"
]


class Report(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    category: str
    status: str
    created_at: datetime
    created: bool
    """False when this decision's report was open already: this is that report."""
    deadline: datetime
    """When a reviewer should have decided it."""


# Provenance.


class SignedOutput(msgspec.Struct, kw_only=True, frozen=True):
    """A generated image with its C2PA manifest embedded, as the service signed it."""

    output_id: str
    media_type: str
    data: bytes
    """The signed image: publish these bytes."""
    assertion: str
    """The detached provenance assertion (compact JWS, ``typ: provenance+jwt``); publish it
    next to the image, so a copy whose metadata was stripped can still be checked."""


class OutputConsent(msgspec.Struct, kw_only=True, frozen=True):
    jti: str
    status_list_uri: str
    status_idx: int
    status: str
    """Now: ``valid``, ``revoked`` or ``suspended``."""


class OutputRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One of the registry's signed outputs, as anyone may see it."""

    output_id: str
    generation_id: str
    model: str
    media_type: str
    width: int
    height: int
    sha256: str
    phash: str
    decision_id: str | None
    signed_at: datetime
    consents: list[OutputConsent]
    assertion: str


class RegistryMatch(msgspec.Struct, kw_only=True, frozen=True):
    match: str
    """``sha256`` (these exact bytes) or ``perceptual`` (close pixels: stripped, re-encoded)."""
    distance: int
    output: OutputRecord


class ImageCheck(msgspec.Struct, kw_only=True, frozen=True):
    media_type: str
    decoded: bool
    width: int | None = None
    height: int | None = None
    problem: str | None = None
    detail: str | None = None


class ProvenanceReport(msgspec.Struct, kw_only=True, frozen=True):
    """The C2PA verdict on an image, and the registry's record when it is one of its outputs."""

    state: str
    """``trusted``, ``valid_untrusted``, ``invalid``, ``absent``, ``remote_manifest`` or
    ``unsupported``."""
    image: ImageCheck
    registry: RegistryMatch | None = None
    failure_codes: list[str] = msgspec.field(default_factory=list)
    success_codes: list[str] = msgspec.field(default_factory=list)
    manifest_label: str | None = None
    signer: dict[str, Any] | None = None
    signing_time: str | None = None
    ai_generated: bool = False
    digital_source_type: str | None = None
    generation_id: str | None = None
    consents: list[dict[str, Any]] = msgspec.field(default_factory=list)
    decision: dict[str, Any] | None = None
    detail: str | None = None


class ProvenanceLookupMatch(msgspec.Struct, kw_only=True, frozen=True):
    distance: int
    output: OutputRecord


class ProvenanceLookup(msgspec.Struct, kw_only=True, frozen=True):
    """Signed outputs that look like an image (perceptual hash), nearest first."""

    sha256: str
    phash: str
    max_distance: int
    matches: list[ProvenanceLookupMatch]


# Hash lists.


class HashMatch(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    signal: str
    distance: int
    label: str
    action: str
    """What the policy does with an image this close: ``allow``, ``review`` or ``block``."""
    source: str | None = None
    reviewed: bool = False
    crop: str | None = None


class HashLookup(msgspec.Struct, kw_only=True, frozen=True):
    matches: list[HashMatch]
    """The closest entry of each matching list, nearest first."""


# When consent ends.


class Withdrawal(msgspec.Struct, kw_only=True, frozen=True):
    """A withdrawn consent, and what was made with it (to take down)."""

    consent_id: str
    status: str
    withdrawn_at: datetime
    withdrawn_by: str
    revoked_tokens: list[str]
    tokens: list[str]
    outputs: list[dict[str, Any]]
    """Signed outputs made with the consent's tokens (each has an ``output_id``)."""
    decisions: list[dict[str, Any]]
    """Gate decisions that relied on those tokens."""


class Suspension(msgspec.Struct, kw_only=True, frozen=True):
    """A suspended consent: its tokens fail with ``suspended`` until it is resumed."""

    consent_id: str
    status: str
    suspended_at: datetime
    suspended_by: str
    suspended_tokens: list[str]
    """Tokens now suspended (status 2), valid again on resumption."""
    revoked_tokens: list[str]
    """Tokens of 1-bit status lists (issued before suspension existed), revoked for good."""


class Resumption(msgspec.Struct, kw_only=True, frozen=True):
    """A consent whose suspension ended."""

    consent_id: str
    status: str
    resumed_at: datetime
    restored_tokens: list[str]
    """Tokens valid again."""


class Erasure(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    erased_at: datetime
    signer_erased: bool
    withdrawal: Withdrawal | None = None
    """The withdrawal erasure made first, when the consent was still active."""


# Keys.


class JWKS(msgspec.Struct, kw_only=True, frozen=True):
    """The registry's public keys (``/.well-known/jwks.json``), as JWK dictionaries."""

    keys: list[dict[str, Any]]
