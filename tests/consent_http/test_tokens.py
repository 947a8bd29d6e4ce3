"""Grants, consent tokens and their verification over HTTP, online and with jwcrypto offline."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import json
import time

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from litestar.testing import AsyncTestClient

import keys
from keys import b64url_encode
from registry.app import create_app
from tests.consent_http import helpers
from tests.support import assert_problem, make_settings

# Grants.


async def test_grants_are_for_the_owner_and_for_generators(world, make_client, database_url):
    consent = await world.consent()
    cid = consent["consent_id"]
    assert (await world.grant(cid)).status_code == 201
    assert (await world.grant(cid)).status_code == 200  # already granted: no second event

    before = await helpers.counts(database_url)
    not_a_generator = await world.grant(cid, world.publisher.client_id)
    assert_problem(not_a_generator, 422, "grant_client_invalid")
    assert_problem(await world.grant(cid, "cl_doesnotexist"), 422, "grant_client_invalid")
    _, stranger = await make_client("uploader", tenant="othertenant")
    before = await helpers.counts(database_url)
    response = await world.http.post(
        f"/v1/consents/{cid}/grants",
        json={"client_id": world.generator.client_id},
        headers=stranger,
    )
    assert_problem(response, 404, "consent_not_found")
    assert await helpers.counts(database_url) == before


# Issuing.


def _segments(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


async def test_token_has_the_designed_header_claims_and_record(world, settings, database_url):
    consent, issued = await world.granted_token()
    header, claims = _segments(issued["token"])
    assert header["typ"] == "consent+jwt"
    assert header["alg"] == "EdDSA"
    jwks = (await world.http.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert set(claims) >= {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cid", "assets"}
    assert claims["iss"] == settings.public_issuer
    assert claims["aud"] == world.generator.client_id
    assert claims["cid"] == consent["consent_id"]
    assert claims["exp"] - claims["iat"] == settings.token_default_ttl
    assert claims["uses"] == ["reference.generate"]
    assert claims["ver"] == 2
    assert claims["assets"] == [
        {"id": a["asset_id"], "commit": _commit(claims["asset_salt"], a["sha256"])}
        for a in consent["assets"]
    ]
    # No photo hash in the token, in any form.
    for asset in consent["assets"]:
        assert asset["sha256"] not in json.dumps(claims)
    assert "subject" not in claims["sub"]  # pseudonymous, not the subject reference
    reference = claims["status"]["status_list"]
    assert reference["uri"].startswith(f"{settings.public_issuer}/v1/status-lists/sl_")
    assert issued["jti"] == claims["jti"]

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM issued_tokens WHERE jti = $1", claims["jti"])
        size = await conn.fetchval("SELECT size FROM status_lists")
    finally:
        await conn.close()
    assert row["consent_id"] == consent["consent_id"]
    assert row["audience"] == world.generator.client_id
    assert row["uses"] == ["reference.generate"]
    assert row["status_idx"] == reference["idx"]
    assert int(row["expires_at"].timestamp()) == claims["exp"]
    assert size >= 131_072


async def test_token_lifetime_is_capped_by_request_settings_and_consent_end(world, settings):
    consent = await world.consent()
    await world.grant(consent["consent_id"])
    short = await world.token(consent["consent_id"], ttl_seconds=60)
    _, claims = _segments(short.json()["token"])
    assert claims["exp"] - claims["iat"] == 60

    ending = helpers.now() + dt.timedelta(seconds=120)
    soon = await world.consent(valid_until=helpers.stamp(ending))
    await world.grant(soon["consent_id"])
    capped = await world.token(soon["consent_id"], ttl_seconds=settings.token_max_ttl)
    _, claims = _segments(capped.json()["token"])
    assert claims["exp"] == int(ending.timestamp())


async def test_token_binds_only_the_named_assets(world):
    hashes = [helpers.sha256(b"one"), helpers.sha256(b"two")]
    consent = await world.consent(
        assets=[{"sha256": hashes[0]}, {"sha256": hashes[1], "label": "side"}]
    )
    await world.grant(consent["consent_id"])
    second = consent["assets"][1]["asset_id"]
    response = await world.token(consent["consent_id"], asset_ids=[second])
    token = response.json()["token"]
    _, claims = _segments(token)
    assert claims["assets"] == [{"id": second, "commit": _commit(claims["asset_salt"], hashes[1])}]
    assert (await world.verify(token, asset_sha256=hashes[1]))["valid"] is True
    other = await world.verify(token, asset_sha256=hashes[0])
    assert other["reasons"] == ["asset_mismatch"]


def _commit(salt: str, sha256_hex: str) -> str:
    """base64url(SHA-256(salt || digest)), as docs/third-parties.md spells it."""
    raw = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)) + bytes.fromhex(sha256_hex)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()


def _legacy(claims: dict, consent: dict) -> dict:
    """The claims as a token issued before format 2 carried them: no ``ver``, no salt, and
    each asset's SHA-256 in clear (and the pHash, when the photo was uploaded)."""
    old = {name: value for name, value in claims.items() if name not in {"ver", "asset_salt"}}
    old["assets"] = [
        {"id": a["asset_id"], "sha256": a["sha256"], "phash": "f0e1d2c3b4a59687"}
        for a in consent["assets"]
    ]
    return old


async def test_a_token_issued_before_format_2_verifies_until_it_expires(world, client):
    consent, issued = await world.granted_token()
    _, claims = _segments(issued["token"])
    keyring = client.app.state.services.keyring
    token = keyring.sign_jws(_legacy(claims, consent), typ="consent+jwt")
    sha = consent["assets"][0]["sha256"]
    checked = await world.verify(token, use="reference.generate", asset_sha256=sha)
    assert checked["valid"] is True
    assert checked["claims"]["assets"][0]["sha256"] == sha
    wrong = await world.verify(token, asset_sha256=helpers.sha256(b"another photo"))
    assert wrong["reasons"] == ["asset_mismatch"]
    expired = {**_legacy(claims, consent), "iat": claims["iat"] - 7200, "nbf": claims["nbf"] - 7200}
    expired["exp"] = claims["iat"] - 3600
    stale = await world.verify(keyring.sign_jws(expired, typ="consent+jwt"), asset_sha256=sha)
    assert stale["reasons"] == ["expired"]


async def _end(world, consent_id: str, how: str) -> None:
    if how == "withdrawn":
        response = await world.http.post(
            f"/v1/consents/{consent_id}/withdraw",
            json={"withdrawal": helpers.withdrawal(world.signer, consent_id)},
            headers=world.uploader.headers,
        )
    else:
        response = await world.http.post(
            f"/v1/consents/{consent_id}/erase", headers=world.uploader.headers
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("how", ["withdrawn", "erased"])
@pytest.mark.parametrize("legacy", [False, True], ids=["format-2", "format-1"])
async def test_the_answer_for_a_revoked_token_shows_no_asset_hash_or_commitment(
    world, client, how, legacy
):
    consent, issued = await world.granted_token()
    token = issued["token"]
    _, claims = _segments(token)
    if legacy:
        token = client.app.state.services.keyring.sign_jws(
            _legacy(claims, consent), typ="consent+jwt"
        )
    sha = consent["assets"][0]["sha256"]
    before = await world.verify(token, asset_sha256=sha)
    assert before["valid"] is True
    binding = sha if legacy else claims["assets"][0]["commit"]
    assert binding in json.dumps(before["claims"])  # a live token is shown as signed

    await _end(world, consent["consent_id"], how)

    after = await world.verify(token, asset_sha256=sha)
    assert after["valid"] is False
    assert after["reasons"] == ["revoked"]
    assert after["claims"]["jti"] == claims["jti"]
    assert after["claims"]["assets"] == [{"id": a["asset_id"]} for a in consent["assets"]]
    shown = json.dumps(after)
    for hidden in (sha, binding, "asset_salt", "commit", "sha256", "phash"):
        assert hidden not in shown


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"uses": ["content.explicit"]}, 422, "uses_not_permitted"),
        ({"uses": ["reference.generate", "ai.training"]}, 422, "uses_not_permitted"),
        ({"uses": ["mind.read"]}, 422, "use_unknown"),
        ({"uses": []}, 422, "uses_empty"),
        ({"ttl_seconds": 0}, 422, "ttl_invalid"),
        ({"ttl_seconds": 999_999}, 422, "ttl_invalid"),
        ({"asset_ids": ["ast_nope"]}, 422, "asset_unknown"),
        ({"asset_ids": []}, 422, "asset_ids_invalid"),
        ({"consent_id": "cns_nope"}, 404, "consent_not_found"),
        ({"scope": "all"}, 400, "unknown_field"),
    ],
)
async def test_bad_token_requests_issue_nothing(world, database_url, body, status, code):
    consent = await world.consent()
    await world.grant(consent["consent_id"])
    before = await helpers.counts(database_url)
    target = body.pop("consent_id", consent["consent_id"])
    response = await world.token(target, **body)
    assert_problem(response, status, code)
    assert await helpers.counts(database_url) == before


async def test_no_grant_no_token(world, make_client, database_url):
    consent = await world.consent()
    before = await helpers.counts(database_url)
    assert_problem(await world.token(consent["consent_id"]), 403, "grant_missing")
    # A grant to one generator is not a grant to another.
    await world.grant(consent["consent_id"])
    _, other_generator = await make_client("generator", tenant="genco")
    before = await helpers.counts(database_url)
    response = await world.http.post(
        "/v1/tokens",
        json={"consent_id": consent["consent_id"], "uses": ["reference.generate"]},
        headers=other_generator,
    )
    assert_problem(response, 403, "grant_missing")
    uploader_asks = await world.http.post(
        "/v1/tokens",
        json={"consent_id": consent["consent_id"], "uses": ["reference.generate"]},
        headers=world.uploader.headers,
    )
    assert_problem(uploader_asks, 403, "forbidden")
    assert await helpers.counts(database_url) == before


# Verifying online.


async def test_verification_checks_asset_use_and_audience(world, make_client):
    consent, issued = await world.granted_token()
    token = issued["token"]
    sha = consent["assets"][0]["sha256"]
    assert (await world.verify(token, use="reference.generate", asset_sha256=sha))["valid"]

    wrong = await world.verify(token, use="likeness.stylize", asset_sha256=helpers.sha256(b"x"))
    assert wrong["valid"] is False
    assert wrong["reasons"] == ["asset_mismatch", "use_not_permitted"]
    assert wrong["claims"]["jti"] == issued["jti"]

    # A token for another audience: another generator presenting it is refused.
    _, other_generator = await make_client("generator", tenant="genco")
    stolen = await world.verify(token, headers=other_generator)
    assert stolen["reasons"] == ["audience"]

    # A publisher checks on behalf of the generator it names.
    publisher = world.publisher.headers
    assert (await world.verify(token, headers=publisher))["reasons"] == ["audience"]
    on_behalf = await world.verify(token, headers=publisher, audience=world.generator.client_id)
    assert on_behalf["valid"] is True


async def test_only_publishers_name_another_audience(world, database_url):
    _, issued = await world.granted_token()
    response = await world.http.post(
        "/v1/tokens/verify",
        json={"token": issued["token"], "audience": world.publisher.client_id},
        headers=world.generator.headers,
    )
    assert_problem(response, 403, "audience_not_allowed")
    uploader = await world.http.post(
        "/v1/tokens/verify", json={"token": issued["token"]}, headers=world.uploader.headers
    )
    assert_problem(uploader, 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"use": "mind.read"}, "use_unknown"),
        ({"asset_sha256": "ABC"}, "asset_invalid"),
    ],
)
async def test_bad_verification_inputs(world, body, code):
    _, issued = await world.granted_token()
    response = await world.http.post(
        "/v1/tokens/verify",
        json={"token": issued["token"], **body},
        headers=world.generator.headers,
    )
    assert_problem(response, 422, code)


def _forged(case: str, token: str, jwks: dict, keyring) -> str:
    header, claims = _segments(token)
    payload = json.dumps(claims).encode()
    ours = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = keys.load_public_jwk(ours)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_x = base64.urlsafe_b64decode(ours["x"] + "=")
    forged = {
        "alg_none": lambda: helpers.jws({**header, "alg": "none"}, payload, None),
        "hs256_keyed_with_our_public_key_pem": lambda: helpers.hs256(
            {**header, "alg": "HS256"}, payload, pem
        ),
        "hs256_keyed_with_our_public_key_bytes": lambda: helpers.hs256(
            {**header, "alg": "HS256"}, payload, raw_x
        ),
        "kid_path_traversal": lambda: helpers.jws(
            {**header, "kid": "../../x"}, payload, helpers.Signer()
        ),
        "kid_very_long": lambda: helpers.jws(
            {**header, "kid": "k" * 5000}, payload, helpers.Signer()
        ),
        "crit_header_signed_by_us": lambda: keyring.sign_jws(
            claims, typ="consent+jwt", extra_headers={"crit": ["exp"]}
        ),
        "signed_by_a_stranger_with_our_kid": lambda: helpers.jws(header, payload, helpers.Signer()),
        "jwk_header_with_the_strangers_key": lambda: helpers.jws(
            {**header, "jwk": (stranger := helpers.Signer()).public_jwk()}, payload, stranger
        ),
        "flipped_signature_character": lambda: (
            token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
        ),
        "flipped_payload_character": lambda: _flip_payload(token),
        "wrong_typ_signed_by_us": lambda: keyring.sign_jws(claims, typ="JWT"),
        "not_a_token": lambda: "garbage",
    }
    return forged[case]()


def _flip_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    char = "A" if payload[middle] != "A" else "B"
    return f"{header}.{payload[:middle]}{char}{payload[middle + 1 :]}.{signature}"


FORGERIES = [
    ("alg_none", ["signature"]),
    ("hs256_keyed_with_our_public_key_pem", ["signature"]),
    ("hs256_keyed_with_our_public_key_bytes", ["signature"]),
    ("kid_path_traversal", ["signature"]),
    ("kid_very_long", ["signature"]),
    ("crit_header_signed_by_us", ["malformed"]),
    ("signed_by_a_stranger_with_our_kid", ["signature"]),
    ("jwk_header_with_the_strangers_key", ["signature"]),
    ("flipped_signature_character", ["signature"]),
    ("flipped_payload_character", None),  # signature, or malformed if the JSON broke
    ("wrong_typ_signed_by_us", ["malformed"]),
    ("not_a_token", ["malformed"]),
]


@pytest.mark.parametrize(("case", "reasons"), FORGERIES, ids=[c for c, _ in FORGERIES])
async def test_forged_tokens_fail_verification_and_change_nothing(
    world, client, database_url, case, reasons
):
    _, issued = await world.granted_token()
    jwks = (await world.http.get("/.well-known/jwks.json")).json()
    forged = _forged(case, issued["token"], jwks, client.app.state.services.keyring)
    before = await helpers.counts(database_url)
    result = await world.verify(forged)
    assert result["valid"] is False
    assert result["claims"] is None
    if reasons is None:
        assert result["reasons"] in (["signature"], ["malformed"])
    else:
        assert result["reasons"] == reasons
    assert await helpers.counts(database_url) == before
    assert (await world.verify(issued["token"]))["valid"] is True


async def test_expired_tokens_are_reported_as_expired(world, client):
    _, issued = await world.granted_token()
    _, claims = _segments(issued["token"])
    old = {**claims, "iat": claims["iat"] - 7200, "nbf": claims["nbf"] - 7200}
    old["exp"] = claims["iat"] - 3600
    keyring = client.app.state.services.keyring
    result = await world.verify(keyring.sign_jws(old, typ="consent+jwt"))
    assert result["reasons"] == ["expired"]
    future = {**claims, "nbf": claims["nbf"] + 3600, "iat": claims["iat"] + 3600}
    result = await world.verify(keyring.sign_jws(future, typ="consent+jwt"))
    assert result["reasons"] == ["not_yet_valid"]


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


async def test_a_short_token_expires_after_its_ttl_and_the_leeway(world, settings, tmp_path):
    # The shortest token there is (ttl 1 s), checked by a service whose REGISTRY_TOKEN_LEEWAY
    # is 2, on the same database: valid just past exp, expired at exp + leeway + 1.
    leeway = 2
    lenient = make_settings(
        settings.database_url,
        tmp_path / "leeway",
        master_key=settings.master_key,
        token_leeway=leeway,
    )
    consent = await world.consent()
    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"], ttl_seconds=1)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    _, claims = _segments(token)
    assert claims["exp"] - claims["iat"] == 1

    async with AsyncTestClient(app=create_app(lenient)) as http:

        async def verify() -> dict:
            response = await http.post(
                "/v1/tokens/verify", json={"token": token}, headers=world.generator.headers
            )
            assert response.status_code == 200, response.text
            return response.json()

        assert (await verify())["valid"] is True
        await _sleep_until(claims["exp"] + 0.5)
        assert (await verify())["valid"] is True  # past exp, within the leeway
        await _sleep_until(claims["exp"] + leeway + 1)
        result = await verify()
        assert (result["valid"], result["reasons"]) == (False, ["expired"])
        assert result["claims"]["jti"] == issued.json()["jti"]


# Verifying offline, with another JOSE implementation and the JWKS alone.


async def test_token_verifies_with_jwcrypto_and_only_the_jwks(world, settings):
    consent, issued = await world.granted_token()
    jwks_text = (await world.http.get("/.well-known/jwks.json")).text
    key_set = jwcrypto_jwk.JWKSet.from_json(jwks_text)
    checked = jwcrypto_jwt.JWT(
        jwt=issued["token"],
        key=key_set,
        algs=["EdDSA"],
        check_claims={"iss": settings.public_issuer, "aud": world.generator.client_id, "exp": None},
        expected_type="JWS",
    )
    claims = json.loads(checked.claims)
    assert claims["cid"] == consent["consent_id"]
    assert json.loads(checked.header)["typ"] == "consent+jwt"

    tampered = _flip_payload(issued["token"])
    # With a key set, jwcrypto reports "no key verifies this token" as a missing key.
    with pytest.raises(jwcrypto_jwt.JWTMissingKey):
        jwcrypto_jwt.JWT(jwt=tampered, key=key_set, algs=["EdDSA"], expected_type="JWS")
    hmac_forgery = helpers.hs256(
        {"alg": "HS256", "typ": "consent+jwt", "kid": json.loads(checked.header)["kid"]},
        b64url_encode(b"{}").encode(),
        b"secret",
    )
    with pytest.raises(jwcrypto_jwt.JWTMissingKey):
        jwcrypto_jwt.JWT(jwt=hmac_forgery, key=key_set, algs=["EdDSA"], expected_type="JWS")


async def test_token_verifies_with_the_offline_verifier_until_withdrawn(world, settings, tmp_path):
    from verifier.cli import main

    consent, issued = await world.granted_token()
    _, claims = _segments(issued["token"])
    path = claims["status"]["status_list"]["uri"].removeprefix(settings.public_issuer)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes((await world.http.get("/.well-known/jwks.json")).content)
    status = tmp_path / "status.jwt"

    async def offline(*extra: str) -> tuple[int, dict]:
        status.write_bytes((await world.http.get(path)).content)
        out = io.StringIO()
        argv = ["token", issued["token"], "--jwks", str(jwks), "--status-list", str(status)]
        checks = ["--audience", world.generator.client_id, "--issuer", settings.public_issuer]
        code = main([*argv, *checks, "--use", "reference.generate", "--json", *extra], stdout=out)
        return code, json.loads(out.getvalue())

    code, body = await offline()
    assert (code, body["result"], body["claims"]["jti"]) == (0, "valid", issued["jti"])
    # The photo it binds, tested against its commitment; another photo does not bind.
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"the consented photo")
    code, body = await offline("--photo", str(photo))
    assert (code, body["result"]) == (1, "asset_mismatch")
    withdrawn = await world.http.post(
        f"/v1/consents/{consent['consent_id']}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, consent["consent_id"])},
        headers=world.uploader.headers,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    code, body = await offline()
    assert (code, body["result"], body["reasons"]) == (1, "revoked", ["revoked"])


@pytest.mark.parametrize("legacy", [False, True], ids=["format-2", "format-1"])
async def test_the_offline_verifier_tests_a_photo_against_the_token(
    world, client, settings, tmp_path, legacy
):
    from verifier.cli import main

    image = helpers.photo(41)
    consent = await world.consent(asset_hashes=[helpers.sha256(image)])
    await world.grant(consent["consent_id"])
    token = (await world.token(consent["consent_id"])).json()["token"]
    _, claims = _segments(token)
    if legacy:
        token = client.app.state.services.keyring.sign_jws(
            _legacy(claims, consent), typ="consent+jwt"
        )
    path = claims["status"]["status_list"]["uri"].removeprefix(settings.public_issuer)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes((await world.http.get("/.well-known/jwks.json")).content)
    status = tmp_path / "status.jwt"
    status.write_bytes((await world.http.get(path)).content)
    photo, other = tmp_path / "photo.png", tmp_path / "other.png"
    photo.write_bytes(image)
    other.write_bytes(helpers.photo(42))

    def offline(candidate) -> tuple[int, dict]:
        out = io.StringIO()
        argv = ["token", token, "--jwks", str(jwks), "--status-list", str(status)]
        code = main([*argv, "--photo", str(candidate), "--json"], stdout=out)
        return code, json.loads(out.getvalue())

    assert offline(photo)[0] == 0
    assert offline(photo)[1]["result"] == "valid"
    code, body = offline(other)
    assert (code, body["result"], body["reasons"]) == (1, "asset_mismatch", ["asset_mismatch"])
    # Re-encoded, the photo is another file: only the registry's records match it by pHash.
    assert photo.read_bytes() != other.read_bytes()
