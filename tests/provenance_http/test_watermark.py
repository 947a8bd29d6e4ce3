"""The watermark soft binding end to end: real signing (C2PA and the watermark) over HTTP, a
real database, and copies stripped of their manifest found again by their watermark through
/v1/provenance/lookup and /verify. Bad input reads as no match, never as an error."""

from __future__ import annotations

import importlib.resources
import io

import asyncpg
import pytest
from PIL import Image

from tests.provenance_http.conftest import file_part, reencode
from tests.provenance_http.test_sign import sdk_read
from tests.support import assert_problem
from verifier import watermark


def photo(name: str = "astronaut.png", quality: int = 92) -> bytes:
    """A real photo (scikit-image's bundled ones) as a JPEG without a manifest."""
    folder = importlib.resources.files("skimage") / "data"
    with (folder / name).open("rb") as file, Image.open(file) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


async def stored_key(database_url: str, output_id: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT watermark_key FROM signed_outputs WHERE output_id = $1", output_id
        )
    finally:
        await conn.close()


async def test_the_output_carries_the_key_its_manifest_declares(world, sign_output, database_url):
    response = await sign_output(photo(), tokens=[])

    assert response.status_code == 200, response.text
    output_id = response.headers["provenance-output-id"]
    key = await stored_key(database_url, output_id)
    assert watermark.valid_key(key)
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).text
    store = sdk_read(response.content, "image/jpeg", anchor)
    assert store["validation_state"] == "Trusted"
    active = store["manifests"][store["active_manifest"]]
    [binding] = [a["data"] for a in active["assertions"] if a["label"] == "c2pa.soft-binding"]
    assert binding == {"alg": watermark.ALGORITHM, "blocks": [{"scope": {}, "value": key}]}
    with Image.open(io.BytesIO(response.content)) as image:
        assert watermark.read(image).key == key


async def test_the_mark_is_invisible_psnr_at_least_40_db(sign_output):
    original = photo("coffee.png")

    response = await sign_output(original, tokens=[])

    assert response.status_code == 200, response.text
    with (
        Image.open(io.BytesIO(original)) as before,
        Image.open(io.BytesIO(response.content)) as after,
    ):
        assert after.size == before.size
        assert watermark.psnr(before, after) >= 40.0


async def test_a_copy_stripped_and_re_encoded_at_q75_is_found_by_its_watermark(
    world, signed, sign_output, database_url
):
    response = await sign_output(photo("chelsea.png"), tokens=[], generation_id="gen-wm")
    assert response.status_code == 200, response.text
    output_id = response.headers["provenance-output-id"]
    stripped = reencode(response.content, quality=75)

    looked_up = await world.http.post("/v1/provenance/lookup", files=file_part(stripped))
    verified = await world.http.post("/v1/provenance/verify", files=file_part(stripped))

    assert looked_up.status_code == 200, looked_up.text
    body = looked_up.json()
    assert body["watermark_key"] == await stored_key(database_url, output_id)
    first = body["matches"][0]
    assert (first["found_by"], first["output"]["output_id"]) == ("watermark", output_id)
    assert first["output"]["generation_id"] == "gen-wm"
    assert first["output"]["assertion"] == response.headers["provenance-assertion"]
    # The other output (signed by the fixture) is not named by this copy's watermark.
    assert all(m["found_by"] == "perceptual" for m in body["matches"][1:])
    assert verified.status_code == 200, verified.text
    report = verified.json()
    assert report["state"] == "absent"
    assert report["watermark"] == {
        "key": body["watermark_key"],
        "output_id": output_id,
        "found_by": "watermark",
    }
    assert report["registry"]["output"]["output_id"] == output_id


async def test_found_by_watermark_alone_when_the_phash_is_too_far(world, app_with):
    async with app_with(provenance_lookup_max_distance=0) as http:
        response = await http.post(
            "/v1/provenance/sign",
            files={
                "file": ("o.jpg", photo("rocket.jpg"), "image/jpeg"),
                "metadata": (None, '{"generation_id":"g-far","model":"m","consent_tokens":[]}'),
            },
            headers=world.generator.headers,
        )
        assert response.status_code == 200, response.text
        # Half the size, then q50: the pHash moves, the watermark stays.
        with Image.open(io.BytesIO(response.content)) as image:
            small = image.resize((image.width // 2, image.height // 2))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=50)
        body = (await http.post("/v1/provenance/lookup", files=file_part(out.getvalue()))).json()
        verified = (
            await http.post("/v1/provenance/verify", files=file_part(out.getvalue()))
        ).json()

    [match] = body["matches"]
    assert match["found_by"] == "watermark"
    assert match["output"]["output_id"] == response.headers["provenance-output-id"]
    assert verified["registry"]["output"]["output_id"] == match["output"]["output_id"]
    assert verified["registry"]["match"] in {"watermark", "perceptual"}
    if match["distance"] > 0:
        assert verified["registry"]["match"] == "watermark"


async def test_an_unmarked_photo_finds_nothing_by_watermark(world, signed):
    body = (await world.http.post("/v1/provenance/lookup", files=file_part(photo()))).json()

    assert body["watermark_key"] is None
    assert all(m["found_by"] == "perceptual" for m in body["matches"])


async def test_a_tiny_image_is_no_match_and_no_error(world, signed):
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tiny, "JPEG")

    looked_up = await world.http.post("/v1/provenance/lookup", files=file_part(tiny.getvalue()))
    verified = await world.http.post("/v1/provenance/verify", files=file_part(tiny.getvalue()))

    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["watermark_key"] is None
    assert looked_up.json()["matches"] == []
    assert verified.status_code == 200, verified.text
    assert verified.json()["watermark"] is None
    assert verified.json()["registry"] is None


async def test_non_image_bytes_are_a_clear_4xx_and_no_leak(world, signed):
    for data in (b"not an image at all", b""):
        for path in ("/v1/provenance/lookup", "/v1/provenance/verify"):
            response = await world.http.post(path, files=file_part(data))
            assert 400 <= response.status_code < 500, (path, data, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "Traceback" not in response.text
            assert "watermark" not in response.text


async def test_a_truncated_jpeg_reads_no_watermark(world, signed):
    truncated = photo()[:600]

    looked_up = await world.http.post("/v1/provenance/lookup", files=file_part(truncated))
    verified = await world.http.post("/v1/provenance/verify", files=file_part(truncated))

    assert 400 <= looked_up.status_code < 500, looked_up.text
    assert "Traceback" not in looked_up.text
    # Verification reports pixels that do not decode beside the C2PA verdict (by design).
    assert verified.status_code == 200, verified.text
    assert verified.json()["image"]["decoded"] is False
    assert verified.json()["watermark"] is None


async def test_an_image_too_small_to_mark_is_signed_unmarked(sign_output, database_url):
    small = io.BytesIO()
    Image.new("RGB", (watermark.MIN_SIDE - 1, 48), (40, 90, 140)).save(small, "JPEG")

    response = await sign_output(small.getvalue(), tokens=[])

    assert response.status_code == 200, response.text
    assert await stored_key(database_url, response.headers["provenance-output-id"]) is None


async def test_the_watermark_can_be_turned_off(world, app_with, database_url):
    async with app_with(provenance_watermark=False) as http:
        response = await http.post(
            "/v1/provenance/sign",
            files={
                "file": ("o.jpg", photo(), "image/jpeg"),
                "metadata": (None, '{"generation_id":"g-off","model":"m","consent_tokens":[]}'),
            },
            headers=world.generator.headers,
        )

    assert response.status_code == 200, response.text
    assert await stored_key(database_url, response.headers["provenance-output-id"]) is None
    with Image.open(io.BytesIO(response.content)) as image:
        assert watermark.read(image).key is None


async def test_two_outputs_cannot_share_a_key_and_the_second_insert_says_so(pool):
    import msgspec
    import pytest

    from registry.provenance import WatermarkKeyTaken, repository
    from tests.provenance_http.test_lookup import new_output

    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO api_clients (client_id, name, tenant, roles, key_hash)"
            " VALUES ('cl_wm', 'wm', 't', '{generator}', '\\x00')"
        )
        first = msgspec.structs.replace(
            new_output(1, "cl_wm", "0000000000000000"), watermark_key="00ff00ff00"
        )
        second = msgspec.structs.replace(
            new_output(2, "cl_wm", "0000000000000001"), watermark_key="00ff00ff00"
        )
        assert await repository.insert_output(conn, first) is not None
        assert await repository.watermark_key_taken(conn, "00ff00ff00")
        with pytest.raises(WatermarkKeyTaken):
            async with conn.transaction():
                await repository.insert_output(conn, second)
        found = await repository.output_by_watermark(conn, "00ff00ff00")
        assert found is not None
        assert found.output_id == first.output_id
        assert await repository.output_by_watermark(conn, "0123456789") is None


async def test_a_key_read_offline_names_its_output_without_the_image(world, sign_output):
    response = await sign_output(photo("coffee.png"), tokens=[], generation_id="gen-by-key")
    assert response.status_code == 200, response.text
    stripped = reencode(response.content, quality=75)
    # What a third party does with the verifier alone: read the key from the pixels.
    with Image.open(io.BytesIO(stripped)) as image:
        key = watermark.read(image).key
    assert key is not None

    found = await world.http.get(f"/v1/provenance/watermarks/{key}")

    assert found.status_code == 200, found.text
    body = found.json()
    assert body["key"] == key
    assert body["output"]["output_id"] == response.headers["provenance-output-id"]
    assert body["output"]["generation_id"] == "gen-by-key"
    assert body["output"]["assertion"] == response.headers["provenance-assertion"]


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("0123456789", 404, "watermark_key_not_found"),
        ("ABCDEF0123", 400, "watermark_key_invalid"),
        ("xyz", 400, "watermark_key_invalid"),
        ("0" * 64, 400, "watermark_key_invalid"),
    ],
    ids=["unknown", "upper-case", "not-hex", "too-long"],
)
async def test_a_bad_or_unknown_key_names_nothing(world, signed, key, status, code):
    response = await world.http.get(f"/v1/provenance/watermarks/{key}")

    assert_problem(response, status, code)


async def test_the_verifier_report_names_the_soft_binding_and_its_key(
    world, sign_output, database_url, tmp_path
):
    import asyncio
    import subprocess
    import sys

    response = await sign_output(photo("camera.png"), tokens=[], generation_id="gen-sb")
    assert response.status_code == 200, response.text
    key = await stored_key(database_url, response.headers["provenance-output-id"])

    verified = await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(response.content)
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "verifier", "verify", str(signed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert verified.status_code == 200, verified.text
    assert verified.json()["soft_bindings"] == [{"alg": watermark.ALGORITHM, "value": key}]
    assert f"soft binding: {watermark.ALGORITHM} (value {key})" in printed.stdout
