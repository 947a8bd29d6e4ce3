"""Withdrawal, revocation on every process at once, offline status lists, and erasure."""

from __future__ import annotations

import base64
import json
import zlib

import asyncpg
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from litestar.testing import AsyncTestClient

from registry.app import create_app
from registry.core import audit
from tests.consent_http import helpers
from tests.support import assert_problem


async def _withdraw(world, consent_id, *, signer=None, headers=None, **body):
    if signer is not None:
        body["withdrawal"] = helpers.withdrawal(signer, consent_id)
    return await world.http.post(
        f"/v1/consents/{consent_id}/withdraw",
        json=body,
        headers=headers or world.uploader.headers,
    )


async def test_withdrawal_revokes_tokens_and_refuses_new_ones(world, database_url):
    consent, first = await world.granted_token()
    cid = consent["consent_id"]
    second = (await world.token(cid)).json()
    response = await _withdraw(world, cid, signer=world.signer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "withdrawn"
    assert sorted(body["revoked_tokens"]) == sorted([first["jti"], second["jti"]])
    assert sorted(body["tokens"]) == sorted([first["jti"], second["jti"]])
    assert body["outputs"] == []
    assert body["decisions"] == []
    assert body["withdrawn_by"] == "signer"

    # A token replayed after withdrawal fails, and no new token is issued.
    assert (await world.verify(first["token"]))["reasons"] == ["revoked"]
    before = await helpers.counts(database_url)
    assert_problem(await world.token(cid), 409, "consent_not_active")
    assert_problem(await world.grant(cid), 409, "consent_not_active")
    assert_problem(await _withdraw(world, cid, signer=world.signer), 409, "consent_not_active")
    assert await helpers.counts(database_url) == before
    record = await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)
    assert record.json()["status"] == "withdrawn"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("signed_by_another_key", 403, "withdrawal_invalid"),
        ("names_another_consent", 422, "withdrawal_mismatch"),
        ("not_a_jws", 422, "withdrawal_malformed"),
        ("no_withdrawal", 422, "withdrawal_required"),
        ("reason_from_a_non_admin", 422, "withdrawal_required"),
    ],
)
async def test_bad_withdrawals_change_nothing(world, database_url, case, status, code):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    body = {
        "signed_by_another_key": {"withdrawal": helpers.withdrawal(helpers.Signer(), cid)},
        "names_another_consent": {"withdrawal": helpers.withdrawal(world.signer, "cns_other")},
        "not_a_jws": {"withdrawal": "garbage"},
        "no_withdrawal": {},
        "reason_from_a_non_admin": {"reason": "they asked by phone"},
    }[case]
    before = await helpers.counts(database_url)
    assert_problem(await _withdraw(world, cid, **body), status, code)
    assert await helpers.counts(database_url) == before
    assert (await world.verify(issued["token"]))["valid"] is True


async def test_admin_withdraws_with_a_reason_and_strangers_get_404(world, make_client, pool):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    _, stranger = await make_client("uploader", tenant="othertenant")
    assert_problem(
        await _withdraw(world, cid, signer=world.signer, headers=stranger),
        404,
        "consent_not_found",
    )
    assert_problem(
        await _withdraw(world, cid, signer=world.signer, headers=world.generator.headers),
        403,
        "forbidden",
    )
    response = await _withdraw(world, cid, headers=world.admin, reason="court order 2026/17")
    assert response.status_code == 200, response.text
    assert response.json()["withdrawn_by"].startswith("admin:")
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]
    async with pool.acquire() as conn:
        events = await audit.list_events(conn, subject_type="consent", subject_id=cid)
    event = events[-1]
    assert event.action == "consent.withdrawn"
    assert "court order" not in json.dumps(event.payload)  # only its hash


async def test_revocation_is_visible_on_another_process_at_once(world, settings, client):
    consent, issued = await world.granted_token()
    async with AsyncTestClient(app=create_app(settings)) as second_process:
        # The second process has verified (and could have cached) the token before.
        before = await second_process.post(
            "/v1/tokens/verify",
            json={"token": issued["token"]},
            headers=world.generator.headers,
        )
        assert before.json()["valid"] is True
        reference = json.loads(base64.urlsafe_b64decode(issued["token"].split(".")[1] + "=="))[
            "status"
        ]["status_list"]
        path = reference["uri"].removeprefix(settings.public_issuer)
        assert (await second_process.get(path)).status_code == 200  # its list is now cached

        response = await _withdraw(world, consent["consent_id"], signer=world.signer)
        assert response.status_code == 200

        after = await second_process.post(
            "/v1/tokens/verify",
            json={"token": issued["token"]},
            headers=world.generator.headers,
        )
        assert after.json()["valid"] is False
        assert after.json()["reasons"] == ["revoked"]
        listed = (await second_process.get(path)).text
        assert _bit(listed, reference["idx"]) == 1


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _bit(status_list_jwt: str, idx: int) -> int:
    """The status at ``idx``, read by hand from the draft's layout (not with our codec)."""
    claims = _claims(status_list_jwt)
    lst, bits = claims["status_list"]["lst"], claims["status_list"]["bits"]
    data = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    # New tokens go to 2-bit lists, so that a suspension can say SUSPENDED (2).
    assert bits == 2
    return (data[idx * bits // 8] >> (idx * bits % 8)) & ((1 << bits) - 1)


async def test_status_list_verifies_offline_with_jwcrypto_and_the_jwks(world, settings):
    consent, issued = await world.granted_token()
    reference = _claims(issued["token"])["status"]["status_list"]
    path = reference["uri"].removeprefix(settings.public_issuer)

    response = await world.http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/statuslist+jwt")
    # Cacheable for half its ttl: a copy served at most that old never reaches a relying
    # party with less than half its freshness left.
    half = settings.status_list_ttl // 2
    assert response.headers["cache-control"] == f"public, max-age={half}"
    key_set = jwcrypto_jwk.JWKSet.from_json((await world.http.get("/.well-known/jwks.json")).text)
    checked = jwcrypto_jwt.JWT(
        jwt=response.text, key=key_set, algs=["EdDSA"], check_claims={"exp": None}
    )
    header = json.loads(checked.header)
    claims = json.loads(checked.claims)
    assert header["typ"] == "statuslist+jwt"
    assert claims["sub"] == reference["uri"]
    assert claims["ttl"] == settings.status_list_ttl
    data_bits = len(
        zlib.decompress(
            base64.urlsafe_b64decode(
                claims["status_list"]["lst"] + "=" * (-len(claims["status_list"]["lst"]) % 4)
            )
        )
    )
    assert data_bits * 8 >= 131_072
    assert _bit(response.text, reference["idx"]) == 0

    await _withdraw(world, consent["consent_id"], signer=world.signer)
    after = await world.http.get(path)
    jwcrypto_jwt.JWT(jwt=after.text, key=key_set, algs=["EdDSA"], check_claims={"exp": None})
    assert _bit(after.text, reference["idx"]) == 1


async def test_unknown_status_lists_are_404(client):
    assert_problem(await client.get("/v1/status-lists/sl_nope"), 404, "status_list_not_found")
    assert_problem(await client.get("/v1/status-lists/bad!id"), 404, "status_list_not_found")


# Erasure.


async def test_erasure_leaves_no_personal_data_and_the_audit_chain_verifies(
    world, database_url, pool
):
    enrolled = await world.http.post(
        "/v1/signers",
        json={"jwk": world.signer.public_jwk(), "subject_ref": "subject-7f3a", "role": "subject"},
        headers=world.uploader.headers,
    )
    kid = enrolled.json()["kid"]
    image = helpers.photo(30)
    header = {"alg": "EdDSA", "typ": "consent-form+jws", "kid": kid}
    form = helpers.sign_form(
        world.signer, helpers.form_payload([helpers.sha256(image)]), header=header
    )
    submitted = await world.submit(form, files=[("assets", ("p.png", image, "image/png"))])
    consent = submitted.json()
    cid = consent["consent_id"]
    await world.grant(cid)
    issued = (await world.token(cid)).json()

    response = await world.http.post(f"/v1/consents/{cid}/erase", headers=world.uploader.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "erased"
    assert body["signer_erased"] is True
    assert body["withdrawal"]["revoked_tokens"] == [issued["jti"]]
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]

    record = (await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)).json()
    assert record["status"] == "erased"
    assert record["subject_ref"] is None
    assert record["receipt"] is None
    assert record["signer"]["key_thumbprint"] is None
    assert record["assets"] == [
        {
            "asset_id": consent["assets"][0]["asset_id"],
            "uploaded": True,
            "sha256": None,
            "phash": None,
            "dhash": None,
            "label": None,
            "media_type": None,
            "width": None,
            "height": None,
        }
    ]
    found = await world.http.get(
        "/v1/consents", params={"subject_ref": "subject-7f3a"}, headers=world.uploader.headers
    )
    assert found.json() == {"consents": []}

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM consent_data_keys") == 0
        row = await conn.fetchrow("SELECT * FROM consent_records WHERE consent_id = $1", cid)
        assert row["sealed"] is None
        assert row["subject_index"] is None
        assert row["data_key_id"] is None
        signer = await conn.fetchrow("SELECT * FROM consent_signers")
        assert signer["sealed"] is None
        assert signer["erased_at"] is not None
        # Nothing personal anywhere in the database, audit log included.
        rows = [
            dict(r)
            for table in (*helpers.TABLES, "status_lists")
            for r in await conn.fetch(f"SELECT * FROM {table}")  # noqa: S608 - constants
        ]
    finally:
        await conn.close()
    dump = repr(rows)
    for secret in ("subject-7f3a", helpers.sha256(image), consent["assets"][0]["phash"], kid):
        assert secret not in dump

    async with pool.acquire() as conn:
        report = await audit.verify_chain(conn)
        events = await audit.list_events(conn, subject_type="consent", subject_id=cid)
    assert report.ok, report
    assert [e.action for e in events][-2:] == ["consent.withdrawn", "consent.erased"]

    # The signer's key is gone with its last record: it can no longer sign forms here.
    again = helpers.sign_form(world.signer, helpers.form_payload(), header=header)
    assert_problem(await world.submit(again), 422, "signer_unknown")


async def test_erasure_is_for_the_owner_or_an_admin_and_happens_once(
    world, make_client, database_url
):
    consent = await world.consent()
    cid = consent["consent_id"]
    _, stranger = await make_client("uploader", tenant="othertenant")
    before = await helpers.counts(database_url)
    path = f"/v1/consents/{cid}/erase"
    assert_problem(await world.http.post(path, headers=stranger), 404, "consent_not_found")
    assert_problem(await world.http.post(path, headers=world.generator.headers), 403, "forbidden")
    assert await helpers.counts(database_url) == before
    first = await world.http.post(path, headers=world.admin)
    assert first.status_code == 200, first.text
    erased = await helpers.counts(database_url)
    events = await helpers.audit_actions(database_url)

    # Again: the same tombstone, and nothing changes (no second audit event either). The
    # withdrawal the first call made is reported by the first call only.
    again = await world.http.post(path, headers=world.uploader.headers)
    assert again.status_code == 200, again.text
    assert first.json()["withdrawal"] is not None
    assert again.json() == {**first.json(), "withdrawal": None}
    assert await helpers.counts(database_url) == erased
    assert await helpers.audit_actions(database_url) == events
    assert_problem(await world.http.post(path, headers=stranger), 404, "consent_not_found")


async def test_erasing_a_withdrawn_consent_keeps_the_withdrawal(world):
    consent = await world.consent()
    cid = consent["consent_id"]
    assert (await _withdraw(world, cid, signer=world.signer)).status_code == 200
    response = await world.http.post(f"/v1/consents/{cid}/erase", headers=world.uploader.headers)
    assert response.status_code == 200
    assert response.json()["withdrawal"] is None
    record = (await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)).json()
    assert record["status"] == "erased"
    assert record["withdrawn_at"] is not None
