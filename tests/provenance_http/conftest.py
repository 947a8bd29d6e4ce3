"""Fixtures for provenance over HTTP: the consent world of the consent tests (a template, an
uploader, a generator, a publisher, a person's key), real images, and helpers to sign an
output with real consent tokens and to count what was stored.

Tests (unlike the service) may import ``c2pa``: they use it to read our outputs back
independently, with nothing but our published anchor.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from registry.app import create_app
from tests.consent_http import conftest as consent_fixtures
from tests.support import block_image, make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "c2pa"
TEST_ANCHORS = FIXTURES / "test-trust-anchors.pem"
TABLES = ("signed_outputs", "signed_output_consents", "audit_events")
PILLOW = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def picture(seed: int, *, size: tuple[int, int] = (160, 120), media_type: str = "image/jpeg"):
    """A real image whose content (and so perceptual hash) differs per seed."""
    return block_image(seed, size=size, fmt=PILLOW[media_type])


def reencode(data: bytes, fmt: str = "JPEG", **options: Any) -> bytes:
    """The same pixels re-encoded by Pillow: every byte of metadata (the manifest) is gone."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, fmt, **options)
    return out.getvalue()


def file_part(data: bytes, name: str = "image.jpg", media_type: str = "image/jpeg"):
    return {"file": (name, data, media_type)}


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - constants
            for table in TABLES
        }
    finally:
        await conn.close()


# The consent tests' world: a template, an uploader, a generator, a publisher, a key.
world = consent_fixtures.world


@pytest.fixture
def sign_output(world):
    """POST /v1/provenance/sign as the generator; returns the response."""

    async def sign(
        image: bytes,
        *,
        tokens: list[str],
        generation_id: str = "gen-1",
        media_type: str = "image/jpeg",
        headers: dict[str, str] | None = None,
        metadata: Any = None,
        **extra: Any,
    ):
        body = metadata
        if body is None:
            body = json.dumps(
                {
                    "generation_id": generation_id,
                    "model": "example-diffusion-2",
                    "consent_tokens": tokens,
                    **extra,
                }
            )
        extension = media_type.rsplit("/", 1)[-1]
        return await world.http.post(
            "/v1/provenance/sign",
            files={
                "file": (f"output.{extension}", image, media_type),
                "metadata": (None, body, "application/json"),
            },
            headers=headers or world.generator.headers,
        )

    return sign


@pytest.fixture
async def signed(world, sign_output):
    """One output signed with a real consent token: (response, token body, consent body)."""
    consent, token = await world.granted_token()
    response = await sign_output(picture(1), tokens=[token["token"]])
    assert response.status_code == 200, response.text
    return response, token, consent


@pytest.fixture
async def anchored(settings, tmp_path):
    """The service on the same database, trusting the C2PA test anchors as well as our own."""
    anchored_settings = make_settings(
        settings.database_url,
        tmp_path / "anchored",
        master_key=settings.master_key,
        trust_anchors=TEST_ANCHORS,
    )
    async with AsyncTestClient(app=create_app(anchored_settings)) as test_client:
        yield test_client


@pytest.fixture
def app_with(settings, tmp_path):
    """Start the service on this test's database with some settings changed."""

    def build(**overrides: Any) -> AsyncTestClient:
        changed = make_settings(
            settings.database_url,
            tmp_path / "changed",
            master_key=settings.master_key,
            **overrides,
        )
        return AsyncTestClient(app=create_app(changed))

    return build
