"""Which C2PA signing identity this deployment uses, and where it comes from.

Operator files (``REGISTRY_C2PA_CERT_CHAIN`` + ``REGISTRY_C2PA_PRIVATE_KEY``) win. Without them a
development CA and ES256 leaf are generated once and stored encrypted in PostgreSQL, so all
service processes sign with the same certificate and verifiers need one anchor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from keys import c2pa_identity

if TYPE_CHECKING:
    import asyncpg

    from keys import MasterKey
    from registry.core.settings import Settings

log = logging.getLogger(__name__)
_AAD = b"c2pa-identity"


async def load(
    conn: asyncpg.Connection, settings: Settings, master_key: MasterKey
) -> c2pa_identity.C2paIdentity:
    if settings.c2pa_cert_chain is not None and settings.c2pa_private_key is not None:
        return c2pa_identity.load_identity(
            settings.c2pa_cert_chain, settings.c2pa_private_key, settings.c2pa_anchor
        )
    row = await conn.fetchrow("SELECT bundle_enc FROM c2pa_identity")
    if row is None:
        host = urlsplit(settings.public_issuer).hostname or "localhost"
        fresh = c2pa_identity.generate_dev_identity(f"Consent Registry {host}")
        sealed = master_key.encrypt(c2pa_identity.to_pem_bundle(fresh), aad=_AAD)
        # Two processes starting together both generate; the first insert wins and both read it.
        await conn.execute(
            "INSERT INTO c2pa_identity (chain_pem, anchor_pem, bundle_enc) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            fresh.chain_pem,
            fresh.anchor_pem,
            sealed,
        )
        log.warning(
            "development setup: generated a local C2PA CA and signing certificate; configure "
            "REGISTRY_C2PA_CERT_CHAIN and REGISTRY_C2PA_PRIVATE_KEY in production"
        )
        row = await conn.fetchrow("SELECT bundle_enc FROM c2pa_identity")
    if row is None:  # pragma: no cover - the insert above guarantees a row
        msg = "c2pa_identity row vanished during start"
        raise RuntimeError(msg)
    return c2pa_identity.from_pem_bundle(master_key.decrypt(bytes(row["bundle_enc"]), aad=_AAD))
