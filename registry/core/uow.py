"""The one way to run an operation that changes state: a unit of work.

A unit of work opens a transaction on a connection, lets the operation make its changes and
say what happened (``record``), then appends those events to the audit log last, in the same
transaction, and commits. A change and its record commit together or not at all, whichever
door (HTTP, CLI, a background worker, start-up) the operation came through, and the audit
head is locked only for the moment the events are written.

This module is the only caller of ``audit.append``; a test fails on an append anywhere else,
so a new operation cannot write the log its own way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import msgspec

from registry.core import audit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

    import asyncpg


class _Pending(msgspec.Struct, kw_only=True, frozen=True):
    tenant: str | None
    record: audit.AuditRecord


_ACTORS_TENANT: Any = object()
"""Marks ``record``'s tenant as the actor's (None is a real value: a system-wide event)."""


class UnitOfWork:
    """One operation's transaction and the audit events it records."""

    def __init__(self, conn: asyncpg.Connection, *, actor: str, tenant: str | None) -> None:
        self.conn = conn
        self.actor = actor
        self.tenant = tenant
        self._pending: list[_Pending] = []

    def record(
        self,
        action: str,
        *,
        subject_type: str,
        subject_id: str,
        payload: Mapping[str, Any] | None = None,
        tenant: str | None = _ACTORS_TENANT,
    ) -> None:
        """Record an event of this operation; it is appended when the operation commits.

        ``tenant`` is the tenant the event belongs to, if not the actor's (a reviewer deciding
        another tenant's ticket records it under that tenant).
        """
        self.record_all(
            [
                audit.AuditRecord(
                    action=action,
                    subject_type=subject_type,
                    subject_id=subject_id,
                    payload=dict(payload or {}),
                )
            ],
            tenant=tenant,
        )

    def record_all(
        self, records: Iterable[audit.AuditRecord], *, tenant: str | None = _ACTORS_TENANT
    ) -> None:
        """Record the events a domain operation returned (ids and hashes only)."""
        owner = self.tenant if tenant is _ACTORS_TENANT else tenant
        self._pending.extend(_Pending(tenant=owner, record=r) for r in records)

    async def flush(self) -> None:
        """Append the events recorded so far (the context manager does this before commit)."""
        pending, self._pending = self._pending, []
        for item in pending:
            await audit.append(
                self.conn,
                actor=self.actor,
                tenant=item.tenant,
                action=item.record.action,
                subject_type=item.record.subject_type,
                subject_id=item.record.subject_id,
                payload=item.record.payload,
            )


@contextlib.asynccontextmanager
async def unit_of_work(
    conn: asyncpg.Connection, *, actor: str, tenant: str | None
) -> AsyncIterator[UnitOfWork]:
    """Run an operation on ``conn`` as ``actor``: its changes and its events commit together.

    If the block raises, nothing it did is kept and nothing is recorded.
    """
    async with conn.transaction():
        work = UnitOfWork(conn, actor=actor, tenant=tenant)
        yield work
        await work.flush()
