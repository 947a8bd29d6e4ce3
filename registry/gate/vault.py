"""What a decision holds about people, sealed under a data key of its own.

The request as the caller sent it (prompt, ``user_id``, sources and their declared hashes,
metadata) and the evidence (the registry's hashes of each source, the image's hashes,
hash-list matches) are personal data of the person in a source photo and of the end user.
Each decision seals both under a fresh data key (a row of ``consent_data_keys``, wrapped by
the master key like the consents' own), so erasing a consent the decision relied on is
deleting that key: the sealed copy, in the table, its dead tuples, the WAL or a backup, can
no longer be read. The decision's outcome, reasons, scores and policy stay in clear, and so
do the evidence's classifier results (names, scores, errors, latency), which the KPIs count.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING, Any, cast

import msgspec

from moderation import Evidence, Status, decode_evidence
from registry.consent.errors import DataUnavailableError
from registry.gate import repository

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import asyncpg

    from moderation.evidence import Stage
    from registry.consent.records import DataKeys

__all__ = ["CaseFiles", "DecisionVault"]


class CaseFiles(msgspec.Struct, kw_only=True, frozen=True):
    """What the gate saw, opened: the image's hash, the request and the evidence (JSON).

    ``erased_at`` is set when a consent the decision relied on was erased: the request is
    then empty and the evidence holds only the stage and time, whatever was stored.
    """

    image_sha256: str | None
    request: dict[str, Any]
    evidence: dict[str, Any]
    erased_at: datetime | None = None


class DecisionVault:
    """Seals a new decision's request and evidence, and opens them for its reviewer."""

    __slots__ = ("_keys",)

    def __init__(self, keys: DataKeys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return "DecisionVault()"

    async def seal(
        self,
        conn: asyncpg.Connection,
        decision_id: str,
        request: dict[str, Any],
        evidence: Evidence,
    ) -> tuple[bytes, str]:
        """``(sealed, data_key_id)``: a fresh key stored in the caller's transaction."""
        key = await self._keys.new(conn)
        sealed = key.seal({"request": request, "evidence": evidence}, aad=decision_id)
        return sealed, key.key_id

    async def erase_for(self, conn: asyncpg.Connection, consent_id: str, at: datetime) -> list[str]:
        """Erase what the decisions made with ``consent_id`` hold about people: their keys
        and their hashes go. The ids of the decisions erased."""
        erased = await repository.erase_decisions_of(conn, consent_id, at)
        for _, key_id in erased:
            if key_id is not None:
                await self._keys.forget(conn, key_id)
        return [decision_id for decision_id, _ in erased]

    async def case(self, conn: asyncpg.Connection, decision_id: str) -> CaseFiles:
        """The decision's request and evidence as the gate saw them (empty once erased)."""
        return await self._open(conn, await repository.decision_case(conn, decision_id))

    async def evidence(self, conn: asyncpg.Connection) -> AsyncIterator[tuple[Status, Evidence]]:
        """Every decision's gate status and evidence, oldest first; erased ones left out."""
        async for status, stored in repository.iter_evidence(conn):
            if stored.erased_at is not None:
                continue
            files = await self._open(conn, stored)
            yield status, decode_evidence(msgspec.json.encode(files.evidence))

    async def _open(self, conn: asyncpg.Connection, stored: repository.StoredCase) -> CaseFiles:
        if stored.erased_at is not None:
            return CaseFiles(
                image_sha256=None,
                request={},
                evidence=msgspec.to_builtins(
                    Evidence(stage=cast("Stage", stored.stage), received_at=stored.created_at)
                ),
                erased_at=stored.erased_at,
            )
        if stored.sealed is None:
            # Written before migration 0016, in clear.
            return CaseFiles(
                image_sha256=stored.image_sha256,
                request=stored.request or {},
                evidence=stored.evidence or {},
            )
        if stored.data_key_id is None:
            msg = "a decision's data key is gone although it was not erased"
            raise DataUnavailableError(msg)
        key = await self._keys.get(conn, stored.data_key_id)
        opened = key.open(stored.sealed, aad=stored.decision_id)
        return CaseFiles(
            image_sha256=stored.image_sha256,
            request=opened["request"],
            evidence=opened["evidence"],
        )
