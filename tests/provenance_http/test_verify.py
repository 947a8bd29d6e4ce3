"""POST /v1/provenance/verify: every shared C2PA fixture, and every bad upload, over HTTP."""

from __future__ import annotations

import io
import os
import struct
import zlib

import c2pa
import pytest

from keys.c2pa_identity import generate_dev_identity
from tests.provenance_http.conftest import FIXTURES, counts, file_part, picture
from tests.support import assert_problem

MEDIA = {"jpg": "image/jpeg", "png": "image/png"}
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
CREATED = {"action": "c2pa.created", "digitalSourceType": CAPTURE}

# (file, state with no anchors but ours, state with the C2PA test anchors, a failure code)
FIXTURE_STATES = [
    ("C.jpg", "valid_untrusted", "trusted", None),
    ("CA.jpg", "valid_untrusted", "trusted", None),
    ("boxhash.jpg", "valid_untrusted", "trusted", None),
    ("C_with_CAWG_data.jpg", "valid_untrusted", "valid_untrusted", None),
    ("XCA.jpg", "invalid", "invalid", "assertion.dataHash.mismatch"),
    ("E-sig-CA.jpg", "invalid", "invalid", "claimSignature.mismatch"),
    ("no_manifest.jpg", "absent", "absent", None),
    ("libpng-test.png", "absent", "absent", None),
    ("sample1.png", "absent", "absent", None),
]


async def verify(http, data: bytes, name: str, media_type: str):
    return await http.post("/v1/provenance/verify", files=file_part(data, name, media_type))


@pytest.mark.parametrize(("name", "plain", "anchored_state", "code"), FIXTURE_STATES)
async def test_every_shared_fixture_gets_its_documented_state(
    client, anchored, name, plain, anchored_state, code
):
    data = (FIXTURES / name).read_bytes()
    media_type = MEDIA[name.rsplit(".", 1)[1]]

    without = await verify(client, data, name, media_type)
    with_anchors = await verify(anchored, data, name, media_type)

    assert without.status_code == 200, without.text
    assert with_anchors.status_code == 200, with_anchors.text
    assert without.json()["state"] == plain
    assert with_anchors.json()["state"] == anchored_state
    assert with_anchors.json()["registry"] is None
    if code is not None:
        assert code in with_anchors.json()["failure_codes"]


async def test_untrusted_signer_reads_as_untrusted_not_absent(client):
    body = (await verify(client, (FIXTURES / "C.jpg").read_bytes(), "C.jpg", "image/jpeg")).json()

    assert "signingCredential.untrusted" in body["failure_codes"]
    assert body["signer"]["common_name"] == "C2PA Signer"
    assert body["actions"][0]["action"] == "c2pa.created"


async def test_cawg_identity_failure_is_reported(anchored):
    data = (FIXTURES / "C_with_CAWG_data.jpg").read_bytes()

    body = (await verify(anchored, data, "c.jpg", "image/jpeg")).json()

    assert "cawg.x509.credential.untrusted" in body["failure_codes"]
    assert body["cawg_identities"]


def sdk_sign(data: bytes, manifest: dict, identity, *, remote_url: str | None = None) -> bytes:
    signer = c2pa.Signer.from_callback(
        identity.signer.sign, c2pa.C2paSigningAlg.ES256, identity.chain_pem, None
    )
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    builder = c2pa.Builder(manifest, context)
    if remote_url is not None:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    output = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(data), output)
    signer.close()
    context.close()
    return output.getvalue()


def manifest(title: str = "out.jpg", **extra) -> dict:
    return {
        "claim_generator_info": [{"name": "someone-else", "version": "1"}],
        "title": title,
        "format": "image/jpeg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [CREATED]}}],
        **extra,
    }


async def test_signer_not_chaining_to_an_anchor_is_never_trusted(client, anchored):
    stranger = generate_dev_identity("Stranger Signer", organization="Someone Else")
    data = sdk_sign(picture(3), manifest(), stranger)

    for http in (client, anchored):
        body = (await verify(http, data, "s.jpg", "image/jpeg")).json()
        assert body["state"] == "valid_untrusted"
        assert "signingCredential.untrusted" in body["failure_codes"]


async def test_remote_only_manifest_is_reported_without_any_request(client):
    import http.server
    import threading

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa"
        stranger = generate_dev_identity("Remote Signer")
        data = sdk_sign(picture(4), manifest(), stranger, remote_url=url)

        response = await verify(client, data, "r.jpg", "image/jpeg")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "remote_manifest"
    assert response.json()["remote_url"] == url
    assert requests == []


async def test_very_long_manifest_strings_come_back_bounded_and_escaped(client):
    stranger = generate_dev_identity("Long Strings")
    hostile = "<script>alert(1)</script>" + "A" * 100_000 + '"\n\u202e'
    data = sdk_sign(
        picture(5),
        {
            "claim_generator_info": [{"name": hostile, "version": "1"}],
            "title": hostile,
            "format": "image/jpeg",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {"actions": [{**CREATED, "softwareAgent": hostile}]},
                }
            ],
        },
        stranger,
    )

    response = await verify(client, data, "l.jpg", "image/jpeg")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    # JSON escapes what it must; no field carries the whole 100,000 characters.
    assert len(response.content) < 20_000
    body = response.json()
    assert "[truncated" in body["claim_generator"]
    assert "[truncated" in body["actions"][0]["software_agent"]


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


BAD_UPLOADS = [
    # (bytes, file name, declared type, status, code). A truncated image is verified all the
    # same (test_verify_tampered.py); only lookup refuses it.
    pytest.param(
        os.urandom(4096), "r.jpg", "image/jpeg", 415, "image_format_not_allowed", id="random"
    ),
    pytest.param(
        png_declaring(20_000, 20_000),
        "big.png",
        "image/png",
        422,
        "image_too_many_pixels",
        id="png-20000x20000",
    ),
    pytest.param(
        picture(7, media_type="image/png"),
        "x.png",
        "image/jpeg",
        422,
        "image_type_mismatch",
        id="declared-type-vs-bytes",
    ),
    pytest.param(
        picture(8, media_type="image/png"),
        "photo.jpg",
        "application/octet-stream",
        422,
        "image_type_mismatch",
        id="extension-vs-bytes",
    ),
    pytest.param(
        picture(9),
        "x.jpg",
        "text/plain",
        422,
        "image_type_mismatch",
        id="text-declared",
    ),
    pytest.param(
        b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;",
        "a.gif",
        "image/gif",
        415,
        "image_format_not_allowed",
        id="gif-not-allowed",
    ),
]


@pytest.mark.parametrize(("data", "name", "media_type", "status", "code"), BAD_UPLOADS)
async def test_bad_uploads_get_a_problem_and_nothing_is_stored(
    client, database_url, data, name, media_type, status, code
):
    before = await counts(database_url)

    for path in ("/v1/provenance/verify", "/v1/provenance/lookup"):
        response = await client.post(path, files=file_part(data, name, media_type))
        assert_problem(response, status, code)

    assert await counts(database_url) == before


async def test_oversized_upload_is_413(app_with, database_url):
    async with app_with(max_image_bytes=10_000) as http:
        before = await counts(database_url)
        big = picture(10, size=(400, 300)) + b"\0" * 20_000
        for path in ("/v1/provenance/verify", "/v1/provenance/lookup"):
            response = await http.post(path, files=file_part(big))
            assert_problem(response, 413, "image_too_large")

    assert await counts(database_url) == before


async def test_request_larger_than_any_part_allows_is_refused_before_reading(app_with):
    async with app_with(max_image_bytes=10_000) as http:
        response = await http.post(
            "/v1/provenance/verify",
            content=b"x" * 200_000,
            headers={"Content-Type": "multipart/form-data; boundary=abc"},
        )

    assert_problem(response, 413, "body_too_large")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {
                "content": b"--abc--\r\n",
                "headers": {"Content-Type": "multipart/form-data; boundary=abc"},
            },
            400,
            "part_missing",
        ),
        (
            {"files": {"file": ("a.jpg", b"", "image/jpeg"), "extra": ("b", b"x", "text/plain")}},
            400,
            "part_invalid",
        ),
        ({"json": {"file": "x"}}, 415, "unsupported_media_type"),
        (
            {
                "content": b'--abc\r\nContent-Disposition: form-data; name="file"\r\n\r\nxx',
                "headers": {"Content-Type": "multipart/form-data; boundary=abc"},
            },
            400,
            "part_invalid",
        ),
    ],
    ids=["no-file-part", "unknown-part", "not-multipart", "unterminated"],
)
async def test_malformed_requests_are_4xx(client, kwargs, status, code):
    response = await client.post("/v1/provenance/verify", **kwargs)

    assert_problem(response, status, code)


async def test_the_same_part_twice_is_refused(client):
    image = picture(11)
    response = await client.post(
        "/v1/provenance/verify",
        files=[("file", ("a.jpg", image, "image/jpeg")), ("file", ("b.jpg", image, "image/jpeg"))],
    )

    assert_problem(response, 400, "part_invalid")


async def test_public_endpoints_are_rate_limited_per_address(app_with):
    image = picture(12)
    async with app_with(rate_limit_per_minute=6) as http:
        statuses = [
            (await http.post("/v1/provenance/lookup", files=file_part(image))).status_code
            for _ in range(12)
        ]

    assert statuses[:10] == [200] * 10
    assert statuses[-1] == 429


async def test_image_work_past_its_time_bound_is_503(app_with, database_url):
    async with app_with(image_work_timeout=0.000001) as http:
        response = await verify(http, picture(13, size=(1200, 900)), "s.jpg", "image/jpeg")

    assert_problem(response, 503, "image_work_timeout")
