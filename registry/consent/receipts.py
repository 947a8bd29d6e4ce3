"""Consent receipts: what the registry recorded, signed by the registry, for the uploader to keep.

The fields follow the spirit of the Kantara Initiative Consent Receipt: who consented (the
PII principal, by the reference the uploader chose), to whom (the tenant, as controller),
under which notice (template id and the SHA-256 of its text), for which purposes (permitted
and prohibited uses, with the vocabulary version), when, for how long and where, and how to
withdraw. The receipt is a compact JWS (``typ: consent-receipt+jwt``) verifiable with the
registry's JWKS. It holds personal data, so it is stored sealed with the record and erased
with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["RECEIPT_TYP", "RECEIPT_VERSION", "ReceiptAsset", "receipt_claims"]

RECEIPT_TYP: Final = "consent-receipt+jwt"
RECEIPT_VERSION: Final = "registry-consent-receipt/1"


class ReceiptAsset(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    sha256: str


def receipt_claims(
    *,
    issuer: str,
    receipt_id: str,
    consent_id: str,
    tenant: str,
    issued_at: datetime,
    subject_ref: str,
    signer_role: str,
    assurance: str,
    signer_thumbprint: str,
    template_id: str,
    template_sha256: str,
    permitted_uses: Sequence[str],
    prohibited_uses: Sequence[str],
    uses_version: int,
    valid_from: datetime,
    valid_until: datetime,
    jurisdiction: str,
    signed_at: datetime,
    form_sha256: str,
    assets: Sequence[ReceiptAsset],
) -> dict[str, Any]:
    """The receipt's claims; the caller signs them with ``typ`` :data:`RECEIPT_TYP`."""
    return {
        "iss": issuer,
        "iat": int(issued_at.timestamp()),
        "jti": receipt_id,
        "version": RECEIPT_VERSION,
        "consent_id": consent_id,
        "consent_timestamp": _time(signed_at),
        "collection_method": "signed consent form (JWS) submitted through the registry API",
        "jurisdiction": jurisdiction,
        "pii_principal": {
            "subject_ref": subject_ref,
            "signer_role": signer_role,
            "assurance": assurance,
            "key_thumbprint": signer_thumbprint,
        },
        "pii_controller": {"tenant": tenant},
        "notice": {"template_id": template_id, "sha256": template_sha256},
        "purposes": {
            "vocabulary_version": uses_version,
            "permitted": list(permitted_uses),
            "prohibited": list(prohibited_uses),
        },
        "validity": {"from": _time(valid_from), "until": _time(valid_until)},
        "assets": [{"asset_id": a.asset_id, "sha256": a.sha256} for a in assets],
        "form_sha256": form_sha256,
        "withdrawal": {"endpoint": f"{issuer}/v1/consents/{consent_id}/withdraw"},
    }


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
