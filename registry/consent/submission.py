"""Submission: a signed consent form (and its photos) in, a consent record and its receipt out.

Photos are decoded and hashed before the transaction (``prepare_uploads``): decoding and
hashing (SHA-256, pHash, dHash, PDQ and its quality) cost milliseconds of CPU each. Inside
it, ``submit`` reads the form once, looks up the enrolled key and the template it names,
verifies the form against exactly those, matches the uploads to the assets it lists and
records it, its personal data sealed under a data key of its own. The registry signs a
receipt of what it recorded, for the uploader to keep.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from moderation.signals import pdq_hash
from registry.consent import repository
from registry.consent.crypto import text_sha256
from registry.consent.enrolment import enrolled_signer, template_ref
from registry.consent.errors import (
    AssetNotInFormError,
    AssetUploadDuplicateError,
    FormReplayedError,
    IdempotencyConflictError,
)
from registry.consent.forms import UnverifiedForm, VerifiedForm, read_form, verify_form
from registry.consent.receipts import RECEIPT_TYP, ReceiptAsset, receipt_claims
from registry.consent.records import AssetData, Personal, open_record, status_of
from registry.consent.uses import VERSION as USES_VERSION
from registry.consent.views import Submitted, SubmittedAsset
from registry.core.audit import AuditRecord
from verifier import imaging

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from keys import KeyRing
    from registry.consent.config import ConsentSettings
    from registry.consent.crypto import DataKey, SubjectIndex
    from registry.consent.records import DataKeys
    from registry.core.auth import Client

__all__ = ["PreparedAsset", "Upload", "prepare_uploads", "submit"]


class Upload(msgspec.Struct, kw_only=True, frozen=True):
    """An uploaded reference photo as received: its bytes and the media type it was sent as."""

    data: bytes
    media_type: str | None = None


class PreparedAsset(msgspec.Struct, kw_only=True, frozen=True):
    """An uploaded photo, decoded safely and hashed; the bytes themselves are not kept."""

    sha256: str
    phash: str
    dhash: str
    pdq: str
    pdq_quality: int
    media_type: str
    width: int
    height: int


class _Accepted(msgspec.Struct, kw_only=True, frozen=True):
    """A verified form about to be recorded, and the ids and hash its record is stored under."""

    verified: VerifiedForm
    signer_id: str | None
    consent_id: str
    asset_ids: list[str]
    form_sha256: str
    now: datetime


# Before the transaction.


async def prepare_uploads(
    uploads: Sequence[Upload], limits: imaging.ImageLimits
) -> list[PreparedAsset]:
    """Decode each upload within ``limits`` off the event loop and hash it; keep no pixels."""
    return [await asyncio.to_thread(_prepare, upload, limits) for upload in uploads]


def _prepare(upload: Upload, limits: imaging.ImageLimits) -> PreparedAsset:
    declared = upload.media_type
    # Generic types (application/octet-stream, say) tell nothing; only a claimed image
    # type is held against the bytes.
    if declared is not None and not declared.lower().startswith("image/"):
        declared = None
    decoded = imaging.decode(upload.data, limits, declared, hash_only=True)
    hashes = imaging.perceptual_hashes(decoded.image)
    pdq, pdq_quality = pdq_hash(decoded.image)
    return PreparedAsset(
        sha256=imaging.sha256_hex(upload.data),
        phash=hashes.phash,
        dhash=hashes.dhash,
        pdq=pdq,
        pdq_quality=pdq_quality,
        media_type=decoded.media_type,
        width=decoded.width,
        height=decoded.height,
    )


# In the transaction.


async def submit(
    conn: asyncpg.Connection,
    *,
    settings: ConsentSettings,
    keyring: KeyRing,
    keys: DataKeys,
    index: SubjectIndex,
    actor: Client,
    form: str,
    uploads: Sequence[PreparedAsset],
    idempotency_key: str | None,
) -> Submitted:
    """Verify a signed consent form (and its uploaded photos) and record it.

    An ``idempotency_key`` used before returns the record it made (``replayed``) when the form
    and photos are the same, and raises idempotency_conflict when they are not.
    """
    request_sha256 = _request_sha256(form, uploads)
    if idempotency_key is not None:
        earlier = await _earlier(conn, keys, actor.tenant, idempotency_key, request_sha256)
        if earlier is not None:
            return earlier
    now = datetime.now(UTC)
    verified, signer_id = await _verify(
        conn, read_form(form), settings=settings, keys=keys, tenant=actor.tenant, now=now
    )
    uploaded = _match_uploads(uploads, {asset.sha256 for asset in verified.form.assets})
    accepted = await _accept(conn, verified, signer_id, now)
    receipt = _receipt(keyring, settings.issuer, accepted, actor.tenant)
    data_key = await keys.new(conn)
    await _insert_record(
        conn,
        accepted,
        actor=actor,
        data_key=data_key,
        index=index,
        receipt=receipt,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
    )
    return Submitted(
        consent_id=accepted.consent_id,
        status="active",
        assets=await _insert_assets(conn, data_key, accepted, uploaded),
        receipt=receipt,
        replayed=False,
        events=(_submitted_event(accepted, uploaded=len(uploaded)),),
    )


def _request_sha256(form: str, uploads: Sequence[PreparedAsset]) -> str:
    parts = [form, *sorted(upload.sha256 for upload in uploads)]
    return text_sha256("\n".join(parts))


async def _earlier(
    conn: asyncpg.Connection,
    keys: DataKeys,
    tenant: str,
    idempotency_key: str,
    request_sha256: str,
) -> Submitted | None:
    """The record made under this key, replayed; None when the key is new.

    The key stays locked until the transaction ends, so a concurrent request under the same
    key waits for this one to commit (then finds its record) or roll back.
    """
    await repository.lock_idempotency_key(conn, tenant, idempotency_key)
    earlier = await repository.record_by_idempotency_key(conn, tenant, idempotency_key)
    if earlier is None:
        return None
    if earlier.request_sha256 != request_sha256:
        raise IdempotencyConflictError("this Idempotency-Key was used with a different request")
    personal, assets = await open_record(conn, keys, earlier)
    return Submitted(
        consent_id=earlier.consent_id,
        status=status_of(earlier, datetime.now(UTC)),
        assets=[
            SubmittedAsset(asset_id=a.asset_id, sha256=a.sha256, phash=a.phash) for a in assets
        ],
        receipt=personal.receipt if personal else None,
        replayed=True,
        events=(),
    )


async def _verify(
    conn: asyncpg.Connection,
    form: UnverifiedForm,
    *,
    settings: ConsentSettings,
    keys: DataKeys,
    tenant: str,
    now: datetime,
) -> tuple[VerifiedForm, str | None]:
    """The verified form, and the id of the enrolled signer whose key signed it (if one did).

    The enrolled key and the template are looked up by what the unverified form names; the
    lookups only read, and verification accepts nothing but what they found.
    """
    enrolled = await enrolled_signer(conn, keys, tenant, form.kid)
    signer = enrolled.signer if enrolled else None
    template = await template_ref(conn, form.template_id)
    verified = verify_form(
        form,
        resolve_enrolled=lambda kid: signer if signer and signer.kid == kid else None,
        anchors=settings.signer_anchors,
        templates=lambda tid: template if template and template.id == tid else None,
        max_validity=settings.max_validity,
        now=now,
    )
    return verified, enrolled.signer_id if enrolled and verified.enrolled else None


def _match_uploads(uploads: Sequence[PreparedAsset], listed: set[str]) -> dict[str, PreparedAsset]:
    """The uploads by SHA-256; each must be an asset the form lists, uploaded once."""
    matched: dict[str, PreparedAsset] = {}
    for upload in uploads:
        if upload.sha256 not in listed:
            raise AssetNotInFormError(
                f"an uploaded file (sha256 {upload.sha256}) is not listed in the signed form"
            )
        if upload.sha256 in matched:
            raise AssetUploadDuplicateError("the same file was uploaded twice")
        matched[upload.sha256] = upload
    return matched


async def _accept(
    conn: asyncpg.Connection, verified: VerifiedForm, signer_id: str | None, now: datetime
) -> _Accepted:
    """The form, given ids to be recorded under; form_replayed if it was recorded before."""
    form_sha256 = text_sha256(verified.token)
    if await repository.form_known(conn, form_sha256):
        raise FormReplayedError("this signed form was submitted before")
    return _Accepted(
        verified=verified,
        signer_id=signer_id,
        consent_id="cns_" + secrets.token_urlsafe(16),
        asset_ids=["ast_" + secrets.token_urlsafe(16) for _ in verified.form.assets],
        form_sha256=form_sha256,
        now=now,
    )


def _receipt(keyring: KeyRing, issuer: str, accepted: _Accepted, tenant: str) -> str:
    verified = accepted.verified
    signed = verified.form
    claims = receipt_claims(
        issuer=issuer,
        receipt_id="rcp_" + secrets.token_urlsafe(16),
        consent_id=accepted.consent_id,
        tenant=tenant,
        issued_at=accepted.now,
        subject_ref=signed.subject_ref,
        signer_role=signed.signer_role,
        assurance=verified.assurance,
        signer_thumbprint=verified.signer_thumbprint,
        template_id=signed.template.id,
        template_sha256=signed.template.sha256,
        permitted_uses=signed.permitted_uses,
        prohibited_uses=signed.prohibited_uses,
        uses_version=USES_VERSION,
        valid_from=signed.valid_from,
        valid_until=signed.valid_until,
        jurisdiction=signed.jurisdiction,
        signed_at=signed.signed_at,
        form_sha256=accepted.form_sha256,
        assets=[
            ReceiptAsset(asset_id=asset_id, sha256=asset.sha256)
            for asset_id, asset in zip(accepted.asset_ids, signed.assets, strict=True)
        ],
    )
    return keyring.sign_jws(claims, typ=RECEIPT_TYP)


async def _insert_record(
    conn: asyncpg.Connection,
    accepted: _Accepted,
    *,
    actor: Client,
    data_key: DataKey,
    index: SubjectIndex,
    receipt: str,
    idempotency_key: str | None,
    request_sha256: str,
) -> None:
    """Store the record, its personal data and receipt sealed under ``data_key``."""
    verified = accepted.verified
    signed = verified.form
    personal = Personal(
        subject_ref=signed.subject_ref,
        form=verified.token,
        signer_jwk=verified.signer_jwk,
        signer_thumbprint=verified.signer_thumbprint,
        receipt=receipt,
    )
    inserted = await repository.insert_record(
        conn,
        consent_id=accepted.consent_id,
        tenant=actor.tenant,
        created_by=actor.client_id,
        template_id=signed.template.id,
        template_sha256=signed.template.sha256,
        signer_role=signed.signer_role,
        assurance=verified.assurance,
        signer_id=accepted.signer_id,
        permitted_uses=signed.permitted_uses,
        prohibited_uses=signed.prohibited_uses,
        uses_version=USES_VERSION,
        valid_from=signed.valid_from,
        valid_until=signed.valid_until,
        jurisdiction=signed.jurisdiction,
        signed_at=signed.signed_at,
        form_sha256=accepted.form_sha256,
        subject_pseudonym="sub_" + secrets.token_urlsafe(16),
        subject_index=index.of(actor.tenant, signed.subject_ref),
        sealed=data_key.seal(personal, aad=accepted.consent_id),
        data_key_id=data_key.key_id,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        created_at=accepted.now,
    )
    if not inserted:  # the same form, committed by a concurrent request
        raise FormReplayedError("this signed form was submitted before")


async def _insert_assets(
    conn: asyncpg.Connection,
    data_key: DataKey,
    accepted: _Accepted,
    uploaded: dict[str, PreparedAsset],
) -> list[SubmittedAsset]:
    """Store the assets the form lists, in its order, with details of those uploaded."""
    assets: list[SubmittedAsset] = []
    listed = zip(accepted.asset_ids, accepted.verified.form.assets, strict=True)
    for position, (asset_id, asset) in enumerate(listed):
        photo = uploaded.get(asset.sha256)
        data = AssetData(
            sha256=asset.sha256,
            phash=photo.phash if photo else asset.phash,
            dhash=photo.dhash if photo else None,
            label=asset.label,
            pdq=photo.pdq if photo else asset.pdq,
            pdq_quality=photo.pdq_quality if photo else None,
        )
        await repository.insert_asset(
            conn,
            asset_id=asset_id,
            consent_id=accepted.consent_id,
            position=position,
            uploaded=photo is not None,
            media_type=photo.media_type if photo else None,
            width=photo.width if photo else None,
            height=photo.height if photo else None,
            sealed=data_key.seal(data, aad=asset_id),
        )
        assets.append(SubmittedAsset(asset_id=asset_id, sha256=data.sha256, phash=data.phash))
    return assets


def _submitted_event(accepted: _Accepted, *, uploaded: int) -> AuditRecord:
    verified = accepted.verified
    signed = verified.form
    return AuditRecord(
        action="consent.submitted",
        subject_type="consent",
        subject_id=accepted.consent_id,
        payload={
            "template_id": signed.template.id,
            "template_sha256": signed.template.sha256,
            "form_sha256": accepted.form_sha256,
            "assurance": verified.assurance,
            "signer_role": signed.signer_role,
            "asset_ids": accepted.asset_ids,
            "uploaded": uploaded,
            "permitted_uses": list(signed.permitted_uses),
            "prohibited_uses": list(signed.prohibited_uses),
            "valid_until": signed.valid_until.isoformat(),
        },
    )
