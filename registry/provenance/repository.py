"""Signed outputs in PostgreSQL: the rows behind /v1/provenance/{sign,verify,lookup}.

A consent's current status is read from ``issued_tokens`` (the consent domain's table) at
query time; this domain never keeps a copy that could go stale.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

__all__ = [
    "ConsentStatus",
    "ConsentUse",
    "NewOutput",
    "OutputRow",
    "consents_of",
    "generation_signed",
    "insert_output",
    "lock_token_statuses",
    "outputs_by_ids",
    "outputs_by_sha256",
    "outputs_for_consent",
    "phash_from_db",
    "phash_to_db",
    "phashes_since",
]

ConsentStatus: TypeAlias = Literal["valid", "revoked", "suspended", "unknown"]
_STATUS_NAMES: dict[int, ConsentStatus] = {0: "valid", 1: "revoked", 2: "suspended"}
_MASK64 = (1 << 64) - 1
_OUTPUT_COLUMNS = (
    "id, output_id, tenant, client_id, generation_id, model, media_type, width, height,"
    " sha256, phash, decision_id, assertion, created_at"
)


class ConsentUse(msgspec.Struct, kw_only=True, frozen=True):
    """A consent token an output used, with the token's status now."""

    jti: str
    consent_id: str
    status_list_uri: str
    status_idx: int
    status: ConsentStatus = "unknown"


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


async def lock_token_statuses(conn: asyncpg.Connection, jtis: Sequence[str]) -> dict[str, int]:
    """The status of each token we issued among ``jtis``, share-locked until the transaction
    ends, so a revocation cannot commit between this read and the output's insert."""
    rows = await conn.fetch(
        "SELECT jti, status FROM issued_tokens WHERE jti = ANY($1::text[]) ORDER BY jti FOR SHARE",
        list(jtis),
    )
    return {row["jti"]: row["status"] for row in rows}


async def insert_output(conn: asyncpg.Connection, new: NewOutput) -> int | None:
    """The new row's id; None when this client already signed this generation."""
    row_id: int | None = await conn.fetchval(
        "INSERT INTO signed_outputs (output_id, tenant, client_id, generation_id, model,"
        " media_type, width, height, sha256, phash, decision_id, assertion)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
    )
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


async def outputs_by_sha256(conn: asyncpg.Connection, sha256: str) -> list[OutputRow]:
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE sha256 = $1 ORDER BY id",  # noqa: S608 - constant columns
        sha256,
    )
    return [_output(row) for row in rows]


async def outputs_by_ids(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, OutputRow]:
    rows = await conn.fetch(
        f"SELECT {_OUTPUT_COLUMNS} FROM signed_outputs WHERE id = ANY($1::bigint[])",  # noqa: S608 - constant columns
        list(ids),
    )
    return {row["id"]: _output(row) for row in rows}


async def consents_of(
    conn: asyncpg.Connection, output_ids: Sequence[str]
) -> dict[str, list[ConsentUse]]:
    """The consent tokens each output used, in signing order, with their status now."""
    rows = await conn.fetch(
        "SELECT c.output_id, c.jti, c.consent_id, c.status_list_uri, c.status_idx, t.status"
        " FROM signed_output_consents c LEFT JOIN issued_tokens t ON t.jti = c.jti"
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
                status=_STATUS_NAMES.get(row["status"], "unknown"),
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
