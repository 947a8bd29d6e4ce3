"""The values that leave the consent domain: what each operation returns.

Results of operations that change something carry ``events``, the audit records the shell
appends in the same transaction. The HTTP layer serves the views (``ConsentView``,
``TemplateView``, ...) as they are, so their fields are the API's.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec and Litestar read the annotations
from typing import Any, Literal, TypeAlias

import msgspec

from registry.core.audit import AuditRecord  # noqa: TC001 - msgspec reads the annotations

__all__ = [
    "Affected",
    "AssetView",
    "ConsentStatus",
    "ConsentView",
    "Erased",
    "Granted",
    "IssuedToken",
    "Resumed",
    "SignerEnrolled",
    "SignerView",
    "Submitted",
    "SubmittedAsset",
    "Suspended",
    "TemplateRefView",
    "TemplateRegistered",
    "TemplateView",
    "Withdrawn",
]

ConsentStatus: TypeAlias = Literal[
    "active", "pending", "expired", "suspended", "withdrawn", "erased"
]


# Enrolment.


class TemplateView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    title: str
    text: str
    sha256: str
    uses: list[str]
    created_at: datetime


class TemplateRegistered(msgspec.Struct, kw_only=True, frozen=True):
    template: TemplateView
    events: tuple[AuditRecord, ...]


class SignerEnrolled(msgspec.Struct, kw_only=True, frozen=True):
    signer_id: str
    kid: str
    role: str
    events: tuple[AuditRecord, ...]


# Submission.


class SubmittedAsset(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    sha256: str | None
    phash: str | None


class Submitted(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    assets: list[SubmittedAsset]
    receipt: str | None
    replayed: bool
    events: tuple[AuditRecord, ...]


# Records.


class AssetView(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    uploaded: bool
    sha256: str | None = None
    phash: str | None = None
    dhash: str | None = None
    label: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None


class SignerView(msgspec.Struct, kw_only=True, frozen=True):
    role: str
    assurance: str
    signer_id: str | None = None
    key_thumbprint: str | None = None


class TemplateRefView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    sha256: str


class ConsentView(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    tenant: str
    status: ConsentStatus
    template: TemplateRefView
    subject_ref: str | None
    signer: SignerView
    assets: list[AssetView]
    permitted_uses: list[str]
    prohibited_uses: list[str]
    uses_version: int
    valid_from: datetime
    valid_until: datetime
    jurisdiction: str
    signed_at: datetime
    created_at: datetime
    withdrawn_at: datetime | None
    erased_at: datetime | None
    grants: list[str]
    receipt: str | None
    suspended_at: datetime | None = None
    """When the running suspension began; None when the consent is not suspended."""


# Grants and tokens.


class Granted(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    client_id: str
    created: bool
    events: tuple[AuditRecord, ...]


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    jti: str
    expires_at: datetime
    events: tuple[AuditRecord, ...]


# Withdrawal and erasure.


class Affected(msgspec.Struct, kw_only=True, frozen=True):
    """What was produced with a consent's tokens, so a publisher can take it down."""

    tokens: list[str]
    outputs: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


class Withdrawn(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    withdrawn_at: datetime
    withdrawn_by: str
    revoked_tokens: list[str]
    affected: Affected
    events: tuple[AuditRecord, ...]


# Suspension.


class Suspended(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    suspended_at: datetime
    suspended_by: str
    suspended_tokens: list[str]
    """Tokens now SUSPENDED (2): valid again on resumption."""
    revoked_tokens: list[str]
    """Tokens of 1-bit status lists (issued before suspension existed), revoked for good."""
    events: tuple[AuditRecord, ...]


class Resumed(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    resumed_at: datetime
    status: ConsentStatus
    restored_tokens: list[str]
    """Tokens VALID (0) again."""
    events: tuple[AuditRecord, ...]


class Erased(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    erased_at: datetime
    withdrawal: Withdrawn | None
    signer_erased: bool
    events: tuple[AuditRecord, ...]
