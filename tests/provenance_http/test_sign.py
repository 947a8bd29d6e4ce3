"""POST /v1/provenance/sign end to end: real consent tokens in, a trusted C2PA output out,
checked with the c2pa SDK and the offline CLI using only what the service publishes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import c2pa
import pytest

from tests.consent_http import helpers
from tests.provenance_http.conftest import counts, file_part, picture, reencode
from tests.support import assert_problem
from verifier import verify_assertion

REPO = Path(__file__).resolve().parents[2]
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def sdk_read(data: bytes, media_type: str, anchor_pem: str) -> dict:
    settings = {"verify": {"remote_manifest_fetch": False}, "trust": {"trust_anchors": anchor_pem}}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader(media_type, io.BytesIO(data), None, context) as reader,
    ):
        return json.loads(reader.json())


def jpeg_segments(data: bytes):
    """(marker, start, end) of each header segment of a JPEG, up to and including SOS."""
    segments, position = [], 2
    while True:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append((marker, position, position + 2 + length))
        if marker == 0xDA:
            return segments
        position += 2 + length


def flip_pixel_byte(data: bytes) -> bytes:
    """One bit changed inside the entropy-coded pixel data (not a marker)."""
    changed = bytearray(data)
    _, _, scan_start = jpeg_segments(data)[-1]
    position = scan_start + 40
    while changed[position] in {0xFE, 0xFF} or changed[position - 1] == 0xFF:
        position += 1
    changed[position] ^= 0x01
    return bytes(changed)


async def rows(database_url: str, query: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/webp"])
async def test_signed_output_reads_back_trusted_with_only_our_published_anchor(
    world, sign_output, database_url, media_type
):
    consent, token = await world.granted_token()
    image = picture(21, media_type=media_type)

    response = await sign_output(image, tokens=[token["token"]], media_type=media_type)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "no-store"
    output_id = response.headers["provenance-output-id"]
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).text
    store = sdk_read(response.content, media_type, anchor)
    assert store["validation_state"] == "Trusted"
    active = store["manifests"][store["active_manifest"]]
    labels = {a["label"]: a["data"] for a in active["assertions"]}
    actions = next(v for k, v in labels.items() if k.startswith("c2pa.actions"))["actions"]
    assert actions[0]["digitalSourceType"] == TRAINED
    assert actions[0]["softwareAgent"]["name"] == "example-diffusion-2"
    consent_assertion = labels["org.consent-registry.consent"]
    assert consent_assertion["generation_id"] == "gen-1"
    assert consent_assertion["consents"][0]["jti"] == token["jti"]
    # The reference photo is an ingredient named by its consent and status list: the
    # manifest is public and never erasable, so it carries no hash of the photo.
    [ingredient] = active["ingredients"]
    asset = consent["assets"][0]
    assert ingredient["instance_id"] == f"consent:{consent['consent_id']}/{asset['asset_id']}"
    status_uri = consent_assertion["consents"][0]["status"]["status_list"]["uri"]
    assert ingredient["informational_URI"] == status_uri
    assert asset["sha256"] not in json.dumps(store)

    [row] = await rows(database_url, "SELECT * FROM signed_outputs")
    assert row["output_id"] == output_id
    assert row["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert row["client_id"] == world.generator.client_id
    assert row["tenant"] == "genco"
    [use] = await rows(database_url, "SELECT * FROM signed_output_consents")
    assert (use["jti"], use["consent_id"]) == (token["jti"], consent["consent_id"])
    [event] = await rows(
        database_url, "SELECT * FROM audit_events WHERE action = 'provenance.output_signed'"
    )
    assert event["subject_id"] == output_id
    payload = (
        event["payload"] if isinstance(event["payload"], dict) else json.loads(event["payload"])
    )
    assert payload["consent_jtis"] == [token["jti"]]
    assert payload["sha256"] == row["sha256"]
    assert "phash" not in payload
    assert token["token"] not in json.dumps(payload)


async def test_detached_assertion_verifies_against_the_jwks(world, signed):
    response, token, _ = signed
    jwks = (await world.http.get("/.well-known/jwks.json")).json()
    digest = hashlib.sha256(response.content).hexdigest()

    claims = verify_assertion(response.headers["provenance-assertion"], jwks, sha256=digest)

    assert claims.jti == response.headers["provenance-output-id"]
    assert claims.generation_id == "gen-1"
    assert [c.jti for c in claims.consents] == [token["jti"]]
    assert claims.decision is None


async def test_verify_finds_our_output_with_live_consent_status(world, signed):
    response, token, consent = signed

    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()

    assert body["state"] == "trusted"
    assert body["ai_generated"] is True
    assert body["generation_id"] == "gen-1"
    registry = body["registry"]
    assert registry["match"] == "sha256"
    assert registry["distance"] == 0
    assert registry["output"]["output_id"] == response.headers["provenance-output-id"]
    assert registry["output"]["assertion"] == response.headers["provenance-assertion"]
    assert [(c["jti"], c["status"]) for c in registry["output"]["consents"]] == [
        (token["jti"], "valid")
    ]
    # Public: neither the tenant, the client nor the consent id.
    text = json.dumps(registry)
    assert world.generator.client_id not in text
    assert consent["consent_id"] not in text


async def test_offline_cli_passes_on_the_output_and_fails_on_a_flipped_byte(
    world, signed, tmp_path
):
    response, token, _ = signed
    http = world.http
    status_path = urlsplit(json.loads(_claims(token["token"]))["status"]["status_list"]["uri"])
    published = {
        "anchor.pem": (await http.get("/v1/keys/c2pa/anchor")).content,
        "jwks.json": (await http.get("/.well-known/jwks.json")).content,
        "status.jwt": (await http.get(status_path.path)).content,
        "output.jpg": response.content,
        "tampered.jpg": flip_pixel_byte(response.content),
    }
    for name, content in published.items():
        (tmp_path / name).write_bytes(content)

    def run(image: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "verifier",
                "verify",
                str(tmp_path / image),
                "--trust",
                str(tmp_path / "anchor.pem"),
                "--jwks",
                str(tmp_path / "jwks.json"),
                "--assertion",
                response.headers["provenance-assertion"],
                "--status-list",
                str(tmp_path / "status.jwt"),
                "--json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    good, bad = run("output.jpg"), run("tampered.jpg")

    assert good.returncode == 0, good.stdout + good.stderr
    outcome = json.loads(good.stdout)
    assert (outcome["verdict"], outcome["reasons"]) == ("verified", [])
    assert [(c["jti"], c["status"]) for c in outcome["consents"]] == [(token["jti"], "valid")]
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert json.loads(bad.stdout)["report"]["state"] == "invalid"


def _claims(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


async def test_flipped_byte_is_invalid_with_data_hash_mismatch(world, signed):
    response, _, _ = signed

    body = (
        await world.http.post(
            "/v1/provenance/verify", files=file_part(flip_pixel_byte(response.content))
        )
    ).json()

    assert body["state"] == "invalid"
    assert "assertion.dataHash.mismatch" in body["failure_codes"]
    # Never reported as our exact output: the bytes are not the ones we signed.
    assert body["registry"] is None or body["registry"]["match"] == "perceptual"


async def test_our_manifest_moved_onto_another_image_is_invalid(world, signed):
    response, _, _ = signed
    other = picture(99)
    manifest_segments = b"".join(
        response.content[start:end]
        for marker, start, end in jpeg_segments(response.content)
        if marker == 0xEB
    )
    assert manifest_segments

    body = (
        await world.http.post(
            "/v1/provenance/verify", files=file_part(other[:2] + manifest_segments + other[2:])
        )
    ).json()

    assert body["state"] == "invalid"
    assert body["failure_codes"]
    assert body["registry"] is None


async def test_stripped_manifest_is_absent_and_lookup_finds_the_original(world, signed):
    response, token, _ = signed
    stripped = reencode(response.content, quality=85)

    verified = (await world.http.post("/v1/provenance/verify", files=file_part(stripped))).json()
    looked_up = await world.http.post("/v1/provenance/lookup", files=file_part(stripped))

    assert verified["state"] == "absent"
    assert verified["registry"]["match"] == "perceptual"
    assert verified["registry"]["output"]["output_id"] == response.headers["provenance-output-id"]
    assert looked_up.status_code == 200, looked_up.text
    [match] = looked_up.json()["matches"]
    assert match["output"]["output_id"] == response.headers["provenance-output-id"]
    assert match["output"]["assertion"] == response.headers["provenance-assertion"]
    assert match["distance"] <= looked_up.json()["max_distance"]
    assert match["output"]["consents"][0]["jti"] == token["jti"]


async def test_edited_reference_is_a_composite(world, sign_output):
    _, token = await world.granted_token()

    response = await sign_output(picture(22), tokens=[token["token"]], edited_reference=True)

    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()
    assert body["digital_source_type"] == COMPOSITE
    assert body["state"] == "trusted"


async def test_an_output_without_reference_photos_signs_with_no_tokens(world, sign_output):
    response = await sign_output(picture(23), tokens=[])

    assert response.status_code == 200, response.text
    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()
    assert body["registry"]["output"]["consents"] == []


async def test_withdrawal_lists_the_outputs_and_verify_shows_the_consent_revoked(world, signed):
    response, token, consent = signed
    output_id = response.headers["provenance-output-id"]

    withdrawn = await world.http.post(
        f"/v1/consents/{consent['consent_id']}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, consent["consent_id"])},
        headers=world.uploader.headers,
    )
    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()

    assert withdrawn.status_code == 200, withdrawn.text
    [affected] = withdrawn.json()["outputs"]
    assert affected["output_id"] == output_id
    assert affected["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert affected["client_id"] == world.generator.client_id
    assert [(c["jti"], c["status"]) for c in body["registry"]["output"]["consents"]] == [
        (token["jti"], "revoked")
    ]


# Refusals: nothing signed, nothing recorded, no audit event.


async def _refused(database_url, call, status, code):
    before = await counts(database_url)
    response = await call()
    body = assert_problem(response, status, code)
    assert await counts(database_url) == before
    assert "provenance-assertion" not in response.headers
    return body


async def test_garbage_token_is_422(world, sign_output, database_url):
    body = await _refused(
        database_url,
        lambda: sign_output(picture(30), tokens=["not-a-token"]),
        422,
        "consent_token_invalid",
    )
    assert body["tokens"] == [{"index": 0, "reasons": ["malformed"]}]


async def test_revoked_token_is_422(world, sign_output, database_url):
    consent, token = await world.granted_token()
    withdrawn = await world.http.post(
        f"/v1/consents/{consent['consent_id']}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, consent["consent_id"])},
        headers=world.uploader.headers,
    )
    assert withdrawn.status_code == 200, withdrawn.text

    body = await _refused(
        database_url,
        lambda: sign_output(picture(31), tokens=[token["token"]]),
        422,
        "consent_token_invalid",
    )
    assert body["tokens"] == [{"index": 0, "reasons": ["revoked"]}]


async def test_expired_token_is_422_token_expired(world, app_with, database_url):
    # A service with REGISTRY_TOKEN_LEEWAY=0 on the same database: a 1-second token is
    # expired from its exp on.
    consent = await world.consent()
    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"], ttl_seconds=1)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    exp = json.loads(_claims(token))["exp"]
    await asyncio.sleep(max(0.0, exp + 0.1 - time.time()))

    async with app_with(token_leeway=0) as strict:

        def sign(tokens: list[str], seed: int):
            metadata = {"generation_id": "gen-1", "model": "example-diffusion-2"}
            return lambda: strict.post(
                "/v1/provenance/sign",
                files={
                    "file": ("output.jpeg", picture(seed), "image/jpeg"),
                    "metadata": (None, json.dumps({**metadata, "consent_tokens": tokens})),
                },
                headers=world.generator.headers,
            )

        body = await _refused(database_url, sign([token], 36), 422, "token_expired")
        assert body["tokens"] == [{"index": 0, "reasons": ["expired"]}]
        # Expiry beside any other failure is not fixed by fresh tokens: the general code.
        body = await _refused(
            database_url, sign([token, "garbage"], 37), 422, "consent_token_invalid"
        )
        assert body["tokens"] == [
            {"index": 0, "reasons": ["expired"]},
            {"index": 1, "reasons": ["malformed"]},
        ]
    assert await rows(database_url, "SELECT * FROM signed_outputs") == []
    assert (
        await rows(
            database_url, "SELECT * FROM audit_events WHERE action = 'provenance.output_signed'"
        )
        == []
    )


async def test_token_of_another_generator_is_422(world, sign_output, make_client, database_url):
    other_id, other_headers = await make_client("generator", tenant="rival", name="rival")
    consent = await world.consent()
    assert (await world.grant(consent["consent_id"], other_id)).status_code == 201
    issued = await world.http.post(
        "/v1/tokens",
        json={"consent_id": consent["consent_id"], "uses": ["reference.generate"]},
        headers=other_headers,
    )
    assert issued.status_code == 201, issued.text

    body = await _refused(
        database_url,
        lambda: sign_output(picture(32), tokens=[issued.json()["token"]]),
        422,
        "consent_token_invalid",
    )
    assert body["tokens"] == [{"index": 0, "reasons": ["audience"]}]


async def test_one_bad_token_among_good_ones_refuses_all(world, sign_output, database_url):
    _, token = await world.granted_token()

    body = await _refused(
        database_url,
        lambda: sign_output(picture(33), tokens=[token["token"], token["token"][:-4] + "AAAA"]),
        422,
        "consent_token_invalid",
    )
    assert body["tokens"] == [{"index": 1, "reasons": ["signature"]}]


async def test_the_same_token_twice_is_422(world, sign_output, database_url):
    _, token = await world.granted_token()

    body = await _refused(
        database_url,
        lambda: sign_output(picture(34), tokens=[token["token"], token["token"]]),
        422,
        "consent_token_invalid",
    )
    assert body["tokens"] == [{"index": 1, "reasons": ["duplicate"]}]


async def test_unauthenticated_sign_is_401(world, sign_output, database_url):
    await _refused(
        database_url,
        lambda: sign_output(picture(35), tokens=[], headers={"X-None": "1"}),
        401,
        "unauthenticated",
    )


async def test_uploader_calling_sign_is_403(world, sign_output, database_url):
    await _refused(
        database_url,
        lambda: sign_output(picture(36), tokens=[], headers=world.uploader.headers),
        403,
        "forbidden",
    )


async def test_same_generation_signed_twice_is_409(world, sign_output, database_url):
    _, token = await world.granted_token()
    first = await sign_output(picture(37), tokens=[token["token"]], generation_id="gen-dup")
    assert first.status_code == 200, first.text

    await _refused(
        database_url,
        lambda: sign_output(picture(38), tokens=[token["token"]], generation_id="gen-dup"),
        409,
        "generation_already_signed",
    )


async def test_unknown_decision_is_422(world, sign_output, database_url):
    await _refused(
        database_url,
        lambda: sign_output(picture(39), tokens=[], decision_id="dec-unknown"),
        422,
        "decision_unknown",
    )


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        (
            '{"generation_id": "g", "generation_id": "h", "model": "m", "consent_tokens": []}',
            "duplicate_key",
        ),
        ('{"generation_id": "g", "model": "m", "consent_tokens": [], "extra": 1}', "unknown_field"),
        ('{"generation_id": "g", "model": "m"}', "missing_field"),
        ('{"generation_id": "g", "model": 7, "consent_tokens": []}', "invalid_type"),
        ('{"generation_id": "g\\u0000", "model": "m", "consent_tokens": []}', "invalid_value"),
        ('{"generation_id": "", "model": "m", "consent_tokens": []}', "invalid_value"),
        ("{not json", "malformed_json"),
    ],
    ids=[
        "duplicate-key",
        "unknown-field",
        "missing-field",
        "wrong-type",
        "control-char",
        "empty-id",
        "not-json",
    ],
)
async def test_metadata_is_strict_json(world, sign_output, database_url, metadata, code):
    await _refused(
        database_url,
        lambda: sign_output(picture(40), tokens=[], metadata=metadata),
        400,
        code,
    )


async def test_missing_metadata_part_is_400(world, database_url):
    await _refused(
        database_url,
        lambda: world.http.post(
            "/v1/provenance/sign", files=file_part(picture(41)), headers=world.generator.headers
        ),
        400,
        "part_missing",
    )


@pytest.mark.parametrize(
    ("data", "media_type", "status", "code"),
    [
        (picture(42)[:300], "image/jpeg", 422, "image_corrupt"),
        (b"\x00" * 2048, "image/jpeg", 415, "image_format_not_allowed"),
        (picture(43, media_type="image/png"), "image/jpeg", 422, "image_type_mismatch"),
    ],
    ids=["truncated", "random", "type-mismatch"],
)
async def test_bad_images_are_refused_before_signing(
    world, sign_output, database_url, data, media_type, status, code
):
    await _refused(
        database_url,
        lambda: sign_output(data, tokens=[], media_type=media_type),
        status,
        code,
    )


async def test_oversized_upload_on_sign_is_413(world, app_with, database_url):
    async with app_with(max_image_bytes=10_000) as http:
        before = await counts(database_url)
        response = await http.post(
            "/v1/provenance/sign",
            files={
                "file": ("big.jpg", picture(44) + b"\0" * 20_000, "image/jpeg"),
                "metadata": (None, '{"generation_id":"g","model":"m","consent_tokens":[]}'),
            },
            headers=world.generator.headers,
        )
        assert_problem(response, 413, "image_too_large")
        assert await counts(database_url) == before
