"""Templates, signers and consent submission over HTTP, with every bad input the issue names."""

from __future__ import annotations

import base64
import datetime as dt
import importlib.resources
import io
import json

import asyncpg
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar.testing import AsyncTestClient
from PIL import Image

import keys
from moderation.signals import pdq_hash
from registry.app import create_app
from registry.consent.crypto import FieldCipher
from registry.consent.records import AssetData, DataKeys
from tests.consent_http import helpers
from tests.support import ADMIN_KEY, assert_problem, bearer, make_settings

# Templates and the vocabulary.


async def test_uses_vocabulary_is_public_and_versioned(client):
    body = (await client.get("/v1/uses")).json()
    assert body["version"] >= 1
    assert {"reference.generate", "content.explicit"} <= {u["id"] for u in body["uses"]}


async def test_template_is_stored_with_the_hash_of_its_text(world):
    response = await world.http.get(f"/v1/consent-templates/{helpers.TEMPLATE_ID}")
    assert response.status_code == 200
    body = response.json()
    assert body["sha256"] == helpers.TEMPLATE_SHA256
    assert body["text"] == helpers.TEMPLATE_TEXT
    assert body["uses"] == helpers.TEMPLATE_USES


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"uses": ["reference.generate", "mind.read"]}, 422, "use_unknown"),
        ({"uses": []}, 422, "uses_empty"),
        ({"id": "../etc/passwd"}, 422, "template_invalid"),
        ({"text": "   "}, 422, "template_invalid"),
        ({"id": helpers.TEMPLATE_ID}, 409, "template_exists"),
        ({"extra": 1}, 400, "unknown_field"),
    ],
)
async def test_bad_templates_are_refused(world, database_url, changes, status, code):
    body = {"id": "other-v1", "title": "Other", "text": "Other text.", "uses": ["commercial"]}
    body.update(changes)
    before = await helpers.counts(database_url)
    response = await world.http.post("/v1/consent-templates", json=body, headers=world.admin)
    assert_problem(response, status, code)
    assert await helpers.counts(database_url) == before


async def test_only_admins_register_templates_and_unknown_ones_are_404(world):
    body = {"id": "x-v1", "title": "X", "text": "X.", "uses": ["commercial"]}
    response = await world.http.post(
        "/v1/consent-templates", json=body, headers=world.uploader.headers
    )
    assert_problem(response, 403, "forbidden")
    assert_problem(await world.http.get("/v1/consent-templates/nope-v9"), 404, "template_not_found")


# Signers.


async def test_signer_enrollment_returns_the_key_thumbprint(world, database_url):
    jwk = world.signer.public_jwk()
    body = {"jwk": jwk, "subject_ref": "subject-7f3a", "role": "subject"}
    response = await world.http.post("/v1/signers", json=body, headers=world.uploader.headers)
    assert response.status_code == 201, response.text
    assert response.json()["kid"] == keys.thumbprint(jwk)
    before = await helpers.counts(database_url)
    again = await world.http.post("/v1/signers", json=body, headers=world.uploader.headers)
    assert_problem(again, 409, "signer_exists")
    assert await helpers.counts(database_url) == before


@pytest.mark.parametrize(
    ("jwk_change", "status", "code"),
    [
        ({"d": "AAAA"}, 422, "signer_key_invalid"),  # a private key
        ({"kty": "oct", "k": "c2VjcmV0"}, 422, "signer_key_invalid"),  # an HMAC key
        ({"crv": "X25519"}, 422, "signer_key_invalid"),
    ],
)
async def test_bad_signer_keys_are_refused(world, database_url, jwk_change, status, code):
    jwk = {**world.signer.public_jwk(), **jwk_change}
    before = await helpers.counts(database_url)
    response = await world.http.post(
        "/v1/signers",
        json={"jwk": jwk, "subject_ref": "s-1", "role": "subject"},
        headers=world.uploader.headers,
    )
    assert_problem(response, status, code)
    assert await helpers.counts(database_url) == before


async def test_generators_cannot_enroll_signers(world):
    body = {"jwk": world.signer.public_jwk(), "subject_ref": "s", "role": "subject"}
    response = await world.http.post("/v1/signers", json=body, headers=world.generator.headers)
    assert_problem(response, 403, "forbidden")


# Submission.


async def test_hash_only_submission_records_and_returns_a_signed_receipt(world):
    consent = await world.consent()
    assert consent["status"] == "active"
    [asset] = consent["assets"]
    assert asset["phash"] is None  # hash-only: nothing to compute a perceptual hash from
    jwks = (await world.http.get("/.well-known/jwks.json")).json()
    published = {k["kid"]: keys.load_public_jwk(k) for k in jwks["keys"]}
    receipt = keys.verify_compact(
        consent["receipt"],
        resolve_key=lambda header: published.get(header.get("kid")),
        typ="consent-receipt+jwt",
    )
    claims = json.loads(receipt.payload)
    assert claims["consent_id"] == consent["consent_id"]
    assert claims["notice"] == {
        "template_id": helpers.TEMPLATE_ID,
        "sha256": helpers.TEMPLATE_SHA256,
    }
    assert claims["pii_principal"]["assurance"] == "self_asserted"
    assert claims["purposes"]["permitted"] == ["reference.generate", "likeness.stylize"]
    assert claims["assets"] == [{"asset_id": asset["asset_id"], "sha256": asset["sha256"]}]


async def test_multipart_photos_are_hashed_and_not_kept(world, database_url):
    first, second = helpers.photo(10), helpers.photo(11, fmt="JPEG")
    form = helpers.sign_form(
        world.signer, helpers.form_payload([helpers.sha256(first), helpers.sha256(second)])
    )
    response = await world.submit(
        form,
        files=[
            ("assets", ("a.png", first, "image/png")),
            ("assets", ("b.jpg", second, "image/jpeg")),
        ],
    )
    assert response.status_code == 201, response.text
    assets = response.json()["assets"]
    assert [a["sha256"] for a in assets] == [helpers.sha256(first), helpers.sha256(second)]
    assert all(len(a["phash"]) == 16 for a in assets)
    assert assets[0]["phash"] != assets[1]["phash"]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM consent_assets")
    finally:
        await conn.close()
    stored = b"".join(bytes(r["sealed"]) for r in rows)
    assert len(stored) < len(first) + len(second)  # only hashes, sealed
    assert helpers.sha256(first).encode() not in stored  # and not in clear
    assert {r["media_type"] for r in rows} == {"image/png", "image/jpeg"}


async def _sealed_assets(database_url: str, settings, consent_id: str) -> list[AssetData]:
    """The assets of a record as sealed, opened with the data key the service wrapped."""
    data_keys = DataKeys(FieldCipher(keys.MasterKey.from_text(settings.master_key)))
    conn = await asyncpg.connect(database_url)
    try:
        key_id = await conn.fetchval(
            "SELECT data_key_id FROM consent_records WHERE consent_id = $1", consent_id
        )
        key = await data_keys.get(conn, key_id)
        rows = await conn.fetch(
            "SELECT asset_id, sealed FROM consent_assets WHERE consent_id = $1 ORDER BY position",
            consent_id,
        )
    finally:
        await conn.close()
    return [
        msgspec.convert(key.open(bytes(r["sealed"]), aad=r["asset_id"]), AssetData) for r in rows
    ]


def _skimage_jpeg(name: str) -> bytes:
    folder = importlib.resources.files("skimage") / "data"
    with (folder / name).open("rb") as file, Image.open(file) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


async def test_uploaded_photos_keep_their_pdq_sealed_and_tokens_carry_no_pdq(
    world, database_url, settings
):
    photo = _skimage_jpeg("chelsea.png")
    blocks_photo = helpers.photo(12)
    form = helpers.sign_form(
        world.signer,
        helpers.form_payload([helpers.sha256(photo), helpers.sha256(blocks_photo)]),
    )
    response = await world.submit(
        form,
        files=[
            ("assets", ("cat.jpg", photo, "image/jpeg")),
            ("assets", ("blocks.png", blocks_photo, "image/png")),
        ],
    )
    assert response.status_code == 201, response.text
    consent = response.json()

    cat, blocks = await _sealed_assets(database_url, settings, consent["consent_id"])
    with Image.open(io.BytesIO(photo)) as decoded:
        assert (cat.pdq, cat.pdq_quality) == pdq_hash(decoded)
    assert cat.pdq_quality >= 50
    assert blocks.pdq is not None
    assert len(blocks.pdq) == 64
    assert blocks.pdq != cat.pdq
    assert blocks.pdq_quality is not None
    assert (cat.sha256, cat.phash) == (helpers.sha256(photo), consent["assets"][0]["phash"])

    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"])
    assert issued.status_code == 201, issued.text
    claims = (await world.verify(issued.json()["token"]))["claims"]
    # No hash of any kind: each asset is a salted commitment (issue 18, item 4).
    assert [set(asset) for asset in claims["assets"]] == [{"id", "commit"}] * 2


async def test_a_hash_only_form_may_name_each_assets_pdq(world, database_url, settings):
    pdq, phash = "5a" * 32, "0123456789abcdef"
    payload = helpers.form_payload()
    payload["assets"][0] |= {"pdq": pdq, "phash": phash}
    consent = await world.consent(assets=payload["assets"])

    [asset] = await _sealed_assets(database_url, settings, consent["consent_id"])
    assert (asset.pdq, asset.pdq_quality, asset.phash) == (pdq, None, phash)
    plain = await world.consent()
    [asset] = await _sealed_assets(database_url, settings, plain["consent_id"])
    assert (asset.pdq, asset.pdq_quality) == (None, None)


@pytest.mark.parametrize("pdq", ["5a" * 16, "5a" * 31 + "5g", "5A" * 32, 42])
async def test_a_hash_only_form_with_a_bad_pdq_is_refused(world, database_url, pdq):
    payload = helpers.form_payload()
    payload["assets"][0]["pdq"] = pdq
    before = await helpers.counts(database_url)
    response = await world.submit(helpers.sign_form(world.signer, payload))
    assert_problem(response, 422, "invalid_type" if pdq == 42 else "invalid_value")
    assert await helpers.counts(database_url) == before


async def test_idempotency_key_replays_the_same_record_once(world, database_url):
    form = helpers.sign_form(world.signer, helpers.form_payload())
    headers = {**world.uploader.headers, "Idempotency-Key": "upload-42"}
    first = await world.submit(form, headers=headers)
    assert first.status_code == 201, first.text
    before = await helpers.counts(database_url)
    second = await world.submit(form, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert await helpers.counts(database_url) == before  # no second record, no second event

    other = helpers.sign_form(world.signer, helpers.form_payload())
    conflict = await world.submit(other, headers=headers)
    assert_problem(conflict, 409, "idempotency_key_reused")
    assert await helpers.counts(database_url) == before


async def test_the_same_form_is_not_recorded_twice(world, database_url):
    form = helpers.sign_form(world.signer, helpers.form_payload())
    assert (await world.submit(form)).status_code == 201
    before = await helpers.counts(database_url)
    assert_problem(await world.submit(form), 409, "form_replayed")
    assert await helpers.counts(database_url) == before


async def test_malformed_idempotency_key_is_refused(world, database_url):
    form = helpers.sign_form(world.signer, helpers.form_payload())
    before = await helpers.counts(database_url)
    headers = {**world.uploader.headers, "Idempotency-Key": "x" * 201}
    assert_problem(await world.submit(form, headers=headers), 400, "malformed_request")
    assert await helpers.counts(database_url) == before


def _swap_payload(form: str, other: str) -> str:
    """The signature of ``form`` over the payload of ``other``: a signature over other bytes."""
    header, _, signature = form.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


def _bad_form(case: str, signer: helpers.Signer, other: helpers.Signer) -> str:
    payload = helpers.form_payload()
    raw = json.dumps(payload).encode()
    header = {"alg": "EdDSA", "typ": "consent-form+jws", "jwk": signer.public_jwk()}
    moment = helpers.now()
    forms = {
        "alg_none": lambda: helpers.jws({**header, "alg": "none"}, raw, None),
        "hs256_keyed_with_signer_public_key": lambda: helpers.hs256(
            {**header, "alg": "HS256"}, raw, json.dumps(signer.public_jwk()).encode()
        ),
        "signed_by_another_key": lambda: helpers.jws(header, raw, other),
        "signature_over_other_bytes": lambda: _swap_payload(
            helpers.sign_form(signer, payload),
            helpers.sign_form(signer, helpers.form_payload(subject_ref="someone-else")),
        ),
        "unknown_template": lambda: helpers.sign_form(
            signer,
            helpers.form_payload(template={"id": "nope-v1", "sha256": helpers.TEMPLATE_SHA256}),
        ),
        "mismatched_template_hash": lambda: helpers.sign_form(
            signer,
            helpers.form_payload(template={"id": helpers.TEMPLATE_ID, "sha256": "0" * 64}),
        ),
        "unknown_use": lambda: helpers.sign_form(
            signer, helpers.form_payload(permitted_uses=["reference.generate", "mind.read"])
        ),
        "overlapping_uses": lambda: helpers.sign_form(
            signer,
            helpers.form_payload(
                permitted_uses=["reference.generate"],
                prohibited_uses=["reference.generate", "ai.training"],
            ),
        ),
        "valid_until_in_the_past": lambda: helpers.sign_form(
            signer,
            helpers.form_payload(
                valid_from=helpers.stamp(moment - dt.timedelta(days=10)),
                valid_until=helpers.stamp(moment - dt.timedelta(days=1)),
            ),
        ),
        "valid_until_beyond_the_maximum": lambda: helpers.sign_form(
            signer,
            helpers.form_payload(valid_until=helpers.stamp(moment + dt.timedelta(days=4000))),
        ),
        "duplicate_key": lambda: helpers.sign_form(
            signer, raw[:-1] + b', "subject_ref": "someone-else"}'
        ),
        "unknown_field": lambda: helpers.sign_form(
            signer, helpers.form_payload(favourite_colour="blue")
        ),
        "kid_path_traversal": lambda: helpers.jws(
            {"alg": "EdDSA", "typ": "consent-form+jws", "kid": "../../x"}, raw, signer
        ),
        "kid_very_long": lambda: helpers.jws(
            {"alg": "EdDSA", "typ": "consent-form+jws", "kid": "k" * 5000}, raw, signer
        ),
        "crit_header": lambda: helpers.jws({**header, "crit": ["exp"], "exp": 1}, raw, signer),
        "not_a_jws": lambda: "not.a-jws",
    }
    return forms[case]()


BAD_FORMS = [
    ("alg_none", "algorithm_not_allowed"),
    ("hs256_keyed_with_signer_public_key", "algorithm_not_allowed"),
    ("signed_by_another_key", "form_signature_invalid"),
    ("signature_over_other_bytes", "form_signature_invalid"),
    ("unknown_template", "template_unknown"),
    ("mismatched_template_hash", "template_hash_mismatch"),
    ("unknown_use", "use_unknown"),
    ("overlapping_uses", "uses_overlap"),
    ("valid_until_in_the_past", "validity_expired"),
    ("valid_until_beyond_the_maximum", "validity_too_long"),
    ("duplicate_key", "duplicate_key"),
    ("unknown_field", "unknown_field"),
    ("kid_path_traversal", "signer_unknown"),
    ("kid_very_long", "signer_unknown"),
    ("crit_header", "form_malformed"),
    ("not_a_jws", "form_malformed"),
]


@pytest.mark.parametrize(("case", "code"), BAD_FORMS, ids=[case for case, _ in BAD_FORMS])
async def test_bad_forms_are_refused_and_nothing_is_stored(world, database_url, case, code):
    form = _bad_form(case, world.signer, helpers.Signer())
    before = await helpers.counts(database_url)
    assert_problem(await world.submit(form), 422, code)
    assert await helpers.counts(database_url) == before


async def test_form_naming_an_enrolled_kid_but_signed_by_another_key(world, database_url):
    enrolled = await world.http.post(
        "/v1/signers",
        json={"jwk": world.signer.public_jwk(), "subject_ref": "subject-7f3a", "role": "subject"},
        headers=world.uploader.headers,
    )
    header = {"alg": "EdDSA", "typ": "consent-form+jws", "kid": enrolled.json()["kid"]}
    before = await helpers.counts(database_url)
    form = helpers.sign_form(helpers.Signer(), helpers.form_payload(), header=header)
    assert_problem(await world.submit(form), 422, "form_signature_invalid")
    # The enrolled key is bound to its subject: a form for someone else is refused.
    other = helpers.sign_form(
        world.signer, helpers.form_payload(subject_ref="someone-else"), header=header
    )
    assert_problem(await world.submit(other), 422, "signer_key_mismatch")
    assert await helpers.counts(database_url) == before


async def test_an_enrolled_kid_of_another_tenant_is_unknown(world, make_client, database_url):
    _, other_uploader = await make_client("uploader", tenant="othertenant")
    enrolled = await world.http.post(
        "/v1/signers",
        json={"jwk": world.signer.public_jwk(), "subject_ref": "subject-7f3a", "role": "subject"},
        headers=other_uploader,
    )
    header = {"alg": "EdDSA", "typ": "consent-form+jws", "kid": enrolled.json()["kid"]}
    form = helpers.sign_form(world.signer, helpers.form_payload(), header=header)
    before = await helpers.counts(database_url)
    assert_problem(await world.submit(form), 422, "signer_unknown")
    assert await helpers.counts(database_url) == before


def _bad_upload(case: str) -> tuple[bytes, str]:
    jpeg = helpers.photo(5, size=(400, 300), fmt="JPEG")
    return {
        "not_an_image": (b"%PDF-1.7 this is not a photo", "image/png"),
        "declared_huge_dimensions": (helpers.png_bomb(), "image/png"),
        "truncated_file": (jpeg[: len(jpeg) // 2], "image/jpeg"),
    }[case]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("not_an_image", 415, "image_format_not_allowed"),
        ("declared_huge_dimensions", 422, "image_too_many_pixels"),
        ("truncated_file", 422, "image_corrupt"),
    ],
)
async def test_bad_images_are_refused_and_nothing_is_stored(
    world, database_url, case, status, code
):
    data, media_type = _bad_upload(case)
    form = helpers.sign_form(world.signer, helpers.form_payload([helpers.sha256(data)]))
    before = await helpers.counts(database_url)
    response = await world.submit(form, files=[("assets", ("photo", data, media_type))])
    assert_problem(response, status, code)
    assert await helpers.counts(database_url) == before


async def test_uploaded_file_whose_hash_is_not_in_the_form(world, database_url):
    listed, unlisted = helpers.photo(20), helpers.photo(21)
    form = helpers.sign_form(world.signer, helpers.form_payload([helpers.sha256(listed)]))
    before = await helpers.counts(database_url)
    response = await world.submit(
        form,
        files=[
            ("assets", ("a.png", listed, "image/png")),
            ("assets", ("b.png", unlisted, "image/png")),
        ],
    )
    assert_problem(response, 422, "asset_not_in_form")
    assert await helpers.counts(database_url) == before


async def test_multipart_with_unknown_parts_or_no_form(world, database_url):
    before = await helpers.counts(database_url)
    response = await world.http.post(
        "/v1/consents",
        data={"form": "x", "note": "hello"},
        files=[("assets", ("a.png", helpers.photo(1), "image/png"))],
        headers=world.uploader.headers,
    )
    assert_problem(response, 400, "malformed_request")
    response = await world.http.post(
        "/v1/consents",
        files=[("assets", ("a.png", helpers.photo(1), "image/png"))],
        headers=world.uploader.headers,
    )
    assert_problem(response, 400, "malformed_request")
    assert await helpers.counts(database_url) == before


async def test_json_body_with_unknown_or_duplicate_fields(world, database_url):
    before = await helpers.counts(database_url)
    headers = {**world.uploader.headers, "Content-Type": "application/json"}
    response = await world.http.post(
        "/v1/consents", content=b'{"form": "a.b.c", "form": "d.e.f"}', headers=headers
    )
    assert_problem(response, 400, "duplicate_key")
    response = await world.http.post(
        "/v1/consents", content=b'{"form": "a.b.c", "assets": []}', headers=headers
    )
    assert_problem(response, 400, "unknown_field")
    assert await helpers.counts(database_url) == before


# Reading.


async def test_records_are_visible_to_their_tenant_only(world, make_client):
    consent = await world.consent(subject_ref="subject-visible")
    _, stranger = await make_client("uploader", tenant="othertenant")
    path = f"/v1/consents/{consent['consent_id']}"
    assert (await world.http.get(path, headers=world.uploader.headers)).status_code == 200
    assert_problem(await world.http.get(path, headers=stranger), 404, "consent_not_found")
    assert_problem(
        await world.http.get("/v1/consents/cns_nope", headers=world.uploader.headers),
        404,
        "consent_not_found",
    )

    mine = await world.http.get(
        "/v1/consents", params={"subject_ref": "subject-visible"}, headers=world.uploader.headers
    )
    assert [c["consent_id"] for c in mine.json()["consents"]] == [consent["consent_id"]]
    theirs = await world.http.get(
        "/v1/consents", params={"subject_ref": "subject-visible"}, headers=stranger
    )
    assert theirs.json() == {"consents": []}
    nobody = await world.http.get(
        "/v1/consents", params={"subject_ref": "subject-unknown"}, headers=world.uploader.headers
    )
    assert nobody.json() == {"consents": []}


# X.509 signers.


def _certificate(public, subject, issuer_key, issuer, *, ca):
    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    moment = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(days=1))
        .not_valid_after(moment + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


async def test_x5c_signers_chain_to_configured_anchors(
    database_url, service_database_url, tmp_path
):
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate(root_key.public_key(), "Consent Root", root_key, "Consent Root", ca=True)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    signer = helpers.Signer("ES256")
    leaf = _certificate(
        signer._key.public_key(), "Alice Example", root_key, "Consent Root", ca=False
    )
    x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    untrusted = _certificate(
        signer._key.public_key(), "Alice Example", stranger_key, "Elsewhere", ca=False
    )
    x5c_untrusted = [base64.b64encode(untrusted.public_bytes(serialization.Encoding.DER)).decode()]

    settings = make_settings(service_database_url, tmp_path, consent_signer_anchors=anchors)
    async with AsyncTestClient(app=create_app(settings)) as http:
        admin = bearer(ADMIN_KEY)
        await http.post(
            "/v1/consent-templates",
            json={
                "id": helpers.TEMPLATE_ID,
                "title": "t",
                "text": helpers.TEMPLATE_TEXT,
                "uses": helpers.TEMPLATE_USES,
            },
            headers=admin,
        )
        made = await http.post(
            "/v1/admin/clients",
            json={"name": "u", "roles": ["uploader"], "tenant": "acme"},
            headers=admin,
        )
        uploader = bearer(made.json()["api_key"])
        header = {"alg": "ES256", "typ": "consent-form+jws", "x5c": x5c}
        response = await http.post(
            "/v1/consents",
            json={"form": helpers.sign_form(signer, helpers.form_payload(), header=header)},
            headers=uploader,
        )
        assert response.status_code == 201, response.text
        record = await http.get(f"/v1/consents/{response.json()['consent_id']}", headers=uploader)
        assert record.json()["signer"]["assurance"] == "x509"

        before = await helpers.counts(database_url)
        bad = {"alg": "ES256", "typ": "consent-form+jws", "x5c": x5c_untrusted}
        response = await http.post(
            "/v1/consents",
            json={"form": helpers.sign_form(signer, helpers.form_payload(), header=bad)},
            headers=uploader,
        )
        assert_problem(response, 422, "signer_untrusted")
        assert await helpers.counts(database_url) == before


async def test_multipart_form_part_from_a_file_may_end_with_a_newline(world):
    image = helpers.photo(40)
    form = helpers.sign_form(world.signer, helpers.form_payload([helpers.sha256(image)]))
    response = await world.http.post(
        "/v1/consents",
        files=[
            ("form", ("form.jws", (form + "\n").encode(), "application/jose")),
            ("assets", ("p.png", image, "image/png")),
        ],
        headers=world.uploader.headers,
    )
    assert response.status_code == 201, response.text
