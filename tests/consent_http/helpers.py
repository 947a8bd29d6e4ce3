"""Helpers for the consent HTTP tests: real keys that sign forms, real images, row counts.

Forms are built by hand (header and payload bytes exactly as given) because the tests also
need JWS a correct client would never produce: ``alg: none``, HMAC, signatures over other
bytes, duplicate members.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import struct
import zlib
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys import b64url_encode, public_jwk
from tests.support import block_image

TEMPLATE_ID = "likeness-v1"
TEMPLATE_TEXT = (
    "I agree that the registry's clients may use my photo for the uses I select, "
    "until the date I choose or until I withdraw, whichever comes first."
)
TEMPLATE_SHA256 = hashlib.sha256(TEMPLATE_TEXT.encode()).hexdigest()
TEMPLATE_USES = [
    "reference.generate",
    "likeness.stylize",
    "edit.transform",
    "publish.public",
    "content.explicit",
    "ai.training",
]
TABLES = (
    "consent_templates",
    "consent_signers",
    "consent_records",
    "consent_assets",
    "consent_data_keys",
    "consent_grants",
    "issued_tokens",
    "audit_events",
)


class Signer:
    """A person's signing key, as their wallet would hold it."""

    def __init__(self, alg: str = "EdDSA") -> None:
        self.alg = alg
        self._key: Any = (
            Ed25519PrivateKey.generate()
            if alg == "EdDSA"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        if self.alg == "EdDSA":
            return self._key.sign(data)
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return f"Signer({self.alg})"


def jws(header: dict[str, Any], payload: bytes, signer: Signer | None) -> str:
    """Compact JWS with exactly this header and payload; unsigned when ``signer`` is None."""
    encoded = b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(payload)
    signature = signer.sign(encoded.encode()) if signer is not None else b""
    return encoded + "." + b64url_encode(signature)


def hs256(header: dict[str, Any], payload: bytes, secret: bytes) -> str:
    encoded = b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(payload)
    mac = hmac.new(secret, encoded.encode(), hashlib.sha256).digest()
    return encoded + "." + b64url_encode(mac)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def form_payload(asset_hashes: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    """A valid consent form payload for the test template, valid from an hour ago for 30 days."""
    moment = now()
    hashes = asset_hashes or [hashlib.sha256(secrets.token_bytes(16)).hexdigest()]
    payload: dict[str, Any] = {
        "version": 1,
        "template": {"id": TEMPLATE_ID, "sha256": TEMPLATE_SHA256},
        "subject_ref": "subject-7f3a",
        "signer_role": "subject",
        "assets": [{"sha256": h, "label": f"photo {i}"} for i, h in enumerate(hashes)],
        "permitted_uses": ["reference.generate", "likeness.stylize"],
        "prohibited_uses": ["content.explicit", "ai.training"],
        "valid_from": stamp(moment - dt.timedelta(hours=1)),
        "valid_until": stamp(moment + dt.timedelta(days=30)),
        "jurisdiction": "DE",
        "signed_at": stamp(moment - dt.timedelta(minutes=1)),
        "nonce": secrets.token_urlsafe(16),
    }
    payload.update(changes)
    return payload


def sign_form(
    signer: Signer, payload: dict[str, Any] | bytes, *, header: dict[str, Any] | None = None
) -> str:
    """A consent form signed by ``signer``, naming its key in the header (``jwk``) by default."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = header or {"alg": signer.alg, "typ": "consent-form+jws", "jwk": signer.public_jwk()}
    return jws(head, body, signer)


def withdrawal(signer: Signer, consent_id: str) -> str:
    payload = {"type": "consent-withdrawal", "consent_id": consent_id, "withdrawn_at": stamp(now())}
    header = {"alg": signer.alg, "typ": "consent-withdrawal+jws"}
    return jws(header, json.dumps(payload).encode(), signer)


def photo(seed: int, *, size: tuple[int, int] = (96, 64), fmt: str = "PNG") -> bytes:
    """A real image with content that differs per seed (so hashes differ too)."""
    return block_image(seed, size=size, grid=4, fmt=fmt)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - constants
            for table in TABLES
        }
    finally:
        await conn.close()


async def audit_actions(database_url: str) -> list[str]:
    """Every audit event's action, in the order they were recorded."""
    conn = await asyncpg.connect(database_url)
    try:
        return [
            r["action"] for r in await conn.fetch("SELECT action FROM audit_events ORDER BY seq")
        ]
    finally:
        await conn.close()
