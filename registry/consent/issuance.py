"""Issuance: grants to generator clients, the consent tokens they obtain, and online verification.

A generator holding a grant obtains short-lived tokens for an active consent, for uses it
permits and assets it lists. Each token takes a random, never reused index of an open status
list; its status lives on its own row, so online verification reads whether it was revoked
at that moment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from keys.errors import KeysError
from keys.jwk import is_valid_kid
from keys.jws import parse_compact
from registry.consent import repository, status
from registry.consent.errors import (
    AssetIdsInvalidError,
    AssetUnknownError,
    AudienceNotAllowedError,
    ConsentNotActiveError,
    ConsentNotFoundError,
    GrantClientInvalidError,
    GrantMissingError,
    TtlInvalidError,
    UsesEmptyError,
)
from registry.consent.records import MAX_REF, open_record, status_of
from registry.consent.tokens import (
    CONSENT_TOKEN_TYP,
    TokenAsset,
    TokenVerification,
    build_claims,
    verify_token,
)
from registry.consent.uses import require_known_uses, require_permitted_uses
from registry.consent.views import AssetView, Granted, IssuedToken
from registry.core.audit import AuditRecord
from registry.core.auth import Role, get_client

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from keys import KeyRing
    from registry.consent.config import ConsentSettings
    from registry.consent.records import DataKeys
    from registry.core.auth import Client

__all__ = ["grant", "issue_token", "verify"]


class _Order(msgspec.Struct, kw_only=True, frozen=True):
    """A token to issue, every input checked: for whom, under which consent, for what."""

    record: repository.RecordRow
    audience: str
    uses: tuple[str, ...]
    assets: list[AssetView]
    ttl: timedelta
    now: datetime


# Grants.


async def grant(
    conn: asyncpg.Connection, *, actor: Client, consent_id: str, client_id: str
) -> Granted:
    """Let the generator ``client_id`` obtain tokens for the consent; granting twice is a no-op."""
    record = await repository.get_record(conn, consent_id, lock="share")
    if record is None or record.tenant != actor.tenant:
        raise ConsentNotFoundError("no consent with this id for this tenant")
    if record.status != "active":
        raise ConsentNotActiveError(f"the consent is {record.status}")
    grantee = await get_client(conn, client_id) if len(client_id) <= MAX_REF else None
    if grantee is None or not grantee.has(Role.GENERATOR):
        raise GrantClientInvalidError("grants go to an existing, enabled generator client")
    created = await repository.insert_grant(conn, consent_id, client_id, actor.client_id)
    events: tuple[AuditRecord, ...] = ()
    if created:
        events = (
            AuditRecord(
                action="consent.granted",
                subject_type="consent",
                subject_id=consent_id,
                payload={"client_id": client_id},
            ),
        )
    return Granted(consent_id=consent_id, client_id=client_id, created=created, events=events)


# Tokens.


async def issue_token(
    conn: asyncpg.Connection,
    *,
    settings: ConsentSettings,
    keyring: KeyRing,
    keys: DataKeys,
    actor: Client,
    consent_id: str,
    uses: Sequence[str],
    asset_ids: Sequence[str] | None,
    ttl_seconds: int | None,
) -> IssuedToken:
    """A token for the calling generator, which needs a grant for the consent.

    The token carries ``uses`` (each permitted by the consent) and binds the assets
    ``asset_ids`` names, or all of them; it expires after ``ttl_seconds`` (the default when
    None), and never after the consent does.
    """
    record = await repository.get_record(conn, consent_id, lock="share")
    if record is None:
        raise ConsentNotFoundError("no consent with this id")
    if not await repository.has_grant(conn, consent_id, actor.client_id):
        raise GrantMissingError("this client holds no grant for the consent")
    now = datetime.now(UTC)
    state = status_of(record, now)
    if state != "active":
        raise ConsentNotActiveError(f"the consent is {state}")
    ttl = settings.token_default_ttl if ttl_seconds is None else ttl_seconds
    if not 0 < ttl <= settings.token_max_ttl:
        raise TtlInvalidError(f"ttl_seconds must be 1 to {settings.token_max_ttl}")
    if not uses:
        raise UsesEmptyError("name at least one use")
    checked = require_permitted_uses(uses, record.permitted_uses)
    _, assets = await open_record(conn, keys, record)
    order = _Order(
        record=record,
        audience=actor.client_id,
        uses=checked,
        assets=_select_assets(assets, asset_ids),
        ttl=timedelta(seconds=ttl),
        now=now,
    )
    return await _issue(conn, order, settings=settings, keyring=keyring)


def _select_assets(assets: Sequence[AssetView], asset_ids: Sequence[str] | None) -> list[AssetView]:
    """The assets ``asset_ids`` names, in its order; all of the consent's when it is None."""
    if asset_ids is None:
        return list(assets)
    if not asset_ids:
        raise AssetIdsInvalidError("asset_ids, when given, names at least one asset")
    if len(set(asset_ids)) != len(asset_ids):
        raise AssetIdsInvalidError("asset_ids names an asset more than once")
    by_id = {a.asset_id: a for a in assets}
    if any(a not in by_id for a in asset_ids):
        raise AssetUnknownError("asset_ids names an asset that is not part of this consent")
    return [by_id[a] for a in asset_ids]


async def _issue(
    conn: asyncpg.Connection, order: _Order, *, settings: ConsentSettings, keyring: KeyRing
) -> IssuedToken:
    """Record and sign the token at a random free index of an open status list.

    An index already taken is drawn again; a list whose draws keep colliding is closed and
    the token goes to another.
    """
    assets = [TokenAsset(id=a.asset_id, sha256=a.sha256 or "") for a in order.assets]
    for _ in range(status.MAX_DRAWS):
        target = await status.open_list(conn, size=settings.status_list_size)
        for _ in range(status.MAX_DRAWS):
            idx = status.random_index(target.size)
            claims = build_claims(
                issuer=settings.issuer,
                subject=order.record.subject_pseudonym,
                audience=order.audience,
                consent_id=order.record.consent_id,
                assets=assets,
                uses=order.uses,
                status_idx=idx,
                status_uri=status.list_uri(settings.issuer, target.list_id),
                now=order.now,
                ttl=order.ttl,
                not_after=order.record.valid_until,
            )
            if await _insert_token(conn, order, claims, target.list_id, idx):
                return _issued(keyring, order, claims, target.list_id, idx)
        await status.close_list(conn, target.list_id)
    msg = "no free status list index after many draws"
    raise RuntimeError(msg)


async def _insert_token(
    conn: asyncpg.Connection, order: _Order, claims: dict[str, Any], list_id: str, idx: int
) -> bool:
    """Record the token; False when its status list index is taken already."""
    return await repository.insert_token(
        conn,
        jti=claims["jti"],
        consent_id=order.record.consent_id,
        audience=order.audience,
        uses=order.uses,
        asset_ids=[a.asset_id for a in order.assets],
        issued_at=order.now,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        status_list_id=list_id,
        status_idx=idx,
    )


def _issued(
    keyring: KeyRing, order: _Order, claims: dict[str, Any], list_id: str, idx: int
) -> IssuedToken:
    event = AuditRecord(
        action="consent_token.issued",
        subject_type="consent",
        subject_id=order.record.consent_id,
        payload={
            "jti": claims["jti"],
            "audience": order.audience,
            "uses": list(order.uses),
            "asset_ids": [a.asset_id for a in order.assets],
            "exp": claims["exp"],
            "status_list": list_id,
            "status_idx": idx,
        },
    )
    return IssuedToken(
        token=keyring.sign_jws(claims, typ=CONSENT_TOKEN_TYP),
        jti=claims["jti"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        events=(event,),
    )


# Online verification.


async def verify(
    conn: asyncpg.Connection,
    *,
    settings: ConsentSettings,
    keyring: KeyRing,
    actor: Client,
    token: str,
    use: str | None,
    asset_sha256: str | None,
    audience: str | None,
) -> TokenVerification:
    """Online verification: signature, claims, audience, binding, use and live status.

    The status comes from the token's own row, read now, so a withdrawal committed by
    any process fails the token here at once.
    """
    if use is not None:
        require_known_uses([use])
    audiences = {actor.client_id}
    if audience is not None and audience != actor.client_id:
        if not actor.has(Role.PUBLISHER):
            raise AudienceNotAllowedError("only a publisher may name another audience")
        audiences = {audience}
    kid, reference = _peek(token)
    key = await keyring.public_key_fresh(kid) if kid is not None else None
    found = await _live_status(conn, settings.issuer, reference)
    return verify_token(
        token,
        resolve_key=lambda k: key if k == kid else None,
        issuer=settings.issuer,
        audiences=audiences,
        status_of=lambda uri, idx: found if (uri, idx) == reference else None,
        now=datetime.now(UTC),
        leeway_seconds=settings.token_leeway_seconds,
        use=use,
        asset_sha256=asset_sha256,
    )


async def _live_status(
    conn: asyncpg.Connection, issuer: str, reference: tuple[str, int] | None
) -> int | None:
    """The status at the list entry a token claims, when that list is one of ours."""
    if reference is None:
        return None
    list_id = status.list_id_of(issuer, reference[0])
    return None if list_id is None else await status.status_at(conn, list_id, reference[1])


def _peek(token: str) -> tuple[str | None, tuple[str, int] | None]:
    """The kid and status reference a token claims, unverified: only to know what to read."""
    try:
        header, payload, _, _ = parse_compact(token)
        claims = json.loads(payload)
    except (KeysError, ValueError, RecursionError):
        return None, None
    kid = header.get("kid")
    kid = kid if is_valid_kid(kid) else None
    reference = None
    status_claim = claims.get("status") if isinstance(claims, dict) else None
    entry = status_claim.get("status_list") if isinstance(status_claim, dict) else None
    if isinstance(entry, dict):
        uri, idx = entry.get("uri"), entry.get("idx")
        if isinstance(uri, str) and type(idx) is int and idx >= 0:
            reference = (uri, idx)
    return kid, reference
