"""POST /v1/provenance/verify on a real signed output with one byte flipped: in a header the
pixels need, in the manifest, in the pixels.

Each answers 200 with the C2PA verdict ``invalid`` and C2PA's codes, as the offline verifier
does for the same bytes, whether or not the pixels decode; ``image`` reports the decoding
apart. Nothing is stored.
"""

from __future__ import annotations

import io
import json

import pytest

from tests.provenance_http.conftest import counts, file_part, picture
from tests.provenance_http.test_sign import flip_pixel_byte, jpeg_segments
from tests.support import assert_problem
from verifier import ImageCorrupt, ImageLimits, decode
from verifier.cli import main as offline_verifier

_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive
_APP11 = 0xEB  # where JPEG carries the C2PA manifest (JUMBF)


def flip_header_byte(data: bytes) -> bytes:
    """One bit of the frame header's sample precision: Pillow cannot parse the header."""
    (start,) = [start for marker, start, _ in jpeg_segments(data) if marker in _SOF]
    changed = bytearray(data)
    changed[start + 4] ^= 0x01
    return bytes(changed)


def flip_manifest_byte(data: bytes, needle: bytes) -> bytes:
    """One bit of ``needle`` where the manifest states it: the assertion no longer hashes."""
    app11 = [(start, end) for marker, start, end in jpeg_segments(data) if marker == _APP11]
    position = next(
        start + found for start, end in app11 if (found := data[start:end].find(needle)) >= 0
    )
    changed = bytearray(data)
    changed[position + len(needle) - 1] ^= 0x01
    return bytes(changed)


def decodes(data: bytes) -> bool:
    try:
        decode(data, ImageLimits(max_bytes=10**7, max_pixels=10**7), "image/jpeg")
    except ImageCorrupt:
        return False
    return True


TAMPERINGS = [
    # (how, pixels still decode, a code C2PA gives, how the registry may find our output)
    pytest.param(flip_header_byte, False, "assertion.dataHash.mismatch", {None}, id="header"),
    pytest.param(
        lambda data: flip_manifest_byte(data, b"gen-1"),
        True,
        "assertion.hashedURI.mismatch",
        # The same pixels: found by its pHash, never by SHA-256 (not the bytes we signed).
        {"perceptual"},
        id="manifest",
    ),
    # A flipped bit in the entropy-coded data garbles the rest of its scan: maybe too far for
    # the pHash, and then maybe still near enough for the watermark, whose random key moves
    # the pHash of a small image by a few bits more or less from one run to the next.
    pytest.param(
        flip_pixel_byte,
        True,
        "assertion.dataHash.mismatch",
        {None, "perceptual", "watermark"},
        id="pixels",
    ),
]


@pytest.mark.parametrize(("tamper", "decoded", "code", "found"), TAMPERINGS)
async def test_a_flipped_byte_is_invalid_with_c2pa_codes_as_offline(
    world, signed, database_url, tmp_path, tamper, decoded, code, found
):
    response, _, _ = signed
    tampered = tamper(response.content)
    assert decodes(tampered) is decoded
    before = await counts(database_url)

    answer = await world.http.post("/v1/provenance/verify", files=file_part(tampered))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "invalid"
    assert code in body["failure_codes"]
    image = body["image"]
    assert (image["media_type"], image["decoded"]) == ("image/jpeg", decoded)
    if decoded:
        assert image["problem"] is None
        assert (image["width"], image["height"]) == (160, 120)
    else:
        assert image["problem"] == "image_corrupt"
        assert image["detail"] == "the JPEG header does not parse"
        assert image["width"] is None
    registry = body["registry"]
    assert (registry["match"] if registry is not None else None) in found
    assert await counts(database_url) == before
    # The offline verifier, given the same bytes and our published anchor, agrees.
    anchor = (await world.http.get("/v1/keys/c2pa/anchor")).content
    assert offline(tmp_path, tampered, anchor) == (1, "invalid", body["failure_codes"])


def offline(tmp_path, data: bytes, anchor: bytes | None = None):
    """(exit status, state, failure codes) of ``python -m verifier verify`` on ``data``."""
    (tmp_path / "image.jpg").write_bytes(data)
    argv = ["verify", str(tmp_path / "image.jpg"), "--json"]
    if anchor is not None:
        (tmp_path / "anchor.pem").write_bytes(anchor)
        argv += ["--trust", str(tmp_path / "anchor.pem")]
    out = io.StringIO()
    exit_code = offline_verifier(argv, stdout=out)
    report = json.loads(out.getvalue())["report"]
    return exit_code, report["state"], report["failure_codes"]


async def test_our_untouched_output_decodes(world, signed):
    response, _, _ = signed

    body = (
        await world.http.post("/v1/provenance/verify", files=file_part(response.content))
    ).json()

    assert body["state"] == "trusted"
    assert body["image"] == {
        "media_type": "image/jpeg",
        "decoded": True,
        "width": 160,
        "height": 120,
        "problem": None,
        "detail": None,
    }


async def test_a_truncated_image_is_verified_but_not_looked_up(client, database_url, tmp_path):
    truncated = picture(6)[:400]
    before = await counts(database_url)

    verified = await client.post("/v1/provenance/verify", files=file_part(truncated, "t.jpg"))
    looked_up = await client.post("/v1/provenance/lookup", files=file_part(truncated, "t.jpg"))

    assert verified.status_code == 200, verified.text
    body = verified.json()
    # The SDK cannot parse the JPEG either: invalid, as offline.
    assert body["state"] == "invalid"
    assert offline(tmp_path, truncated) == (1, "invalid", body["failure_codes"])
    assert body["image"]["decoded"] is False
    assert body["image"]["problem"] == "image_corrupt"
    assert body["registry"] is None
    # Lookup matches by the pixels: without them there is nothing to look up.
    assert_problem(looked_up, 422, "image_corrupt")
    assert await counts(database_url) == before
