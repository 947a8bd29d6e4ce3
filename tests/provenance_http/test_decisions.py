"""Signing after the gate: the decision named in the manifest, refusals for decisions that do
not allow publication, and a revocation that lands while the output is being signed."""

from __future__ import annotations

import json

import pytest

from registry.compose import build_services, provenance_service
from registry.core import auth
from registry.core.settings import SettingsError
from registry.provenance import ConsentTokenRejected, SignMetadata, Upload
from tests.consent_http import helpers
from tests.provenance_http.conftest import TEST_ANCHORS, counts, file_part, picture
from tests.support import assert_problem, make_settings


async def gate(world, publisher: dict[str, str], image: bytes, scores: dict[str, float]):
    body = {
        "generation_id": "gen-gated",
        "prompt": "a lighthouse at dusk, oil painting",
        "source_assets": [],
        "user_id": "user-42",
        "metadata": {"model": "example-diffusion-2", "timestamp": "2026-03-01T12:00:00Z"},
        "scores": scores,
    }
    response = await world.http.post(
        "/v1/moderation/check",
        files={
            "request": (None, json.dumps(body), "application/json"),
            "image": ("output.jpg", image, "image/jpeg"),
        },
        headers=publisher,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_allowed_decision_is_stated_in_the_manifest_and_the_record(
    world, make_client, sign_output
):
    # The publisher works for the generator's tenant, so the generator may name its decision.
    _, publisher = await make_client("publisher", tenant="genco", name="genco publisher")
    image = picture(60)
    decision = await gate(
        world,
        publisher,
        image,
        {"sexual_content": 0.01, "minor_presence": 0.01, "nonconsensual_transformation": 0.01},
    )
    assert decision["safety_status"] == "allowed"

    signed = await sign_output(
        image, tokens=[], generation_id="gen-gated", decision_id=decision["decision_id"]
    )
    body = (await world.http.post("/v1/provenance/verify", files=file_part(signed.content))).json()

    assert signed.status_code == 200, signed.text
    assert body["decision"] == {
        "id": decision["decision_id"],
        "outcome": "allowed",
        "policy_version": decision["policy_version"],
    }
    assert body["registry"]["output"]["decision_id"] == decision["decision_id"]


async def test_blocked_decision_cannot_be_signed(world, make_client, sign_output, database_url):
    _, publisher = await make_client("publisher", tenant="genco", name="genco publisher")
    image = picture(61)
    decision = await gate(
        world,
        publisher,
        image,
        {"sexual_content": 0.95, "minor_presence": 0.01, "nonconsensual_transformation": 0.01},
    )
    assert decision["safety_status"] == "blocked"
    before = await counts(database_url)

    response = await sign_output(
        image, tokens=[], generation_id="gen-gated", decision_id=decision["decision_id"]
    )

    assert_problem(response, 422, "decision_not_allowed")
    assert await counts(database_url) == before


async def test_a_revocation_during_signing_refuses_the_record(world, settings, database_url):
    """Withdrawal commits between the token check and the record: nothing is recorded."""
    consent, token = await world.granted_token()
    # This process's own parts on the same database (the test client runs the app's on
    # another event loop).
    services = await build_services(settings)
    try:
        provenance = services.provenance
        async with services.connection() as conn:
            actor = await auth.authenticate(conn, world.generator.headers["Authorization"])
            plan = await provenance.plan_signing(
                conn,
                actor=actor,
                metadata=SignMetadata(
                    generation_id="gen-race", model="m", consent_tokens=[token["token"]]
                ),
            )
        withdrawn = await world.http.post(
            f"/v1/consents/{consent['consent_id']}/withdraw",
            json={"withdrawal": helpers.withdrawal(world.signer, consent["consent_id"])},
            headers=world.uploader.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.text
        signed = await provenance.sign(Upload(data=picture(62), content_type="image/jpeg"), plan)
        before = await counts(database_url)

        with pytest.raises(ConsentTokenRejected) as refused:
            async with services.unit_of_work(actor) as uow:
                await provenance.record(uow.conn, actor=actor, plan=plan, signed=signed)
    finally:
        services.provenance.close()
        await services.close()

    assert refused.value.extra["tokens"] == [{"index": 0, "reasons": ["revoked"]}]
    assert await counts(database_url) == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_work_threads": 0}, "REGISTRY_IMAGE_WORK_THREADS"),
        ({"image_work_timeout": 0}, "REGISTRY_IMAGE_WORK_TIMEOUT"),
        ({"provenance_lookup_max_distance": 33}, "REGISTRY_PROVENANCE_LOOKUP_MAX_DISTANCE"),
        ({"provenance_lookup_max_distance": -1}, "REGISTRY_PROVENANCE_LOOKUP_MAX_DISTANCE"),
    ],
)
def test_settings_are_checked(tmp_path, overrides, message):
    with pytest.raises(SettingsError, match=message):
        make_settings("postgresql://localhost/x", tmp_path, **overrides)


def test_remote_manifest_hosts_are_a_comma_separated_list(tmp_path):
    settings = make_settings(
        "postgresql://localhost/x", tmp_path, remote_manifest_hosts=" A.example, b.example ,"
    )

    assert settings.remote_manifest_host_list == ("a.example", "b.example")


async def test_trust_anchors_that_are_not_certificates_stop_the_start(client, tmp_path):
    services = client.app.state.services
    bad = tmp_path / "anchors.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    good = make_settings("postgresql://localhost/x", tmp_path, trust_anchors=TEST_ANCHORS)
    broken = make_settings("postgresql://localhost/x", tmp_path, trust_anchors=bad)

    trusted = provenance_service(
        good, c2pa=services.c2pa, keyring=services.keyring, tokens=services.consent
    )
    trusted.close()
    with pytest.raises(SettingsError, match="REGISTRY_TRUST_ANCHORS"):
        provenance_service(
            broken, c2pa=services.c2pa, keyring=services.keyring, tokens=services.consent
        )
