"""Likely minors at the gate, with real consents: a subject's consent blocks, a guardian's
sends to a person, likely sexual content blocks and is flagged for the operator's legal
reporting, which admins list."""

from __future__ import annotations

import pytest

from tests.gate_http.conftest import consented_source, counts, output


async def _decide(world, gate, seed, *, role, **scores):
    source = await consented_source(world, signer_role=role)
    values = {
        "sexual_content": 0.01,
        "minor_presence": 0.01,
        "nonconsensual_transformation": 0.01,
    } | scores
    response = await gate(
        output(seed), generation_id=f"gen-minor-{seed}", sources=[source.asset()], scores=values
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_subjects_consent_does_not_let_a_likely_minor_through(world, gate):
    decision = await _decide(world, gate, 41, role="subject", minor_presence=0.6)
    assert decision["safety_status"] == "blocked"
    assert "minor_real_person" in decision["reasons"]


async def test_a_guardians_consent_sends_a_likely_minor_to_a_person(world, gate):
    decision = await _decide(world, gate, 42, role="guardian", minor_presence=0.6)
    assert decision["safety_status"] == "review"
    assert "minor_guardian_review" in decision["reasons"]
    assert decision["review_ticket"]


async def test_likely_sexual_content_with_a_minor_is_blocked_and_listed_for_reporting(
    world, gate, database_url
):
    plain = await _decide(world, gate, 43, role="guardian", minor_presence=0.6)
    flagged = await _decide(
        world, gate, 44, role="guardian", minor_presence=0.6, sexual_content=0.4
    )
    assert flagged["safety_status"] == "blocked"
    assert "minor_sexual" in flagged["reasons"]

    listed = await world.http.get(
        "/v1/moderation/decisions", params={"legal_report": "true"}, headers=world.admin
    )
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [d["decision_id"] for d in page["decisions"]] == [flagged["decision_id"]]
    assert page["decisions"][0]["legal_report"] is True
    assert page["next_before"] is None
    others = await world.http.get(
        "/v1/moderation/decisions", params={"legal_report": "false"}, headers=world.admin
    )
    assert plain["decision_id"] in [d["decision_id"] for d in others.json()["decisions"]]
    assert flagged["decision_id"] not in [d["decision_id"] for d in others.json()["decisions"]]
    # Pages: one at a time, the next page starts below the last one's seq.
    first = (
        await world.http.get("/v1/moderation/decisions", params={"limit": 1}, headers=world.admin)
    ).json()
    assert [d["decision_id"] for d in first["decisions"]] == [flagged["decision_id"]]
    second = (
        await world.http.get(
            "/v1/moderation/decisions",
            params={"limit": 1, "before": first["next_before"]},
            headers=world.admin,
        )
    ).json()
    assert [d["decision_id"] for d in second["decisions"]] == [plain["decision_id"]]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 400),
        ({"limit": 501}, 400),
        ({"before": 0}, 400),
        ({"legal_report": "perhaps"}, 400),
    ],
)
async def test_bad_listing_parameters_are_refused(world, params, status, database_url):
    before = await counts(database_url)
    response = await world.http.get("/v1/moderation/decisions", params=params, headers=world.admin)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await counts(database_url) == before


async def test_only_admins_list_decisions(world):
    for client in (world.publisher, world.generator):
        response = await world.http.get("/v1/moderation/decisions", headers=client.headers)
        assert response.status_code == 403, response.text
    assert (await world.http.get("/v1/moderation/decisions")).status_code == 401
