"""Signed outputs in PostgreSQL: the rows behind /v1/provenance/{sign,verify,lookup}.

owns: signed_outputs, signed_output_consents.

A consent token's current status is the consent domain's (``issued_tokens``): the service
asks for it at query time through ``registry.provenance.TokenChecker`` (the consent service,
a sibling this domain may not import), so this domain never keeps a copy that could go
stale. ``status_name`` spells such a status out.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import asyncpg
import msgspec

from registry.provenance.errors import WatermarkKeyTaken

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AffectedOutput",
    "ConsentUse",
    "IssuedTokenStatus",
    "NewOutput",
    "OutputRow",
    "consents_of",
    "generation_signed",
    "insert_output",
    "output_by_watermark",
    "outputs_by_ids",
    "outputs_by_sha256",
    "outputs_for_consent",
    "outputs_of_tenant",
    "outputs_signed_with",
    "phash_from_db",
    "phash_to_db",
    "phashes_since",
    "status_name",
    "watermark_key_taken",
]

# The status of a token's issued_tokens row, read now (unknown: no row, or a value not defined).
IssuedTokenStatus: TypeAlias = Literal["valid", "revoked", "suspended", "unknown"]
_STATUS_NAMES: dict[int, IssuedTokenStatus] = {0: "valid", 1: "revoked", 2: "suspended"}
_MASK64 = (1 << 64) - 1
_WATERMARK_KEY_INDEX = "signed_outputs_watermark_key"
_OUTPUT_COLUMNS = (
    "id, output_id, tenant, client_id, generation_id, model, media_type, width, height,"
    " sha256, phash, decision_id, assertion, created_at, watermark_key"
)


class ConsentUse(msgspec.Struct, kw_only=True, frozen=True):
    """A consent token an output used, with the token's status now."""

    jti: str
    consent_id: str
    status_list_uri: str
    status_idx: int
    status: IssuedTokenStatus = "unknown"


class NewOutput(msgspec.Struct, kw_only=True, frozen=True):
    output_id: str
    tenant: str
    client_id: str
    generation_id: str
    model: str
    media_type: str
    width: int
    height: int
    sha256: str
    phash: str
    decision_id: str | None
    assertion: str
    consents: tuple[ConsentUse, ...]
    watermark_key: str | None = None


class OutputRow(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    output_id: str
    tenant: str
    client_id: str
    generation_id: str
    model: str
    media_type: str
    width: int
    height: int
    sha256: str
    phash: str
    decision_id: str | None
    assertion: str
    created_at: datetime
    watermark_key: str | None = None


def phash_to_db(phash_hex: str) -> int:
    """16 hex digits as the signed bigint with the same 64 bits."""
    value = int(phash_hex, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_from_db(value: int) -> str:
    return f"{value & _MASK64:016x}"


def _output(row: asyncpg.Record) -> OutputRow:
    values = dict(row)
    values["phash"] = phash_from_db(values["phash"])
    return msgspec.convert(values, OutputRow)


async def generation_signed(conn: asyncpg.Connection, client_id: str, generation_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM signed_outputs WHERE client_id = $1 AND generation_id = $2",
        client_id,
        generation_id,
    )
    return found is not None


async def insert_output(conn: asyncpg.Connection, new: NewOutput) -> int | None:
    """The new row's id; None when this client already signed this generation.

    Raises watermark_key_taken when another output took its watermark key first.
    """
    try:
        row_id = await _insert_output_row(conn, new)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _WATERMARK_KEY_INDEX:
            raise WatermarkKeyTaken(
                "another output took this output's watermark key at the same moment; "
                "nothing was signed, try again"
            ) from None
        raise
    if row_id is None:
        return None
    if new.consents:
        await conn.executemany(
            "INSERT INTO signed_output_consents (output_id, position, jti, consent_id,"
            " status_list_uri, status_idx) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (new.output_id, position, c.jti, c.consent_id, c.status_list_uri, c.status_idx)
                for position, c in enumerate(new.consents)
            ],
        )
    return row_id


async def _insert_output_row(conn: asyncpg.Connection, new: NewOutput) -> int | None:
    row_id: int | None = await conn.fetchval(
        "INSERT INTO signed_outputs (output_id, tenant, client_id, generation_id, model,"
        " media_type, width, height, sha256, phash, decision_id, assertion, watermark_key)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (client_id, generation_id) DO NOTHING RETURNING id",
        new.output_id,
        new.tenant,
        new.client_id,
        new.generation_id,
        new.model,
        new.media_type,
        new.width,
        new.height,
        new.sha256,
        phash_to_db(new.phash),
        new.decision_id,
        new.assertion,
        new.watermark_key,
    )
    return row_id


async def outputs_by_sha256(conn: asyncpg.Connection, sha256: str) -> list[OutputRow]:
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE sha256 = $1 ORDER BY id",  # noqa: S608 - constant columns
        sha256,
    )
    return [_output(row) for row in rows]


async def output_by_watermark(conn: asyncpg.Connection, key: str) -> OutputRow | None:
    """The output whose pixels carry this watermark key (unique), if any."""
    row = await conn.fetchrow(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE watermark_key = $1",  # noqa: S608 - constant columns
        key,
    )
    return _output(row) if row is not None else None


async def watermark_key_taken(conn: asyncpg.Connection, key: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM signed_outputs WHERE watermark_key = $1", key)
    return found is not None


async def outputs_by_ids(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, OutputRow]:
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE id = ANY($1::bigint[])",  # noqa: S608 - constant columns
        list(ids),
    )
    return {row["id"]: _output(row) for row in rows}


async def outputs_of_tenant(conn: asyncpg.Connection, tenant: str) -> list[OutputRow]:
    """Every output signed for ``tenant``, oldest first (a tenant's export)."""
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE tenant = $1 ORDER BY id",  # noqa: S608 - constant columns
        tenant,
    )
    return [_output(row) for row in rows]


async def consents_of(
    conn: asyncpg.Connection, output_ids: Sequence[str]
) -> dict[str, list[ConsentUse]]:
    """The consent tokens each output used, in signing order (status ``unknown``: the
    caller asks the consent domain for it)."""
    rows = await conn.fetch(
        "SELECT c.output_id, c.jti, c.consent_id, c.status_list_uri, c.status_idx"
        " FROM signed_output_consents c"
        " WHERE c.output_id = ANY($1::text[]) ORDER BY c.output_id, c.position",
        list(output_ids),
    )
    result: dict[str, list[ConsentUse]] = {output_id: [] for output_id in output_ids}
    for row in rows:
        result[row["output_id"]].append(
            ConsentUse(
                jti=row["jti"],
                consent_id=row["consent_id"],
                status_list_uri=row["status_list_uri"],
                status_idx=row["status_idx"],
            )
        )
    return result


async def phashes_since(
    conn: asyncpg.Connection, *, after: int, gaps: Sequence[int]
) -> list[tuple[int, int]]:
    """(id, phash) of outputs with an id above ``after`` or among ``gaps``, by id."""
    rows = await conn.fetch(
        "SELECT id, phash FROM signed_outputs WHERE id > $1 OR id = ANY($2::bigint[]) ORDER BY id",
        after,
        list(gaps),
    )
    return [(row["id"], row["phash"]) for row in rows]


async def outputs_for_consent(conn: asyncpg.Connection, consent_id: str) -> list[OutputRow]:
    """Every output signed with a token of ``consent_id``, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs o"  # noqa: S608 - constant columns
        " WHERE EXISTS (SELECT 1 FROM signed_output_consents c"
        "               WHERE c.output_id = o.output_id AND c.consent_id = $1)"
        " ORDER BY o.id",
        consent_id,
    )
    return [_output(row) for row in rows]


class AffectedOutput(msgspec.Struct, kw_only=True, frozen=True):
    """An output signed with a consent's tokens."""

    output_id: str
    generation_id: str
    decision_id: str | None
    sha256: str
    signed_at: datetime


async def outputs_signed_with(
    conn: asyncpg.Connection, consent_id: str, decision_ids: Sequence[str] | None
) -> list[AffectedOutput]:
    """Outputs signed with the consent's tokens, oldest first; with ``decision_ids``, only
    those tied to one of these decisions."""
    rows = await conn.fetch(
        "SELECT o.output_id, o.generation_id, o.decision_id, o.sha256, o.created_at AS signed_at"
        " FROM signed_outputs o WHERE o.output_id IN (SELECT output_id FROM"
        "  signed_output_consents WHERE consent_id = $1)"
        " AND ($2::text[] IS NULL OR o.decision_id = ANY ($2)) ORDER BY o.id",
        consent_id,
        None if decision_ids is None else list(decision_ids),
    )
    return [AffectedOutput(**dict(r)) for r in rows]


def status_name(status: int | None) -> IssuedTokenStatus:
    """A token status as the consent domain stores it (None: no token of ours), in words."""
    return "unknown" if status is None else _STATUS_NAMES.get(status, "unknown")
