"""The whole path through the real gate: a review worked by a person, and a consent withdrawn
after publishing that reaches the publisher as a signed takedown notice naming the decision
and the signed output."""

from __future__ import annotations

import json

import pytest

from tests.consent_http import conftest as consent_fixtures
from tests.consent_http import helpers
from tests.gate_http.conftest import check_request, consented_source, output, post_check
from tests.review_http.test_takedown import Receiver, _settled, _verify
from tests.support import assert_problem, make_settings

world = consent_fixtures.world


@pytest.fixture
def settings(service_database_url, tmp_path):
    return make_settings(
        service_database_url,
        tmp_path,
        webhook_hosts="127.0.0.1",
        takedown_poll_interval=0.05,
        takedown_retry_base=0.05,
        takedown_retry_max=0.2,
    )


async def test_a_reviewer_sees_the_rule_and_the_normalised_fragment_a_prompt_matched(
    world, make_client
):
    _, reviewer = await make_client("reviewer", tenant="system", name="reviewer")
    # No real-person source: the rule does not count here, yet its match is evidence; the
    # supplied prompt-intent score sends the request to a person.
    gated = await post_check(
        world.http,
        world.publisher.headers,
        check_request(
            "gen-prompt",
            prompt="make Jane Doe look s 3 x y, watercolour",
            prompt_scores={"prompt_intent": 0.6, "toxicity": 0.2},
        ),
        output(4),
    )
    decision = gated.json()
    assert (decision["safety_status"], decision["reasons"]) == (
        "review",
        ["prompt_score_prompt_intent_review"],
    )
    case = (
        await world.http.get(f"/v1/reviews/{decision['review_ticket']}", headers=reviewer)
    ).json()
    prompt = case["evidence"]["prompt"]
    assert prompt["matched"] == ["sexualising"]
    assert prompt["matches"] == [{"rule": "sexualising", "fragments": ["sexy"]}]
    assert prompt["scores"] == {"prompt_intent": 0.6, "toxicity": 0.2}
    assert [r["code"] for r in case["decision"]["reasons"]] == ["prompt_score_prompt_intent_review"]
    assert [n["code"] for n in case["decision"]["notes"]] == [
        "score_unknown_category",
        "provenance_absent",
    ]


async def test_a_review_decision_is_worked_by_a_person(world, make_client):
    _, reviewer = await make_client("reviewer", tenant="system", name="reviewer")
    gated = await post_check(
        world.http,
        world.publisher.headers,
        check_request(
            "gen-review",
            scores={
                "sexual_content": 0.4,
                "minor_presence": 0.01,
                "nonconsensual_transformation": 0.01,
            },
        ),
        output(3),
    )
    assert gated.status_code == 200, gated.text
    decision = gated.json()
    assert decision["safety_status"] == "review"

    claimed = await world.http.post("/v1/reviews/claim", headers=reviewer)
    assert claimed.json()["id"] == decision["review_ticket"]
    case = (
        await world.http.get(f"/v1/reviews/{decision['review_ticket']}", headers=reviewer)
    ).json()
    assert case["request"]["prompt"] == "put her in a sunny park, watercolour style"
    assert case["request"]["user_id"] == "user-42"
    assert case["evidence"]["classifiers"][0]["origin"] == "supplied"
    assert case["decision"]["policy_version"] == decision["policy_version"]

    decided = await world.http.post(
        f"/v1/reviews/{decision['review_ticket']}/decision",
        json={"outcome": "allowed", "note": "A stylised portrait; nothing sexual."},
        headers=reviewer,
    )
    assert decided.status_code == 200, decided.text
    record = await world.http.get(
        f"/v1/moderation/decisions/{decision['decision_id']}", headers=world.publisher.headers
    )
    assert record.json()["current_status"] == "allowed"


async def test_withdrawal_after_publishing_notifies_the_publisher(world, make_client):
    # The publisher works for the generator's tenant, so the generator may name its decision.
    publisher_id, publisher = await make_client("publisher", tenant="genco", name="platform")
    source = await consented_source(world)
    image = output(4)
    gated = await post_check(
        world.http,
        publisher,
        check_request(
            "gen-published", sources=[source.asset()], generator=world.generator.client_id
        ),
        image,
    )
    assert gated.status_code == 200, gated.text
    decision = gated.json()
    assert decision["safety_status"] == "allowed", decision["reasons"]

    signed = await world.http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", image, "image/jpeg"),
            "metadata": (
                None,
                json.dumps(
                    {
                        "generation_id": "gen-published",
                        "model": "example-diffusion-2",
                        "consent_tokens": [source.token],
                        "decision_id": decision["decision_id"],
                    }
                ),
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )
    assert signed.status_code == 200, signed.text
    output_id = signed.headers["provenance-output-id"]

    with Receiver(failures=1) as receiver:
        registered = await world.http.post(
            "/v1/admin/webhooks",
            json={"client_id": publisher_id, "url": receiver.url},
            headers=world.admin,
        )
        assert registered.status_code == 201, registered.text

        withdrawn = await world.http.post(
            f"/v1/consents/{source.consent_id}/withdraw",
            json={"withdrawal": helpers.withdrawal(world.signer, source.consent_id)},
            headers=world.uploader.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert [d["decision_id"] for d in withdrawn.json()["decisions"]] == [
            decision["decision_id"]
        ]
        assert [o["output_id"] for o in withdrawn.json()["outputs"]] == [output_id]

        [delivery] = await _settled(world.http, world.admin, 1)
        assert delivery["status"] == "delivered"
        assert delivery["attempts"] == 2

    affected = await world.http.get(
        f"/v1/moderation/affected?consent_id={source.consent_id}", headers=publisher
    )
    assert [o["output_id"] for o in affected.json()["outputs"]] == [output_id]
    assert affected.json()["outputs"][0]["decision_id"] == decision["decision_id"]

    jwks = (await world.http.get("/.well-known/jwks.json")).json()
    claims = _verify(receiver.received[-1][1].decode(), jwks, audience=publisher_id)
    assert claims["consent_id"] == source.consent_id
    assert claims["decisions"] == [decision["decision_id"]]
    assert claims["outputs"] == [output_id]
    assert claims["generations"] == ["gen-published"]


async def test_a_reviewer_cannot_allow_an_output_whose_consent_ended_since_the_gate(
    world, make_client
):
    _, reviewer = await make_client("reviewer", tenant="system", name="reviewer")
    source = await consented_source(world)
    gated = await post_check(
        world.http,
        world.publisher.headers,
        check_request(
            "gen-withdrawn-in-review",
            sources=[source.asset()],
            generator=world.generator.client_id,
            # Violence in the review band: a person decides, consent covers the rest.
            scores={"sexual_content": 0.1, "minor_presence": 0.01, "violence": 0.62},
        ),
        output(5),
    )
    decision = gated.json()
    assert decision["safety_status"] == "review", decision
    ticket = decision["review_ticket"]
    claimed = await world.http.post("/v1/reviews/claim", headers=reviewer)
    assert claimed.json()["id"] == ticket

    withdrawn = await world.http.post(
        f"/v1/consents/{source.consent_id}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, source.consent_id)},
        headers=world.uploader.headers,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    case = (await world.http.get(f"/v1/reviews/{ticket}", headers=reviewer)).json()
    assert [c["consent_status"] for c in case["consents"]] == ["withdrawn"]

    refused = await world.http.post(
        f"/v1/reviews/{ticket}/decision",
        json={"outcome": "allowed", "note": "looks fine"},
        headers=reviewer,
    )
    problem = assert_problem(refused, 409, "consent_ended_since_gate")
    assert source.consent_id in problem["detail"]
    record = await world.http.get(
        f"/v1/moderation/decisions/{decision['decision_id']}", headers=world.publisher.headers
    )
    assert record.json()["current_status"] == "review"
    assert [h["event"] for h in record.json()["history"]] == ["gated"]
    # Blocking it is still possible, and is what the takedown notice asked for.
    blocked = await world.http.post(
        f"/v1/reviews/{ticket}/decision",
        json={"outcome": "blocked", "note": "consent withdrawn"},
        headers=reviewer,
    )
    assert blocked.status_code == 200, blocked.text
