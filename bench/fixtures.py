"""Inputs the benchmarks share: detailed JPEGs and consent forms signed by a person's key."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import secrets
from typing import TYPE_CHECKING

import numpy as np
from cryptography.hazmat.primitives import serialization
from PIL import Image

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def photo(size: tuple[int, int], seed: int) -> bytes:
    """A JPEG with enough detail that decoding it is real work (a tiled noise pattern).

    Used for the gate's inputs; ``smooth_photo`` for the outputs that are signed.
    """
    rng = np.random.default_rng(seed)
    tile = Image.fromarray(rng.integers(0, 256, (250, 250, 3), dtype=np.uint8))
    image = Image.new("RGB", size)
    for x in range(0, size[0], 250):
        for y in range(0, size[1], 250):
            image.paste(tile, (x, y))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def smooth_photo(size: tuple[int, int], seed: int) -> bytes:
    """A JPEG with smooth structure plus grain, so it compresses like a photo."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 4 * np.pi, width)
    y = np.linspace(0, 3 * np.pi, height)
    base = (np.sin(x)[None, :] + np.cos(y)[:, None]) * 60 + 128
    channels = [base + rng.normal(0, 12, (height, width)) + shift for shift in (0, 30, -30)]
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def multipart(parts: Sequence[tuple[str, str | None, str | None, bytes]]) -> tuple[str, bytes]:
    """A multipart/form-data body of (name, filename, content type, bytes) parts, and its
    Content-Type header."""
    boundary = "bench" + secrets.token_hex(16)
    chunks: list[bytes] = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        chunks += [head.encode(), b"\r\n", data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def consent_form(
    key: Ed25519PrivateKey,
    *,
    asset_sha256: str,
    template_id: str,
    template_text: str,
    permitted_uses: Sequence[str],
) -> str:
    """A consent form the way an uploader's app signs it: compact JWS, key in the header."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    header = {
        "alg": "EdDSA",
        "typ": "consent-form+jws",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)},
    }
    payload = {
        "version": 1,
        "template": {
            "id": template_id,
            "sha256": hashlib.sha256(template_text.encode()).hexdigest(),
        },
        "subject_ref": f"bench-subject-{secrets.token_hex(4)}",
        "signer_role": "subject",
        "assets": [{"sha256": asset_sha256}],
        "permitted_uses": list(permitted_uses),
        "prohibited_uses": [],
        "valid_from": stamp,
        "valid_until": (now + dt.timedelta(days=30)).isoformat().replace("+00:00", "Z"),
        "jurisdiction": "DE",
        "signed_at": stamp,
        "nonce": secrets.token_urlsafe(16),
    }
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + b64(key.sign(signing_input.encode()))
