"""The publish gate end to end: a consented edit passes, is recorded and can be signed."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec

from moderation import decode_evidence, default_policy
from tests.gate_http.conftest import (
    consented_source,
    counts,
    output,
    rows,
)
from tests.support import assert_problem, opened_decisions


def _claims(jws: str) -> dict:
    payload = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _assert_complete_evidence(stored: dict[str, object]) -> None:
    evidence = decode_evidence(msgspec.json.encode(stored))
    assert evidence.image is not None
    assert evidence.image.decoded
    assert len(evidence.image.variants) == 7
    assert evidence.provenance is not None
    assert evidence.provenance.state == "absent"
    assert [s.check.valid for s in evidence.sources if s.check] == [True, True]
    assert {t.step for t in evidence.timings} >= {"image", "prompt", "consent", "hashes"}


async def test_consented_edit_is_allowed_recorded_and_signed(
    world, make_client, database_url, settings
):
    # The publisher works for the generator's tenant, so the signed manifest may name its
    # decision.
    _, publisher = await make_client("publisher", tenant="genco", name="genco publisher")
    first, second = await consented_source(world), await consented_source(world)
    image = output(1)
    body = {
        "generation_id": "gen-edit-1",
        "prompt": "put them in a sunny park, watercolour style",
        "source_assets": [first.asset(), second.asset()],
        "user_id": "user-42",
        "metadata": {
            "model": "example-diffusion-2",
            "timestamp": "2026-03-01T12:00:00Z",
            "generator_client_id": world.generator.client_id,
        },
        "scores": {
            "sexual_content": 0.02,
            "minor_presence": 0.01,
            "nonconsensual_transformation": 0.01,
        },
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
    decision = response.json()
    assert decision["safety_status"] == "allowed"
    assert decision["reasons"] == []
    assert decision["review_ticket"] is None
    assert decision["generation_id"] == "gen-edit-1"
    assert decision["scores"] == {
        "minor_presence": 0.01,
        "nonconsensual_transformation": 0.01,
        "sexual_content": 0.02,
    }
    assert decision["policy_version"] == default_policy().version
    assert "idempotent-replayed" not in response.headers

    [row] = await rows(database_url, "SELECT *, evidence::text AS raw FROM moderation_decisions")
    assert row["decision_id"] == decision["decision_id"]
    assert (row["status"], row["current_status"], row["stage"]) == ("allowed", "allowed", "publish")
    assert row["image_sha256"] == hashlib.sha256(image).hexdigest()
    # In the table the request and evidence are sealed: only the classifier results are clear.
    assert row["request"] is None
    assert set(json.loads(row["raw"])) == {"classifiers"}
    assert body["prompt"] not in bytes(row["sealed"]).decode("latin-1")
    [files] = await opened_decisions(database_url, settings.master_key)
    _assert_complete_evidence(files.evidence)
    stored_request = files.request
    assert stored_request["prompt"] == body["prompt"]
    assert first.token not in row["raw"] + json.dumps(stored_request)
    assert stored_request["source_assets"][0]["token_present"] is True
    consents = await rows(
        database_url,
        "SELECT consent_id, jti FROM moderation_decision_consents ORDER BY position",
    )
    assert [(c["consent_id"], c["jti"]) for c in consents] == [
        (first.consent_id, first.jti),
        (second.consent_id, second.jti),
    ]
    [event] = await rows(
        database_url, "SELECT * FROM audit_events WHERE action = 'moderation.decided'"
    )
    assert event["subject_id"] == decision["decision_id"]
    payload = json.loads(event["payload"])
    assert payload["status"] == "allowed"
    assert payload["consent_jtis"] == [first.jti, second.jti]
    # No prompt, user or token in the audit log.
    flat = json.dumps(payload)
    assert body["prompt"] not in flat
    assert "user-42" not in flat
    assert first.token not in flat
    assert row["image_sha256"] not in flat

    signed = await world.http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", image, "image/jpeg"),
            "metadata": (
                None,
                json.dumps(
                    {
                        "generation_id": "gen-edit-1",
                        "model": "example-diffusion-2",
                        "consent_tokens": [first.token, second.token],
                        "decision_id": decision["decision_id"],
                        "edited_reference": True,
                    }
                ),
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )
    assert signed.status_code == 200, signed.text
    claims = _claims(signed.headers["provenance-assertion"])
    assert claims["decision"] == {
        "id": decision["decision_id"],
        "outcome": "allowed",
        "policy_version": decision["policy_version"],
    }
    [stored] = await rows(database_url, "SELECT decision_id FROM signed_outputs")
    assert stored["decision_id"] == decision["decision_id"]


async def test_another_tenants_decision_cannot_be_named_when_signing(world, gate):
    source = await consented_source(world)
    decision = (await gate(output(2), sources=[source.asset()])).json()
    assert decision["safety_status"] == "allowed"

    signed = await world.http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", output(2), "image/jpeg"),
            "metadata": (
                None,
                json.dumps(
                    {
                        "generation_id": "gen-1",
                        "model": "m",
                        "consent_tokens": [source.token],
                        "decision_id": decision["decision_id"],
                    }
                ),
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )

    assert_problem(signed, 422, "decision_unknown")


async def test_same_generation_and_image_returns_the_same_decision(world, gate, database_url):
    source = await consented_source(world)
    image = output(3)
    first = await gate(image, sources=[source.asset()])
    assert first.status_code == 200, first.text
    before = await counts(database_url)

    again = await gate(image, sources=[source.asset()])

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await counts(database_url) == before


async def test_same_generation_with_another_image_is_409(world, gate, database_url):
    source = await consented_source(world)
    first = await gate(output(4), sources=[source.asset()])
    assert first.status_code == 200, first.text
    before = await counts(database_url)

    other = await gate(output(5), sources=[source.asset()])

    body = assert_problem(other, 409, "generation_conflict")
    assert body["decision_id"] == first.json()["decision_id"]
    assert await counts(database_url) == before


async def test_generation_ids_are_per_client(world, gate, make_client):
    _, other_publisher = await make_client("publisher", tenant="pubco", name="other publisher")
    first = await gate(output(6))
    second = await gate(output(7), headers=other_publisher)
    assert first.status_code == second.status_code == 200
    assert first.json()["decision_id"] != second.json()["decision_id"]


async def test_policy_is_public_with_its_version_and_text(client):
    response = await client.get("/v1/policy")

    assert response.status_code == 200
    body = response.json()
    policy = default_policy()
    assert body["version"] == policy.version == hashlib.sha256(body["text"].encode()).hexdigest()
    assert body["label"] == "strict-default-2"


async def test_only_publishers_call_the_gate(world, gate, database_url):
    before = await counts(database_url)
    assert_problem(await gate(output(8), headers=world.generator.headers), 403, "forbidden")
    assert_problem(await gate(output(8), headers={}), 401, "unauthenticated")
    assert await counts(database_url) == before
