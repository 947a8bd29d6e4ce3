"""The key ring: the registry's own signing keys, stored encrypted, rotated without gaps.

Each key lives through next → active → retiring → retired. A key is published in the JWKS
as ``next`` for a whole rotation period before it signs, so every verifier (and every other
process of ours) already holds it when the first token signed with it arrives; after
rotation the old key stays published until everything it signed has expired.

The JWKS is for what can still be live. Long-lived artifacts (receipts, provenance
assertions, audit checkpoints) outlive that, so :meth:`KeyRing.history` keeps every key that
ever signed, with its signing period: rotation erases a private key, never a public one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from keys import _store
from keys.errors import KeyDecryptionFailed, KeysError, NoActiveKey, RotationInProgress
from keys.jwk import PublicKey, is_valid_kid, load_public_jwk, thumbprint
from keys.jws import ALLOWED_ALGORITHMS, Verified, sign_compact, verify_compact
from keys.signer import Alg, LocalSigner, Signer

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    import asyncpg

    from keys._store import Connection
    from keys.master import MasterKey

log = logging.getLogger(__name__)

# A kid that is not published forces at most one reload per this many seconds.
_MISS_REFRESH_SECONDS = 1.0
_STATE_ORDER = {"active": 0, "next": 1, "retiring": 2}


@dataclass(frozen=True, kw_only=True)
class KeyRingSettings:
    alg: Alg = "EdDSA"
    # Longest lifetime of anything signed; a retiring key stays published this long.
    max_token_ttl: timedelta
    refresh_interval: float = 5.0
    # Seconds to wait for a pooled connection (then the pool's TimeoutError); None: no bound.
    acquire_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_token_ttl.total_seconds() <= 0:
            raise ValueError("max_token_ttl must be positive")
        if self.refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive")


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """What a rotation changed: the key that now signs, the one retiring and the new next."""

    activated_kid: str
    retiring_kid: str
    next_kid: str
    retire_after: datetime


class KeyPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """A key that has signed: its public JWK and when it signed.

    ``not_after`` is None while the key is active; after a rotation it is the rotation's time
    plus two refresh intervals, the longest another process may still sign with the key.
    """

    jwk: dict[str, str]
    not_before: datetime
    not_after: datetime | None

    @property
    def kid(self) -> str:
        return self.jwk["kid"]


class _Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    active: LocalSigner
    public_keys: dict[str, PublicKey]
    jwks: tuple[dict[str, str], ...]
    algorithms: frozenset[str]
    signers: dict[str, LocalSigner]
    history: tuple[KeyPeriod, ...]
    # The published (kid, state) pairs the history was read with; it changes only with them.
    marker: tuple[tuple[str, str], ...]


class KeyRing:
    """The registry's signing keys, loaded from the database and refreshed periodically."""

    def __init__(
        self, *, pool: asyncpg.Pool, master_key: MasterKey, settings: KeyRingSettings
    ) -> None:
        self._pool = pool
        self._master_key = master_key
        self._settings = settings
        self._snapshot: _Snapshot | None = None
        self._loaded_at = float("-inf")
        self._last_miss_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()

    async def start(self) -> None:
        """Make sure an active and a next key exist, then load the ring."""
        async with (
            self._pool.acquire(timeout=self._settings.acquire_timeout) as conn,
            conn.transaction(),
        ):
            # Waits for a concurrent starter or rotation, so keys are created only once.
            await _store.lock(conn)
            kids = await _store.signing_kids(conn)
            if "active" not in kids:
                if "next" in kids:
                    # The waiting key is already published: it may sign at once.
                    await _store.activate_next(conn)
                    del kids["next"]
                else:
                    await self._insert_new_key(conn, state="active")
            if "next" not in kids:
                await self._insert_new_key(conn, state="next")
        await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> None:
        """Reload when older than ``refresh_interval`` (or ``force``); retire expired keys."""
        if not force and not self._stale():
            return
        async with self._refresh_lock:
            if not force and not self._stale():
                return
            async with self._pool.acquire(timeout=self._settings.acquire_timeout) as conn:
                rows, now = await _store.fetch_published(conn)
                expired = [r for r in rows if r.retire_after is not None and r.retire_after <= now]
                if expired:
                    await _store.retire_expired(conn)
                live = [r for r in rows if r not in expired]
                marker = tuple((r.kid, r.state) for r in live)
                # Signing periods change only with a rotation, which changes the published keys.
                history = (
                    self._snapshot.history
                    if self._snapshot is not None and self._snapshot.marker == marker
                    else _history(await _store.fetch_history(conn))
                )
            self._snapshot = self._build_snapshot(live, history, marker)
            self._loaded_at = time.monotonic()

    async def refresh_forever(self) -> None:
        """Reload every ``refresh_interval``, so a rotation made by another process (or the
        operator's command) is picked up in time: the signing period a rotation records
        allows other processes two refresh intervals to stop signing with the old key."""
        while True:
            await asyncio.sleep(self._settings.refresh_interval)
            try:
                await self.refresh(force=True)
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the loop
                log.warning("signing keys not reloaded: %s", type(exc).__name__)

    def signer(self) -> Signer:
        """The active key: the only one that signs."""
        return self._loaded().active

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The published public keys (active, next, retiring) as a JWK Set."""
        return {"keys": [dict(jwk) for jwk in self._loaded().jwks]}

    def history(self) -> tuple[KeyPeriod, ...]:
        """Every key that has ever signed, oldest first, with its signing period.

        The same tuple object until a rotation changes it, so callers may cache what they
        derive from it (the signed key-history document) by identity.
        """
        return self._loaded().history

    def public_key(self, kid: str) -> PublicKey | None:
        """A published key by kid; None for unknown or syntactically invalid kids."""
        if not is_valid_kid(kid) or self._snapshot is None:
            return None
        return self._snapshot.public_keys.get(kid)

    async def public_key_fresh(self, kid: str) -> PublicKey | None:
        """Like :meth:`public_key`, reloading on a miss at most once per second."""
        if not is_valid_kid(kid):
            return None
        key = self.public_key(kid)
        if key is not None:
            return key
        now = time.monotonic()
        if now - self._last_miss_refresh < _MISS_REFRESH_SECONDS:
            return None
        self._last_miss_refresh = now
        await self.refresh(force=True)
        return self.public_key(kid)

    async def rotate(self, conn: Connection) -> Rotation:
        """Next → active, active → retiring, a new key → next; in the caller's transaction.

        The caller records the change (audit event) in the same transaction, commits, and
        then calls ``refresh(force=True)``.
        """
        if not conn.is_in_transaction():
            raise ValueError("rotate must run inside the caller's transaction")
        if not await _store.try_lock(conn):
            raise RotationInProgress("another key rotation is in progress; try again shortly")
        kids = await _store.signing_kids(conn)
        if "active" not in kids or "next" not in kids:
            raise NoActiveKey("the key ring has no active and next key; start it first")
        retire_after = await _store.retire_active(
            conn, publish_for=self._publish_for(), signs_for=self._signing_margin()
        )
        await _store.activate_next(conn)
        next_kid = await self._insert_new_key(conn, state="next")
        return Rotation(
            activated_kid=kids["next"],
            retiring_kid=kids["active"],
            next_kid=next_kid,
            retire_after=retire_after,
        )

    def sign_jws(
        self,
        payload: bytes | Mapping[str, Any],
        *,
        typ: str,
        extra_headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign with the active key; a mapping payload is encoded as compact JSON."""
        data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        return sign_compact(data, self.signer(), typ=typ, extra_headers=extra_headers)

    def verify_jws(
        self, token: str, *, typ: str, algorithms: Collection[str] | None = None
    ) -> Verified:
        """Verify a token signed by one of our published keys.

        Algorithms default to those of the published keys.
        """
        snapshot = self._loaded()
        return verify_compact(
            token,
            resolve_key=self._resolve,
            typ=typ,
            algorithms=snapshot.algorithms if algorithms is None else algorithms,
        )

    def __repr__(self) -> str:
        if self._snapshot is None:
            return "KeyRing(not loaded)"
        kids = ", ".join(jwk["kid"] for jwk in self._snapshot.jwks)
        return f"KeyRing(active={self._snapshot.active.kid!r}, published=[{kids}])"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("KeyRing cannot be pickled")

    def _resolve(self, header: Mapping[str, Any]) -> PublicKey | None:
        kid = header.get("kid")
        return self.public_key(kid) if isinstance(kid, str) else None

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= self._settings.refresh_interval

    def _loaded(self) -> _Snapshot:
        if self._snapshot is None:
            raise NoActiveKey("the key ring is not loaded; call start() first")
        return self._snapshot

    def _signing_margin(self) -> timedelta:
        # How long after a rotation another process may still sign with the old key.
        return timedelta(seconds=2 * self._settings.refresh_interval)

    def _publish_for(self) -> timedelta:
        return self._settings.max_token_ttl + self._signing_margin()

    async def _insert_new_key(self, conn: Connection, *, state: str) -> str:
        signer = LocalSigner.generate(self._settings.alg)
        await _store.insert_key(
            conn,
            kid=signer.kid,
            alg=signer.alg,
            public_jwk=signer.public_jwk(),
            private_key_enc=self._master_key.encrypt(
                signer.private_pkcs8_der(), aad=signer.kid.encode()
            ),
            state=state,
        )
        return signer.kid

    def _build_snapshot(
        self,
        rows: list[_store.KeyRow],
        history: tuple[KeyPeriod, ...],
        marker: tuple[tuple[str, str], ...],
    ) -> _Snapshot:
        previous = self._snapshot.signers if self._snapshot else {}
        signers: dict[str, LocalSigner] = {}
        public_keys: dict[str, PublicKey] = {}
        published: list[tuple[tuple[int, float], dict[str, str]]] = []
        active: LocalSigner | None = None
        for row in rows:
            jwk = _published_jwk(row.kid, row.alg, row.public_jwk)
            public_keys[row.kid] = load_public_jwk(jwk)
            # Active, next, then retiring keys newest first: stable between reloads.
            retire_after = row.retire_after.timestamp() if row.retire_after else 0.0
            published.append(((_STATE_ORDER[row.state], -retire_after), jwk))
            if row.state in {"active", "next"}:
                signer = previous.get(row.kid) or self._decrypt(row)
                signers[row.kid] = signer
                if row.state == "active":
                    active = signer
        if active is None:
            raise NoActiveKey("no active signing key in the database; start the key ring")
        published.sort(key=lambda item: item[0])
        return _Snapshot(
            active=active,
            public_keys=public_keys,
            jwks=tuple(jwk for _, jwk in published),
            algorithms=frozenset(jwk["alg"] for _, jwk in published) & ALLOWED_ALGORITHMS,
            signers=signers,
            history=history,
            marker=marker,
        )

    def _decrypt(self, row: _store.KeyRow) -> LocalSigner:
        # Decrypted once per key and kept: signing never touches the master key.
        if row.private_key_enc is None:
            raise KeyDecryptionFailed(f"signing key {row.kid} has no stored private key")
        try:
            der = self._master_key.decrypt(row.private_key_enc, aad=row.kid.encode())
        except KeyDecryptionFailed:
            raise KeyDecryptionFailed(
                f"signing key {row.kid} does not decrypt: wrong master key, or the row was altered"
            ) from None
        try:
            signer = LocalSigner.from_pkcs8_der(der, _alg(row.alg))
        except KeysError:
            raise KeyDecryptionFailed(f"signing key {row.kid} is not a valid key") from None
        if signer.kid != row.kid:
            raise KeyDecryptionFailed(f"signing key {row.kid} does not match its kid")
        return signer


def _history(rows: list[_store.HistoryRow]) -> tuple[KeyPeriod, ...]:
    return tuple(
        KeyPeriod(
            jwk=_published_jwk(row.kid, row.alg, row.public_jwk),
            not_before=row.activated_at,
            not_after=row.signs_until,
        )
        for row in rows
    )


def _published_jwk(kid: str, alg: str, public_jwk: Mapping[str, Any]) -> dict[str, str]:
    """A row's public JWK, checked against its kid so an altered row is never published."""
    jwk = {
        name: value
        for name, value in public_jwk.items()
        if name in {"kty", "crv", "x", "y", "n", "e"} and isinstance(value, str)
    }
    if thumbprint(jwk) != kid:
        raise KeyDecryptionFailed(f"public key of signing key {kid} does not match its kid")
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def _alg(value: str) -> Alg:
    if value == "EdDSA":
        return "EdDSA"
    if value == "ES256":
        return "ES256"
    raise KeyDecryptionFailed(f"stored algorithm {value[:16]!r} is not a signing algorithm")
