"""Helpers of the moderation tests: real images, a clean evidence record, and a real
consent source that verifies consent JWTs signed with ``keys.LocalSigner``."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
import secrets
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from PIL import Image, ImageDraw

import keys
from moderation import (
    ClassifierResult,
    ConsentCheck,
    Evidence,
    HashFacts,
    ImageFacts,
    PromptFacts,
    ProvenanceFacts,
    SourceEvidence,
)
from verifier import ImageLimits, decode, dihedral_phashes
from verifier.tokens import Reason

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ISSUER = "https://registry.test"
GENERATOR = "generator-1"
PHOTO_SHA = hashlib.sha256(b"reference photo of a real person").hexdigest()
BASE_USES = ("reference.generate", "publish.public")
LIMITS = ImageLimits(max_bytes=20_000_000, max_pixels=40_000_000)


def make_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic picture: random shapes in random colours, plus noise."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(40):
        x0, y0 = rng.randrange(width - 40), rng.randrange(height - 40)
        box = [x0, y0, x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(image).astype(np.int16)
    noise = np.random.default_rng(seed).integers(-20, 20, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def encode_jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def image_hashes(image: Image.Image) -> tuple[str, tuple[str, ...]]:
    """pHash and flip/rotation pHashes as the gate computes them (decode, then hash)."""
    decoded = decode(encode_jpeg(image), LIMITS, hash_only=True)
    first, *rest = dihedral_phashes(decoded.image)
    return first, tuple(rest)


def consent(uses: Collection[str] = BASE_USES, **changes: Any) -> ConsentCheck:
    values: dict[str, Any] = {
        "valid": True,
        "consent_id": "consent-1",
        "jti": "jti-1",
        "uses": tuple(uses),
        "asset_sha256": PHOTO_SHA,
    }
    values.update(changes)
    return ConsentCheck(**values)


def photo(asset_id: str = "photo-1", **changes: Any) -> SourceEvidence:
    """A real-person photo source with a valid consent check, unless ``changes`` say not."""
    values: dict[str, Any] = {
        "type": "photo",
        "asset_id": asset_id,
        "declared_sha256": PHOTO_SHA,
        "token_present": True,
        "check": consent(),
    }
    values.update(changes)
    return SourceEvidence(**values)


def scores(**values: float) -> ClassifierResult:
    base = {"sexual_content": 0.01, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}
    base.update(values)
    return ClassifierResult(classifier="supplied", origin="supplied", scores=base)


def clean_evidence(**changes: Any) -> Evidence:
    """Evidence for a consented output that every check passes: decides ``allowed``."""
    values: dict[str, Any] = {
        "stage": "publish",
        "received_at": NOW,
        "image": ImageFacts(
            decoded=True,
            sha256="ab" * 32,
            phash="0f0f0f0f0f0f0f0f",
            variants=("f0f0f0f0f0f0f0f0",) * 4,
            media_type="image/jpeg",
            width=640,
            height=480,
        ),
        "prompt": PromptFacts(),
        "sources": (photo(),),
        "provenance": ProvenanceFacts(state="absent"),
        "classifiers": (scores(),),
        "hashes": HashFacts(),
    }
    values.update(changes)
    return Evidence(**values)


class LocalConsentSource:
    """A real ConsentEvidenceSource: verifies consent JWTs with our public key.

    Revocation is a table of withdrawal times by jti, as a status list would record them.
    """

    def __init__(self, signer: keys.LocalSigner, *, now: Callable[[], dt.datetime]) -> None:
        self.signer = signer
        self.now = now
        self.withdrawn: dict[str, dt.datetime] = {}
        self.assets: dict[str, str] = {}
        self.calls = 0

    def issue(
        self,
        *,
        audience: str = GENERATOR,
        asset_id: str = "photo-1",
        asset_sha256: str = PHOTO_SHA,
        uses: Collection[str] = BASE_USES,
        lifetime: dt.timedelta = dt.timedelta(minutes=10),
        issued: dt.datetime | None = None,
        signer: keys.LocalSigner | None = None,
    ) -> str:
        self.assets[asset_id] = asset_sha256
        start = issued or self.now()
        claims = {
            "iss": ISSUER,
            "sub": "subject-1",
            "aud": audience,
            "iat": int(start.timestamp()),
            "nbf": int(start.timestamp()),
            "exp": int((start + lifetime).timestamp()),
            "jti": secrets.token_urlsafe(12),
            "cid": "consent-1",
            "assets": [{"id": asset_id, "sha256": asset_sha256}],
            "uses": list(uses),
        }
        return keys.sign_compact(
            msgspec.json.encode(claims), signer or self.signer, typ="consent+jwt"
        )

    def withdraw(self, token: str, at: dt.datetime) -> None:
        _, payload, _, _ = keys.parse_compact(token)
        self.withdrawn[json.loads(payload)["jti"]] = at

    async def check(
        self,
        *,
        token: str,
        asset_id: str,
        asset_sha256: str | None,
        generator_client_id: str,
        uses_needed: Collection[str],
    ) -> ConsentCheck:
        self.calls += 1
        try:
            verified = keys.verify_compact(
                token,
                resolve_key=lambda header: (
                    self.signer.public_key() if header.get("kid") == self.signer.kid else None
                ),
                typ="consent+jwt",
                algorithms=("EdDSA",),
            )
        except (keys.MalformedJWS, keys.TypMismatch, keys.CritUnsupported):
            return ConsentCheck(valid=False, reasons=(Reason.MALFORMED,))
        except keys.KeysError:
            return ConsentCheck(valid=False, reasons=(Reason.SIGNATURE,))
        claims = json.loads(verified.payload)
        moment = self.now().timestamp()
        reasons: list[Reason] = []
        if claims["iss"] != ISSUER:
            reasons.append(Reason.ISSUER)
        if claims["exp"] <= moment:
            reasons.append(Reason.EXPIRED)
        if claims["nbf"] > moment:
            reasons.append(Reason.NOT_YET_VALID)
        if claims["aud"] != generator_client_id:
            reasons.append(Reason.AUDIENCE)
        withdrawn = self.withdrawn.get(claims["jti"])
        if withdrawn is not None and withdrawn <= self.now():
            reasons.append(Reason.REVOKED)
        bound = any(
            asset["id"] == asset_id and asset_sha256 in {None, asset["sha256"]}
            for asset in claims["assets"]
        )
        if not bound:
            reasons.append(Reason.ASSET_MISMATCH)
        if set(uses_needed) - set(claims["uses"]):
            reasons.append(Reason.USE_NOT_PERMITTED)
        return ConsentCheck(
            valid=not reasons,
            reasons=tuple(reasons),
            consent_id=claims["cid"],
            jti=claims["jti"],
            uses=tuple(claims["uses"]),
            asset_sha256=self.assets.get(asset_id),
        )
