"""Consent records, their assets and grants, signers, templates, data keys and secrets.

One function per statement, rows as frozen values. Functions take the caller's connection
(and so run in the caller's transaction) and never decide anything: the operation modules
(``submission``, ``issuance``, ...) do. Personal data arrives here already sealed.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeVar

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "AssetRow",
    "RecordRow",
    "SignerRow",
    "TemplateRow",
    "assets_of",
    "consent_statuses",
    "delete_data_key",
    "erase_signer",
    "form_known",
    "get_data_key",
    "get_record",
    "get_template",
    "grantees",
    "has_grant",
    "insert_asset",
    "insert_data_key",
    "insert_grant",
    "insert_record",
    "insert_signer",
    "insert_template",
    "lock_idempotency_key",
    "mark_erased",
    "mark_resumed",
    "mark_suspended",
    "mark_withdrawn",
    "record_by_idempotency_key",
    "records_by_subject",
    "records_of_tenant",
    "secret",
    "signer_by_id",
    "signer_by_kid",
    "signer_in_use",
]

T = TypeVar("T")


class TemplateRow(msgspec.Struct, kw_only=True, frozen=True):
    template_id: str
    title: str
    body: str
    sha256: str
    uses: list[str]
    created_at: datetime


class SignerRow(msgspec.Struct, kw_only=True, frozen=True):
    signer_id: str
    tenant: str
    kid: str | None
    role: str
    sealed: bytes | None
    data_key_id: str | None
    erased_at: datetime | None


class RecordRow(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    tenant: str
    created_by: str
    template_id: str
    template_sha256: str
    signer_role: str
    assurance: str
    signer_id: str | None
    permitted_uses: list[str]
    prohibited_uses: list[str]
    uses_version: int
    valid_from: datetime
    valid_until: datetime
    jurisdiction: str
    signed_at: datetime
    form_sha256: str
    subject_pseudonym: str
    sealed: bytes | None
    data_key_id: str | None
    status: str
    request_sha256: str
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    erased_at: datetime | None
    suspended_at: datetime | None
    suspended_by: str | None


class AssetRow(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    consent_id: str
    position: int
    uploaded: bool
    media_type: str | None
    width: int | None
    height: int | None
    sealed: bytes | None


def _row(row: asyncpg.Record | None, type_: type[T]) -> T | None:
    return None if row is None else msgspec.convert(dict(row), type_)


def _rows(rows: Sequence[asyncpg.Record], type_: type[T]) -> list[T]:
    return [msgspec.convert(dict(row), type_) for row in rows]


# Templates.


async def insert_template(
    conn: asyncpg.Connection,
    *,
    template_id: str,
    title: str,
    body: str,
    sha256: str,
    uses: Sequence[str],
    created_by: str,
) -> TemplateRow | None:
    """The new row, or None when the id is taken."""
    row = await conn.fetchrow(
        "INSERT INTO consent_templates (template_id, title, body, sha256, uses, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (template_id) DO NOTHING"
        " RETURNING template_id, title, body, sha256, uses, created_at",
        template_id,
        title,
        body,
        sha256,
        list(uses),
        created_by,
    )
    return _row(row, TemplateRow)


async def get_template(conn: asyncpg.Connection, template_id: str) -> TemplateRow | None:
    row = await conn.fetchrow(
        "SELECT template_id, title, body, sha256, uses, created_at FROM consent_templates"
        " WHERE template_id = $1",
        template_id,
    )
    return _row(row, TemplateRow)


# Secrets and data keys.


async def secret(conn: asyncpg.Connection, name: str, wrapped_if_new: bytes) -> bytes:
    """The stored secret ``name``; ``wrapped_if_new`` is stored when there is none yet."""
    await conn.execute(
        "INSERT INTO consent_secrets (name, wrapped) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        wrapped_if_new,
    )
    stored: bytes = await conn.fetchval("SELECT wrapped FROM consent_secrets WHERE name = $1", name)
    return stored


async def insert_data_key(conn: asyncpg.Connection, key_id: str, wrapped: bytes) -> None:
    await conn.execute(
        "INSERT INTO consent_data_keys (key_id, wrapped_key) VALUES ($1, $2)", key_id, wrapped
    )


async def get_data_key(conn: asyncpg.Connection, key_id: str) -> bytes | None:
    wrapped: bytes | None = await conn.fetchval(
        "SELECT wrapped_key FROM consent_data_keys WHERE key_id = $1", key_id
    )
    return wrapped


async def delete_data_key(conn: asyncpg.Connection, key_id: str) -> None:
    await conn.execute("DELETE FROM consent_data_keys WHERE key_id = $1", key_id)


# Signers.

_SIGNER = "SELECT signer_id, tenant, kid, role, sealed, data_key_id, erased_at FROM consent_signers"


async def insert_signer(
    conn: asyncpg.Connection,
    *,
    signer_id: str,
    tenant: str,
    kid: str,
    role: str,
    sealed: bytes,
    data_key_id: str,
    created_by: str,
) -> bool:
    """False when this tenant already enrolled the key."""
    inserted = await conn.fetchval(
        "INSERT INTO consent_signers (signer_id, tenant, kid, role, sealed, data_key_id,"
        " created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant, kid) DO NOTHING RETURNING signer_id",
        signer_id,
        tenant,
        kid,
        role,
        sealed,
        data_key_id,
        created_by,
    )
    return inserted is not None


async def signer_by_kid(conn: asyncpg.Connection, tenant: str, kid: str) -> SignerRow | None:
    row = await conn.fetchrow(
        _SIGNER + " WHERE tenant = $1 AND kid = $2 AND erased_at IS NULL", tenant, kid
    )
    return _row(row, SignerRow)


async def signer_by_id(conn: asyncpg.Connection, signer_id: str) -> SignerRow | None:
    row = await conn.fetchrow(_SIGNER + " WHERE signer_id = $1 FOR UPDATE", signer_id)
    return _row(row, SignerRow)


async def signer_in_use(conn: asyncpg.Connection, signer_id: str, *, besides: str) -> bool:
    """Whether a record other than ``besides`` still holds personal data signed by this key."""
    found = await conn.fetchval(
        "SELECT 1 FROM consent_records WHERE signer_id = $1 AND consent_id <> $2"
        " AND status <> 'erased' LIMIT 1",
        signer_id,
        besides,
    )
    return found is not None


async def erase_signer(conn: asyncpg.Connection, signer_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE consent_signers SET sealed = NULL, kid = NULL, erased_at = $2 WHERE signer_id = $1",
        signer_id,
        at,
    )


# Consent records and assets.

_RECORD = (
    "SELECT consent_id, tenant, created_by, template_id, template_sha256, signer_role,"
    " assurance, signer_id, permitted_uses, prohibited_uses, uses_version, valid_from,"
    " valid_until, jurisdiction, signed_at, form_sha256, subject_pseudonym, sealed,"
    " data_key_id, status, request_sha256, created_at, withdrawn_at, withdrawn_by, erased_at,"
    " suspended_at, suspended_by FROM consent_records"
)
Lock = Literal["share", "update"] | None


async def lock_idempotency_key(conn: asyncpg.Connection, tenant: str, key: str) -> None:
    """Serialise submissions that share a key until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", f"consent:{tenant}:{key}"
    )


async def record_by_idempotency_key(
    conn: asyncpg.Connection, tenant: str, key: str
) -> RecordRow | None:
    row = await conn.fetchrow(_RECORD + " WHERE tenant = $1 AND idempotency_key = $2", tenant, key)
    return _row(row, RecordRow)


async def form_known(conn: asyncpg.Connection, form_sha256: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM consent_records WHERE form_sha256 = $1", form_sha256)
    return found is not None


async def insert_record(
    conn: asyncpg.Connection,
    *,
    consent_id: str,
    tenant: str,
    created_by: str,
    template_id: str,
    template_sha256: str,
    signer_role: str,
    assurance: str,
    signer_id: str | None,
    permitted_uses: Sequence[str],
    prohibited_uses: Sequence[str],
    uses_version: int,
    valid_from: datetime,
    valid_until: datetime,
    jurisdiction: str,
    signed_at: datetime,
    form_sha256: str,
    subject_pseudonym: str,
    subject_index: bytes,
    sealed: bytes,
    data_key_id: str,
    idempotency_key: str | None,
    request_sha256: str,
    created_at: datetime,
) -> bool:
    """False when the form is already recorded (a concurrent submission of the same form)."""
    inserted = await conn.fetchval(
        "INSERT INTO consent_records (consent_id, tenant, created_by, template_id,"
        " template_sha256, signer_role, assurance, signer_id, permitted_uses, prohibited_uses,"
        " uses_version, valid_from, valid_until, jurisdiction, signed_at, form_sha256,"
        " subject_pseudonym, subject_index, sealed, data_key_id, idempotency_key,"
        " request_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
        " $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
        " ON CONFLICT (form_sha256) DO NOTHING RETURNING consent_id",
        consent_id,
        tenant,
        created_by,
        template_id,
        template_sha256,
        signer_role,
        assurance,
        signer_id,
        list(permitted_uses),
        list(prohibited_uses),
        uses_version,
        valid_from,
        valid_until,
        jurisdiction,
        signed_at,
        form_sha256,
        subject_pseudonym,
        subject_index,
        sealed,
        data_key_id,
        idempotency_key,
        request_sha256,
        created_at,
    )
    return inserted is not None


async def insert_asset(
    conn: asyncpg.Connection,
    *,
    asset_id: str,
    consent_id: str,
    position: int,
    uploaded: bool,
    media_type: str | None,
    width: int | None,
    height: int | None,
    sealed: bytes,
) -> None:
    await conn.execute(
        "INSERT INTO consent_assets (asset_id, consent_id, position, uploaded, media_type,"
        " width, height, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        asset_id,
        consent_id,
        position,
        uploaded,
        media_type,
        width,
        height,
        sealed,
    )


async def get_record(
    conn: asyncpg.Connection, consent_id: str, *, lock: Lock = None
) -> RecordRow | None:
    # FOR SHARE (token issuance) and FOR UPDATE (withdrawal) conflict, so a token is never
    # issued from a consent whose withdrawal is committing: one waits for the other.
    suffix = {None: "", "share": " FOR SHARE", "update": " FOR UPDATE"}[lock]
    row = await conn.fetchrow(_RECORD + " WHERE consent_id = $1" + suffix, consent_id)
    return _row(row, RecordRow)


async def records_by_subject(
    conn: asyncpg.Connection, tenant: str, subject_index: bytes, *, limit: int
) -> list[RecordRow]:
    rows = await conn.fetch(
        _RECORD + " WHERE tenant = $1 AND subject_index = $2 ORDER BY created_at, consent_id"
        " LIMIT $3",
        tenant,
        subject_index,
        limit,
    )
    return _rows(rows, RecordRow)


async def records_of_tenant(conn: asyncpg.Connection, tenant: str) -> list[RecordRow]:
    """Every record of ``tenant``, oldest first (a tenant's export)."""
    rows = await conn.fetch(_RECORD + " WHERE tenant = $1 ORDER BY created_at, consent_id", tenant)
    return _rows(rows, RecordRow)


async def assets_of(conn: asyncpg.Connection, consent_id: str) -> list[AssetRow]:
    rows = await conn.fetch(
        "SELECT asset_id, consent_id, position, uploaded, media_type, width, height, sealed"
        " FROM consent_assets WHERE consent_id = $1 ORDER BY position",
        consent_id,
    )
    return _rows(rows, AssetRow)


async def mark_withdrawn(
    conn: asyncpg.Connection,
    consent_id: str,
    *,
    at: datetime,
    by: str,
    withdrawal_sha256: str | None,
) -> None:
    # Withdrawal ends a suspension: the record is no longer active (its CHECK).
    await conn.execute(
        "UPDATE consent_records SET status = 'withdrawn', withdrawn_at = $2, withdrawn_by = $3,"
        " withdrawal_sha256 = $4, suspended_at = NULL, suspended_by = NULL WHERE consent_id = $1",
        consent_id,
        at,
        by,
        withdrawal_sha256,
    )


async def mark_suspended(
    conn: asyncpg.Connection, consent_id: str, *, at: datetime, by: str
) -> None:
    await conn.execute(
        "UPDATE consent_records SET suspended_at = $2, suspended_by = $3 WHERE consent_id = $1",
        consent_id,
        at,
        by,
    )


async def mark_resumed(conn: asyncpg.Connection, consent_id: str) -> None:
    await conn.execute(
        "UPDATE consent_records SET suspended_at = NULL, suspended_by = NULL WHERE consent_id = $1",
        consent_id,
    )


async def mark_erased(conn: asyncpg.Connection, consent_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE consent_records SET status = 'erased', erased_at = $2, sealed = NULL,"
        " subject_index = NULL, idempotency_key = NULL WHERE consent_id = $1",
        consent_id,
        at,
    )
    await conn.execute(
        "UPDATE consent_assets SET sealed = NULL, media_type = NULL, width = NULL, height = NULL"
        " WHERE consent_id = $1",
        consent_id,
    )


async def consent_statuses(conn: asyncpg.Connection, consent_ids: Sequence[str]) -> dict[str, str]:
    """The status now (active, withdrawn, erased) of each of these records that exists."""
    if not consent_ids:
        return {}
    rows = await conn.fetch(
        "SELECT consent_id, status FROM consent_records WHERE consent_id = ANY($1::text[])",
        list(set(consent_ids)),
    )
    return {row["consent_id"]: row["status"] for row in rows}


async def signer_role(conn: asyncpg.Connection, consent_id: str) -> str | None:
    """Who signed the record's form (subject, guardian, agent, rights_holder)."""
    role: str | None = await conn.fetchval(
        "SELECT signer_role FROM consent_records WHERE consent_id = $1", consent_id
    )
    return role


# Grants.


async def insert_grant(
    conn: asyncpg.Connection, consent_id: str, client_id: str, granted_by: str
) -> bool:
    """False when the client already holds a grant for this consent."""
    inserted = await conn.fetchval(
        "INSERT INTO consent_grants (consent_id, client_id, granted_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (consent_id, client_id) DO NOTHING RETURNING client_id",
        consent_id,
        client_id,
        granted_by,
    )
    return inserted is not None


async def has_grant(conn: asyncpg.Connection, consent_id: str, client_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM consent_grants WHERE consent_id = $1 AND client_id = $2",
        consent_id,
        client_id,
    )
    return found is not None


async def grantees(conn: asyncpg.Connection, consent_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT client_id FROM consent_grants WHERE consent_id = $1 ORDER BY created_at, client_id",
        consent_id,
    )
    return [r["client_id"] for r in rows]
