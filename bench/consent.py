"""Issue 3 rows: consent-token verification over HTTP, and consent submission with a photo.

Each row is set next to the raw library work it cannot avoid, measured in the same run:
pyjwt verifying the same token with the same key object, and decoding plus hashing the same
4-megapixel JPEG with Pillow and imagehash.
"""

from __future__ import annotations

import asyncio
import hashlib
import io

import httpx
import imagehash
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

import keys
from bench import fixtures
from bench.harness import Row, Server, database_urls, load, timed, timed_async

N_VERIFY = 3000
CONCURRENCY = 16
N_SUBMIT = 30
TEXT = "I agree that my photo may be used for the uses I select until I withdraw."


def _hash_work(data: bytes) -> None:
    """What a submission must do to a photo, with the libraries alone."""
    hashlib.sha256(data).hexdigest()
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (256, 256))
    image.load()
    imagehash.phash(image)
    imagehash.dhash(image)


async def _run(url: str, admin: str) -> list[Row]:
    photo = fixtures.photo((2000, 2000), seed=4)
    person = Ed25519PrivateKey.generate()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        auth = {"Authorization": f"Bearer {admin}"}

        async def client(role: str) -> tuple[str, dict[str, str]]:
            made = (
                await http.post(
                    "/v1/admin/clients",
                    json={"name": role, "roles": [role], "tenant": "bench"},
                    headers=auth,
                )
            ).json()
            return made["client_id"], {"Authorization": f"Bearer {made['api_key']}"}

        _, uploader = await client("uploader")
        generator_id, generator = await client("generator")
        await http.post(
            "/v1/consent-templates",
            json={"id": "bench-v1", "title": "Bench", "text": TEXT, "uses": ["reference.generate"]},
            headers=auth,
        )
        forms = iter(
            [
                fixtures.consent_form(
                    person,
                    asset_sha256=hashlib.sha256(photo).hexdigest(),
                    template_id="bench-v1",
                    template_text=TEXT,
                    permitted_uses=["reference.generate"],
                )
                for _ in range(N_SUBMIT + 25)
            ]
        )

        async def submit() -> None:
            response = await http.post(
                "/v1/consents",
                data={"form": next(forms)},
                files=[("assets", ("photo.jpg", photo, "image/jpeg"))],
                headers=uploader,
            )
            response.raise_for_status()

        submit_ours = await timed_async(submit, N_SUBMIT, warmup=3)
        submit_raw = timed(lambda: _hash_work(photo), N_SUBMIT, warmup=3)

        consent = (
            await http.post("/v1/consents", json={"form": next(forms)}, headers=uploader)
        ).json()
        await http.post(
            f"/v1/consents/{consent['consent_id']}/grants",
            json={"client_id": generator_id},
            headers=uploader,
        )
        token = (
            await http.post(
                "/v1/tokens",
                json={"consent_id": consent["consent_id"], "uses": ["reference.generate"]},
                headers=generator,
            )
        ).json()["token"]
        body = {"token": token, "use": "reference.generate"}

        async def verify() -> None:
            response = await http.post("/v1/tokens/verify", json=body, headers=generator)
            if not response.json()["valid"]:
                raise RuntimeError(response.text)

        verify_ours = await load(verify, N_VERIFY, CONCURRENCY)
        jwks = (await http.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    public = keys.load_public_jwk(next(k for k in jwks["keys"] if k["kid"] == kid))
    verify_raw = timed(
        lambda: jwt.decode(token, public, algorithms=["EdDSA"], audience=generator_id),
        N_VERIFY,
    )
    return [
        Row(
            f"POST /v1/tokens/verify (c={CONCURRENCY})",
            verify_ours,
            verify_raw,
            "pyjwt.decode, same token and key",
        ),
        Row(
            "POST /v1/consents, one 4 MP JPEG",
            submit_ours,
            submit_raw,
            "sha256 + Pillow decode + phash + dhash",
        ),
    ]


def run() -> list[Row]:
    [database_url] = database_urls(1)
    with Server(database_url) as server:
        return asyncio.run(_run(server.url, server.admin_key))
