"""Issue 2 rows: healthz and JWKS over HTTP (against the floor), the key ring in-process."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import TYPE_CHECKING

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import keys
from bench.context import HttpTable, InProcessTable
from bench.harness import Row, timed
from bench.load import Request, check, compare
from registry.core import db

if TYPE_CHECKING:
    from bench.context import Bench, Table

N_CRYPTO = 3000


def _http_rows(bench: Bench) -> HttpTable:
    world = bench.world()
    healthz = Request("/healthz")
    jwks = Request("/.well-known/jwks.json")
    expected = world.jwks_path.read_bytes()
    for target in world.both(healthz):
        check(target.base_url, healthz, lambda body: json.loads(body) == {"status": "ok"})
    for target in world.both(jwks):
        check(target.base_url, jwks, lambda body: json.loads(body) == json.loads(expected))
    return HttpTable(
        "Foundation (issue 2)",
        [
            compare(
                "GET /healthz",
                "a Litestar handler returning the same JSON (no middleware, no access log)",
                *world.both(healthz),
                bench.settings,
            ),
            compare(
                "GET /.well-known/jwks.json",
                "the same JWKS bytes from memory, same media type and Cache-Control",
                *world.both(jwks),
                bench.settings,
            ),
        ],
    )


async def _ring_rows(database_url: str) -> list[Row]:
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with db.acquire(pool, wait=10) as conn:
            await db.migrate(conn)
        ring = keys.KeyRing(
            pool=pool,
            master_key=keys.MasterKey.generate(),
            settings=keys.KeyRingSettings(alg="EdDSA", max_token_ttl=timedelta(hours=1)),
        )
        await ring.start()
        signer = ring.signer()
        claims = {"iss": "http://bench", "sub": "s", "aud": "a", "iat": 1, "exp": 4_000_000_000}
        # The floor: pyjwt with the same Ed25519 key object and the same claims.
        raw_key = _private_key_of(signer)
        public = ring.public_key(signer.kid)
        assert public is not None
        token = ring.sign_jws(claims, typ="JWT")
        raw_token = jwt.encode(claims, raw_key, algorithm="EdDSA", headers={"kid": signer.kid})
        sign_ours = timed(lambda: ring.sign_jws(claims, typ="JWT"), N_CRYPTO)
        sign_raw = timed(
            lambda: jwt.encode(claims, raw_key, algorithm="EdDSA", headers={"kid": signer.kid}),
            N_CRYPTO,
        )
        verify_ours = timed(
            lambda: msgspec.json.decode(ring.verify_jws(token, typ="JWT").payload), N_CRYPTO
        )
        verify_raw = timed(
            lambda: jwt.decode(raw_token, public, algorithms=["EdDSA"], audience="a"), N_CRYPTO
        )
    finally:
        await pool.close()
    return [
        Row("key ring sign_jws (EdDSA)", sign_ours, sign_raw, "pyjwt.encode, same key"),
        Row("key ring verify_jws (EdDSA)", verify_ours, verify_raw, "pyjwt.decode, same key"),
    ]


def _private_key_of(signer: keys.Signer) -> Ed25519PrivateKey:
    """The raw key for the floor measurement only: rebuilt from the ring's PKCS#8 export."""
    assert isinstance(signer, keys.LocalSigner)
    key = serialization.load_der_private_key(signer.private_pkcs8_der(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def run(bench: Bench) -> list[Table]:
    tables: list[Table] = [
        _http_rows(bench) if bench.http else bench.skipped("Foundation (issue 2), HTTP rows")
    ]
    rows = asyncio.run(_ring_rows(bench.postgres().database()))
    tables.append(InProcessTable("Foundation (issue 2)", rows))
    return tables
