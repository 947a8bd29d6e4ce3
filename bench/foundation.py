"""Issue 2 rows: JWKS over HTTP and token-key sign/verify through the key ring."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import msgspec

import keys
from bench.harness import (
    REPO,
    Row,
    Server,
    Stats,
    database_urls,
    free_port,
    load,
    timed,
    wait_for_port,
)
from registry.core import db

N_HTTP = 3000
CONCURRENCY = 16
N_CRYPTO = 3000


async def _http_rows(server_url: str) -> tuple[Row, bytes]:
    async with httpx.AsyncClient(base_url=server_url) as client:
        body = (await client.get("/.well-known/jwks.json")).content
        ours = await load(lambda: client.get("/.well-known/jwks.json"), N_HTTP, CONCURRENCY)
    return Row(
        f"GET /.well-known/jwks.json (c={CONCURRENCY})", ours, None, "bare ASGI app, same bytes"
    ), body


def _raw_http(body: bytes) -> Row:
    """The floor: a bare ASGI app on the same uvicorn setup serving the same bytes."""
    port = free_port()
    path = Path(tempfile.mkdtemp()) / "jwks.json"
    path.write_bytes(body)
    proc = subprocess.Popen(  # noqa: S603 - our own benchmark server
        [sys.executable, "-m", "bench.raw_server", str(port), str(path), "application/json"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        return Row("", asyncio.run(_load_root(f"http://127.0.0.1:{port}")), None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _load_root(url: str) -> Stats:
    async with httpx.AsyncClient(base_url=url) as client:
        return await load(lambda: client.get("/"), N_HTTP, CONCURRENCY)


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
        # The raw floor: pyjwt with the same Ed25519 key object and the same claims.
        raw_key = _private_key_of(signer)
        public = ring.public_key(signer.kid)
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


def _private_key_of(signer: keys.Signer) -> object:
    """The raw key for the floor measurement only: rebuilt from the ring's PKCS#8 export."""
    from cryptography.hazmat.primitives import serialization

    assert isinstance(signer, keys.LocalSigner)
    return serialization.load_der_private_key(signer.private_pkcs8_der(), password=None)


def run() -> list[Row]:
    http_db, ring_db = database_urls(2)
    with Server(http_db) as server:
        jwks_row, body = asyncio.run(_http_rows(server.url))
    jwks_row.raw = _raw_http(body).ours
    return [jwks_row, *asyncio.run(_ring_rows(ring_db))]
