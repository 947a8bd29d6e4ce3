"""Helpers for the page tests: a consent world over any HTTP client, real signed images,
and reading what a page put in its forms."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from PIL import Image

from tests.consent_http import helpers
from tests.consent_http.conftest import Party, World
from tests.support import block_image

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_world(
    http: Any, admin: dict[str, str], *, template_may_exist: bool = False
) -> World:
    """A template, an uploader, a generator and a publisher, created through the admin API.

    Works over any HTTP client: the in-process test client, or a live ``registry serve``.
    ``template_may_exist`` for a service that already holds the template (409 then).
    """
    response = await http.post(
        "/v1/consent-templates",
        json={
            "id": helpers.TEMPLATE_ID,
            "title": "Likeness for reference-based generation",
            "text": helpers.TEMPLATE_TEXT,
            "uses": helpers.TEMPLATE_USES,
        },
        headers=admin,
    )
    assert response.status_code in ({201, 409} if template_may_exist else {201}), response.text
    parties = []
    for role, tenant in (("uploader", "acme"), ("generator", "genco"), ("publisher", "pubco")):
        created = await http.post(
            "/v1/admin/clients",
            json={"name": f"{role} client", "roles": [role], "tenant": tenant},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        parties.append(Party(body["client_id"], {"Authorization": f"Bearer {body['api_key']}"}))
    return World(
        http=http,
        admin=admin,
        uploader=parties[0],
        generator=parties[1],
        publisher=parties[2],
        signer=helpers.Signer(),
    )


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real JPEG whose content (and perceptual hash) differs per seed."""
    return block_image(seed, size=size, quality=90)


async def sign(
    world: World,
    image: bytes,
    *,
    tokens: list[str],
    generation_id: str = "gen-1",
    model: str = "example-diffusion-2",
) -> bytes:
    """The image signed by the registry (C2PA manifest embedded) as the world's generator."""
    metadata = {"generation_id": generation_id, "model": model, "consent_tokens": tokens}
    response = await world.http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", image, "image/jpeg"),
            "metadata": (None, json.dumps(metadata), "application/json"),
        },
        headers=world.generator.headers,
    )
    assert response.status_code == 200, response.text
    return bytes(response.content)


async def signed_with_consent(world: World, seed: int, **options: Any) -> tuple[bytes, str]:
    """An output signed with a real consent token; returns (image, consent id)."""
    consent, token = await world.granted_token()
    return await sign(world, picture(seed), tokens=[token["token"]], **options), consent[
        "consent_id"
    ]


def tamper(signed: bytes) -> bytes:
    """The signed JPEG with pixels changed after signing (a byte of scan data flipped)."""
    data = bytearray(signed)
    end = data.rfind(b"\xff\xd9")
    position = end - 40
    data[position] ^= 0x5A
    return bytes(data)


def strip(signed: bytes) -> bytes:
    """The same pixels re-encoded: the manifest is gone, the perceptual hash stays close."""
    out = io.BytesIO()
    Image.open(io.BytesIO(signed)).convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found[1]


async def withdraw(world: World, consent_id: str) -> None:
    response = await world.http.post(
        f"/v1/consents/{consent_id}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, consent_id)},
        headers=world.uploader.headers,
    )
    assert response.status_code == 200, response.text


REVIEW_SCORES = {
    "sexual_content": 0.1,
    "minor_presence": 0.01,
    "nonconsensual_transformation": 0.01,
    "violence": 0.62,
    "aesthetics": 0.4,
}
"""Violence in the review band of the shipped policy (review from 0.5, block from 0.9), and
a score under a name the policy does not know (a note on the decision)."""


async def review_ticket(
    world: World,
    seed: int,
    *,
    database_url: str,
    master_key: str,
    prompt: str = "put her in a sunny park, watercolour style",
) -> tuple[str, str, bytes]:
    """A real gate decision sent to review, with its image kept as the gate keeps it.

    Returns (decision id, ticket id, image bytes).
    """
    import asyncpg

    from keys import MasterKey
    from registry.consent.crypto import FieldCipher
    from registry.consent.records import DataKeys
    from registry.web import ReviewImageStore
    from tests.gate_http.conftest import check_request, consented_source, post_check

    source = await consented_source(world)
    image = picture(seed, size=(480, 360))
    response = await post_check(
        world.http,
        world.publisher.headers,
        check_request(
            f"gen-review-{seed}",
            sources=[source.asset()],
            generator=world.generator.client_id,
            scores=REVIEW_SCORES,
            prompt=prompt,
        ),
        image,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety_status"] == "review", body
    conn = await asyncpg.connect(database_url)
    try:
        # What the gate does for a review decision (a no-op when it already did).
        master = MasterKey.from_text(master_key)
        await ReviewImageStore(master, DataKeys(FieldCipher(master))).put(
            conn, decision_id=body["decision_id"], media_type="image/jpeg", data=image
        )
    finally:
        await conn.close()
    return body["decision_id"], body["review_ticket"], image
