"""State changes reached from more than one entry point (HTTP, CLI, start-up).

Each runs inside the caller's transaction and appends its audit event there, so the change and
its record commit together whichever door it came through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry import api_keys
from registry.core import audit, auth
from registry.gate import HashListView, create_list

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    import asyncpg

    from keys import KeyRing, Rotation
    from moderation.hashlists import ListAction


async def create_client(
    conn: asyncpg.Connection,
    *,
    actor: str,
    actor_tenant: str | None,
    name: str,
    roles: Iterable[str],
    tenant: str,
    api_key: str | None = None,
    expires_at: datetime | None = None,
) -> auth.NewClient:
    """Create a client with its first key (expiring at ``expires_at``, if given)."""
    new = await auth.create_client(
        conn,
        name=name,
        roles=roles,
        tenant=tenant,
        api_key=api_key,
        expires_at=api_keys.check_expiry(expires_at),
    )
    await audit.append(
        conn,
        actor=actor,
        tenant=actor_tenant,
        action="client.created",
        subject_type="api_client",
        subject_id=new.client.client_id,
        payload={
            "tenant": new.client.tenant,
            "roles": sorted(r.value for r in new.client.roles),
            **api_keys.key_payload(new.key.key_id, new.key.expires_at),
        },
    )
    return new


async def ensure_bootstrap_admin(conn: asyncpg.Connection, api_key: str) -> auth.NewClient | None:
    """Make sure an admin client with this key exists; return it when it was just created."""
    auth.check_key_shape(api_key)
    if await auth.key_exists(conn, api_key):
        return None
    return await create_client(
        conn,
        actor="system",
        actor_tenant=auth.SYSTEM_TENANT,
        name="bootstrap-admin",
        roles=[auth.Role.ADMIN],
        tenant=auth.SYSTEM_TENANT,
        api_key=api_key,
    )


async def rotate_keys(
    conn: asyncpg.Connection, ring: KeyRing, *, actor: str, actor_tenant: str | None
) -> Rotation:
    """Rotate the token-signing key; the caller refreshes the ring after commit."""
    rotation = await ring.rotate(conn)
    await audit.append(
        conn,
        actor=actor,
        tenant=actor_tenant,
        action="keys.rotated",
        subject_type="signing_key",
        subject_id=rotation.activated_kid,
        payload={
            "activated_kid": rotation.activated_kid,
            "retiring_kid": rotation.retiring_kid,
            "next_kid": rotation.next_kid,
        },
    )
    return rotation


async def create_hash_list(
    conn: asyncpg.Connection,
    *,
    actor: str,
    actor_tenant: str | None,
    name: str,
    action: ListAction,
) -> HashListView:
    """Create a perceptual-hash list; ``hash_list_exists`` when the name is taken."""
    view = await create_list(conn, name=name, action=action, created_by=actor)
    await audit.append(
        conn,
        actor=actor,
        tenant=actor_tenant,
        action="hash_list.created",
        subject_type="hash_list",
        subject_id=name,
        payload={"action": action},
    )
    return view
