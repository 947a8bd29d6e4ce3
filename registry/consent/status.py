"""Token status lists in the database, and the signed list JWTs served from them.

A token's status lives on its own row in ``issued_tokens`` (list id, index, status); a list is
the set of those rows. Indexes are drawn at random from lists of at least 131,072 entries and
never reused (a unique constraint), so an index says nothing about when or for whom a token
was issued. Revoking updates the token rows and bumps the list's ``version``.

New tokens go to 2-bit lists, so a suspension can say SUSPENDED (2) and be lifted again. Lists
of 1 bit (tokens issued before suspension existed) hold only VALID and INVALID: a suspension
revokes their tokens for good (see ``registry.consent.suspension``).

Online verification reads a token's status from its row, so a revocation committed by any
service process is seen by every other at once. The signed list JWT is expensive to build,
so each process caches it per list, keyed by the list's version and the signing key: one
indexed read tells whether the cached copy is still current.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from registry.consent import repository
from registry.consent.errors import StatusListNotFoundError
from registry.consent.repository import OpenList
from verifier.statuslist import (
    INVALID,
    STATUS_LIST_TYP,
    SUSPENDED,
    VALID,
    StatusList,
    status_list_claims,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import asyncpg

__all__ = [
    "LIST_BITS",
    "MIN_LIST_SIZE",
    "OpenList",
    "StatusListCache",
    "close_list",
    "list_id_of",
    "list_uri",
    "open_list",
    "random_index",
    "restore_consent_tokens",
    "revoke_consent_tokens",
    "status_at",
    "suspend_consent_tokens",
    "valid_list_id",
]

MIN_LIST_SIZE: Final = 131_072
# The width of the lists new tokens go to: room for VALID, INVALID and SUSPENDED.
LIST_BITS: Final = 2
PATH: Final = "/v1/status-lists/"
# A list whose random draws keep colliding is dense enough; new tokens go to a fresh list.
MAX_DRAWS: Final = 16
_CACHE_ENTRIES: Final = 256
_LIST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SignsJws(Protocol):
    def sign_jws(self, payload: Mapping[str, Any], *, typ: str) -> str: ...


def list_uri(issuer: str, list_id: str) -> str:
    return f"{issuer}{PATH}{list_id}"


def list_id_of(issuer: str, uri: str) -> str | None:
    """The list id in one of our list URIs, or None for any other URI."""
    prefix = issuer + PATH
    if not uri.startswith(prefix):
        return None
    list_id = uri[len(prefix) :]
    return list_id if _LIST_ID.fullmatch(list_id) else None


def valid_list_id(list_id: str) -> bool:
    return _LIST_ID.fullmatch(list_id) is not None


def random_index(size: int) -> int:
    return secrets.randbelow(size)


async def open_list(conn: asyncpg.Connection, *, size: int, bits: int = LIST_BITS) -> OpenList:
    """The list new tokens go to; a new one when none of this size is open."""
    found = await repository.find_open_list(conn, size=size, bits=bits)
    if found is not None:
        return found
    # Two processes may both create one at the same moment; two open lists are harmless.
    list_id = "sl_" + secrets.token_hex(8)
    await repository.insert_status_list(conn, list_id, bits=bits, size=size)
    return OpenList(list_id=list_id, size=size)


async def close_list(conn: asyncpg.Connection, list_id: str) -> None:
    await repository.close_status_list(conn, list_id)


async def status_at(conn: asyncpg.Connection, list_id: str, idx: int) -> int | None:
    """The status of the token at (list, idx); None when no token of ours holds that index."""
    return await repository.status_at(conn, list_id, idx)


async def revoke_consent_tokens(conn: asyncpg.Connection, consent_id: str) -> list[str]:
    """Set every token of the consent to INVALID; the jtis revoked now."""
    return await repository.revoke_consent_tokens(conn, consent_id, INVALID)


async def suspend_consent_tokens(
    conn: asyncpg.Connection, consent_id: str
) -> tuple[list[str], list[str]]:
    """Set the consent's valid tokens to SUSPENDED, or to INVALID in a 1-bit list, which cannot
    say SUSPENDED; the jtis (suspended, revoked) now."""
    moved = await repository.suspend_consent_tokens(
        conn, consent_id, valid=VALID, status=SUSPENDED, fallback=INVALID
    )
    return [j for j, s in moved if s == SUSPENDED], [j for j, s in moved if s == INVALID]


async def restore_consent_tokens(conn: asyncpg.Connection, consent_id: str) -> list[str]:
    """Set the consent's SUSPENDED tokens back to VALID; the jtis restored now."""
    return await repository.restore_consent_tokens(conn, consent_id, status=SUSPENDED, valid=VALID)


class _Cached(msgspec.Struct, frozen=True):
    version: int
    kid: str
    built_at: float
    token: str


class StatusListCache:
    """Signed status list JWTs of this process, rebuilt when the list or the key changed."""

    def __init__(self, *, issuer: str, ttl_seconds: int) -> None:
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    @property
    def max_age_seconds(self) -> int:
        """How long a served copy may be cached: it is at most this old when served."""
        return max(1, self._ttl // 2)

    async def token(
        self, conn: asyncpg.Connection, list_id: str, *, signer: SignsJws, kid: str
    ) -> str:
        """The current signed list; raises status_list_not_found for a list we never made."""
        head = await repository.status_list_head(conn, list_id)
        if head is None:
            raise StatusListNotFoundError("no such status list")
        cached = self._fresh(list_id, head.version, kid)
        if cached is not None:
            return cached
        async with self._lock:
            # Another request may have rebuilt it while this one waited.
            cached = self._fresh(list_id, head.version, kid)
            if cached is not None:
                return cached
            token = await self._build(conn, list_id, head.bits, head.size, signer)
            self._entries[list_id] = _Cached(
                version=head.version, kid=kid, built_at=time.monotonic(), token=token
            )
            self._entries.move_to_end(list_id)
            while len(self._entries) > _CACHE_ENTRIES:
                self._entries.popitem(last=False)
            return token

    def _fresh(self, list_id: str, version: int, kid: str) -> str | None:
        entry = self._entries.get(list_id)
        if entry is None or entry.version != version or entry.kid != kid:
            return None
        # Offline verifiers call a list stale once it is older than its ttl (from its iat), so
        # a copy is served only while it has at least half its ttl left, and HTTP caches may
        # keep it for that half (max_age_seconds): nobody is handed a list about to go stale.
        if time.monotonic() - entry.built_at >= self.max_age_seconds:
            return None
        return entry.token

    async def _build(
        self, conn: asyncpg.Connection, list_id: str, bits: int, size: int, signer: SignsJws
    ) -> str:
        statuses = StatusList(size, bits)
        for idx, status in await repository.set_statuses(conn, list_id):
            statuses.set(idx, status)
        claims = status_list_claims(
            uri=list_uri(self._issuer, list_id),
            issuer=self._issuer,
            status_list=statuses,
            issued_at=datetime.now(UTC),
            ttl_seconds=self._ttl,
            lifetime_seconds=2 * self._ttl,
        )
        return signer.sign_jws(claims, typ=STATUS_LIST_TYP)
