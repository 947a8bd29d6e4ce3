"""The gate and a suspended consent: its token is not consent while the suspension lasts, and
is again once the consent is resumed."""

from __future__ import annotations

from tests.gate_http.conftest import consented_source, counts, output, rows


async def _suspension(world, consent_id: str, action: str) -> None:
    response = await world.http.post(
        f"/v1/consents/{consent_id}/{action}", json={}, headers=world.uploader.headers
    )
    assert response.status_code == 200, response.text


async def test_a_suspended_consents_token_never_leads_to_allowed(world, gate, database_url):
    source = await consented_source(world)
    allowed = await gate(output(31), generation_id="gen-susp-1", sources=[source.asset()])
    assert allowed.status_code == 200, allowed.text
    assert (allowed.json()["safety_status"], allowed.json()["reasons"]) == ("allowed", [])

    await _suspension(world, source.consent_id, "suspend")
    before = await counts(database_url)
    refused = await gate(output(32), generation_id="gen-susp-2", sources=[source.asset()])
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert body["safety_status"] == "blocked", body
    # Suspended reads as revoked at the gate: not consent until it is lifted.
    assert "consent_token_revoked" in body["reasons"], body
    assert (await counts(database_url))["moderation_decisions"] == (
        before["moderation_decisions"] + 1
    )
    [used] = await rows(
        database_url,
        "SELECT jti FROM moderation_decision_consents WHERE decision_id = $1",
        body["decision_id"],
    )
    assert used["jti"] == source.jti

    await _suspension(world, source.consent_id, "resume")
    again = await gate(output(33), generation_id="gen-susp-3", sources=[source.asset()])
    assert (again.json()["safety_status"], again.json()["reasons"]) == ("allowed", [])
