"""The whole consent life cycle over HTTP, as the README walks it through."""

from __future__ import annotations

from registry.core import audit
from tests.consent_http import helpers


async def test_enroll_submit_grant_token_verify_withdraw_erase(world, pool):
    http, signer = world.http, world.signer
    enrolled = await http.post(
        "/v1/signers",
        json={"jwk": signer.public_jwk(), "subject_ref": "subject-7f3a", "role": "subject"},
        headers=world.uploader.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    kid = enrolled.json()["kid"]

    image = helpers.photo(1)
    payload = helpers.form_payload([helpers.sha256(image)])
    form = helpers.sign_form(
        signer, payload, header={"alg": "EdDSA", "typ": "consent-form+jws", "kid": kid}
    )
    submitted = await world.submit(form, files=[("assets", ("front.png", image, "image/png"))])
    assert submitted.status_code == 201, submitted.text
    consent = submitted.json()
    assert consent["status"] == "active"
    assert consent["consent_id"].startswith("cns_")
    [asset] = consent["assets"]
    assert asset["sha256"] == helpers.sha256(image)
    assert len(asset["phash"]) == 16
    assert consent["receipt"].count(".") == 2

    record = (
        await http.get(f"/v1/consents/{consent['consent_id']}", headers=world.uploader.headers)
    ).json()
    assert record["signer"]["assurance"] == "enrolled"
    assert record["signer"]["signer_id"] == enrolled.json()["signer_id"]
    assert record["subject_ref"] == "subject-7f3a"
    assert record["assets"][0]["uploaded"] is True
    assert record["assets"][0]["width"] == 96
    assert record["assets"][0]["dhash"]

    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"], uses=["reference.generate"])
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]

    checked = await world.verify(
        token, use="reference.generate", asset_sha256=helpers.sha256(image)
    )
    assert checked == {"valid": True, "reasons": [], "claims": checked["claims"]}
    assert checked["claims"]["cid"] == consent["consent_id"]

    withdrawn = await http.post(
        f"/v1/consents/{consent['consent_id']}/withdraw",
        json={"withdrawal": helpers.withdrawal(signer, consent["consent_id"])},
        headers=world.uploader.headers,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["revoked_tokens"] == [issued.json()["jti"]]
    assert (await world.verify(token))["reasons"] == ["revoked"]

    erased = await http.post(
        f"/v1/consents/{consent['consent_id']}/erase", headers=world.uploader.headers
    )
    assert erased.status_code == 200, erased.text
    after = (
        await http.get(f"/v1/consents/{consent['consent_id']}", headers=world.uploader.headers)
    ).json()
    assert after["status"] == "erased"
    assert after["subject_ref"] is None

    async with pool.acquire() as conn:
        report = await audit.verify_chain(conn)
    assert report.ok, report
