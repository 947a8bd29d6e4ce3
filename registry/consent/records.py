"""Reading consent records: their status now, their sealed personal data, and views of them.

A live record's personal data (the subject reference, the form itself, the signer's key and
the receipt) and its assets' hashes are sealed under the record's own data key (see
``crypto``). Erasure deletes that key, so an erased record reads as bare ids and None.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import msgspec

from keys.errors import KeysError
from registry.consent import repository
from registry.consent.errors import (
    ConsentNotFoundError,
    DataUnavailableError,
    SubjectRefInvalidError,
)
from registry.consent.views import (
    AssetView,
    ConsentStatus,
    ConsentView,
    SignerView,
    TemplateRefView,
)

if TYPE_CHECKING:
    import asyncpg

    from registry.consent.crypto import DataKey, FieldCipher, SubjectIndex
    from registry.core.auth import Client

__all__ = [
    "MAX_LISTED",
    "MAX_REF",
    "AssetData",
    "DataKeys",
    "Personal",
    "check_ref",
    "find_consents",
    "get_consent",
    "open_record",
    "status_of",
]

MAX_LISTED: Final = 100
MAX_REF: Final = 256


class Personal(msgspec.Struct, kw_only=True, frozen=True):
    """The sealed part of a consent record."""

    subject_ref: str
    form: str
    signer_jwk: dict[str, str]
    signer_thumbprint: str
    receipt: str


class AssetData(msgspec.Struct, kw_only=True, frozen=True):
    """The sealed part of an asset.

    ``pdq`` is the asset's PDQ hash (hex); ``pdq_quality`` its quality, known only when the
    photo was uploaded and hashed here. Assets sealed before PDQ was kept have neither.
    """

    sha256: str
    phash: str | None = None
    dhash: str | None = None
    label: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None


class DataKeys:
    """The data keys of records and signers as stored: one row each, wrapped by the master key."""

    __slots__ = ("_cipher",)

    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    async def new(self, conn: asyncpg.Connection) -> DataKey:
        """A fresh data key, stored in the caller's transaction."""
        key, wrapped = self._cipher.new_key()
        await repository.insert_data_key(conn, key.key_id, wrapped)
        return key

    async def forget(self, conn: asyncpg.Connection, key_id: str) -> None:
        """Delete a data key in the caller's transaction: what it sealed is unreadable."""
        await repository.delete_data_key(conn, key_id)

    async def get(self, conn: asyncpg.Connection, key_id: str) -> DataKey:
        """A stored data key; data_unavailable when it is gone or does not unwrap."""
        wrapped = await repository.get_data_key(conn, key_id)
        if wrapped is None:
            raise DataUnavailableError("the data key of a live record is missing")
        try:
            return self._cipher.unwrap(key_id, wrapped)
        except KeysError:
            raise DataUnavailableError("a data key does not decrypt") from None


def check_ref(subject_ref: str) -> None:
    if not 0 < len(subject_ref) <= MAX_REF:
        raise SubjectRefInvalidError(f"subject_ref must be 1-{MAX_REF} characters")


def status_of(record: repository.RecordRow, now: datetime) -> ConsentStatus:
    """The record's status at ``now``: its stored state, the end of its validity window, a
    running suspension, then the start of its window."""
    if record.status == "erased":
        return "erased"
    if record.status == "withdrawn":
        return "withdrawn"
    if now >= record.valid_until:
        return "expired"
    if record.suspended_at is not None:
        return "suspended"
    if now < record.valid_from:
        return "pending"
    return "active"


async def get_consent(
    conn: asyncpg.Connection, keys: DataKeys, *, actor: Client, consent_id: str
) -> ConsentView:
    record = await repository.get_record(conn, consent_id)
    if record is None or record.tenant != actor.tenant:
        raise ConsentNotFoundError("no consent with this id for this tenant")
    return await _view(conn, keys, record)


async def find_consents(
    conn: asyncpg.Connection,
    keys: DataKeys,
    index: SubjectIndex,
    *,
    actor: Client,
    subject_ref: str,
) -> list[ConsentView]:
    """The tenant's first ``MAX_LISTED`` records for the subject, found by its blind index."""
    check_ref(subject_ref)
    records = await repository.records_by_subject(
        conn, actor.tenant, index.of(actor.tenant, subject_ref), limit=MAX_LISTED
    )
    return [await _view(conn, keys, record) for record in records]


async def tenant_consents(
    conn: asyncpg.Connection, keys: DataKeys, tenant: str
) -> list[ConsentView]:
    """Every record of ``tenant`` as the tenant reads it (``get_consent``), oldest first."""
    return [await _view(conn, keys, r) for r in await repository.records_of_tenant(conn, tenant)]


async def open_record(
    conn: asyncpg.Connection, keys: DataKeys, record: repository.RecordRow
) -> tuple[Personal | None, list[AssetView]]:
    """The record's personal data and its assets; None and bare ids once erased."""
    rows = await repository.assets_of(conn, record.consent_id)
    if record.sealed is None or record.data_key_id is None:
        return None, [AssetView(asset_id=r.asset_id, uploaded=r.uploaded) for r in rows]
    key = await keys.get(conn, record.data_key_id)
    personal = msgspec.convert(key.open(record.sealed, aad=record.consent_id), Personal)
    return personal, [_asset_view(key, row) for row in rows]


def _asset_view(key: DataKey, row: repository.AssetRow) -> AssetView:
    if row.sealed is None:
        raise DataUnavailableError("an asset of a live record has no sealed data")
    data = msgspec.convert(key.open(row.sealed, aad=row.asset_id), AssetData)
    return AssetView(
        asset_id=row.asset_id,
        uploaded=row.uploaded,
        sha256=data.sha256,
        phash=data.phash,
        dhash=data.dhash,
        label=data.label,
        media_type=row.media_type,
        width=row.width,
        height=row.height,
    )


async def _view(
    conn: asyncpg.Connection, keys: DataKeys, record: repository.RecordRow
) -> ConsentView:
    personal, assets = await open_record(conn, keys, record)
    return ConsentView(
        consent_id=record.consent_id,
        tenant=record.tenant,
        status=status_of(record, datetime.now(UTC)),
        template=TemplateRefView(id=record.template_id, sha256=record.template_sha256),
        subject_ref=personal.subject_ref if personal else None,
        signer=SignerView(
            role=record.signer_role,
            assurance=record.assurance,
            signer_id=record.signer_id,
            key_thumbprint=personal.signer_thumbprint if personal else None,
        ),
        assets=assets,
        permitted_uses=record.permitted_uses,
        prohibited_uses=record.prohibited_uses,
        uses_version=record.uses_version,
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        jurisdiction=record.jurisdiction,
        signed_at=record.signed_at,
        created_at=record.created_at,
        withdrawn_at=record.withdrawn_at,
        erased_at=record.erased_at,
        grants=await repository.grantees(conn, record.consent_id),
        receipt=personal.receipt if personal else None,
        suspended_at=record.suspended_at,
    )
