"""Named signals and prompt-intent scores over HTTP (issue 16, items 2 and 3): what the gate
counts, what it records without counting, and the requests it refuses."""

from __future__ import annotations

import json

import pytest

from tests.gate_http.conftest import CLEAN_SCORES, consented_source, counts, output, rows
from tests.support import assert_problem


async def _prompt_check(world, **body):
    request = {"generation_id": "gen-s1", "prompt": "make her smile, studio light", **body}
    return await world.http.post(
        "/v1/moderation/prompt-check", json=request, headers=world.generator.headers
    )


async def _decided_payload(database_url):
    [event] = await rows(
        database_url, "SELECT payload FROM audit_events WHERE action = 'moderation.decided'"
    )
    return json.loads(event["payload"])


async def test_a_real_person_source_needs_a_nonconsensual_transformation_score(world, gate):
    source = await consented_source(world)
    scores = {"sexual_content": 0.01, "minor_presence": 0.01}
    response = await gate(output(1), sources=[source.asset()], scores=scores)
    assert response.status_code == 200, response.text
    assert (response.json()["safety_status"], response.json()["reasons"]) == (
        "review",
        ["score_missing"],
    )
    again = await gate(
        output(2),
        generation_id="gen-2",
        sources=[source.asset()],
        scores=scores | {"nonconsensual_transformation": 0.85},
    )
    assert again.json()["safety_status"] == "blocked"
    assert again.json()["reasons"] == ["score_nonconsensual_transformation_block"]


async def test_unknown_and_unpermitted_scores_are_notes_on_the_decision(world, gate):
    source = await consented_source(world)
    scores = CLEAN_SCORES | {"aesthetics": 0.7, "face_similarity": 0.99}
    response = await gate(output(3), sources=[source.asset()], scores=scores)
    body = response.json()
    assert (body["safety_status"], body["reasons"]) == ("allowed", [])
    assert body["scores"]["aesthetics"] == 0.7
    record = await world.http.get(
        f"/v1/moderation/decisions/{body['decision_id']}", headers=world.publisher.headers
    )
    assert record.status_code == 200, record.text
    notes = [note["code"] for note in record.json()["notes"]]
    assert notes == ["provenance_absent", "score_unknown_category", "face_similarity_not_permitted"]
    assert all(note["text"] for note in record.json()["notes"])


@pytest.mark.parametrize(
    ("value", "status", "reasons"),
    [
        (0.2, "allowed", []),
        (0.6, "review", ["prompt_score_prompt_intent_review"]),
        (0.95, "blocked", ["prompt_score_prompt_intent_block"]),
    ],
)
async def test_prompt_scores_count_in_the_prompt_check(world, value, status, reasons):
    response = await _prompt_check(world, prompt_scores={"prompt_intent": value})
    assert response.status_code == 200, response.text
    assert (response.json()["safety_status"], response.json()["reasons"]) == (status, reasons)


async def test_prompt_scores_count_in_the_gate(world, gate):
    response = await gate(output(4), prompt_scores={"prompt_intent": 0.93})
    assert response.status_code == 200, response.text
    assert response.json()["reasons"] == ["prompt_score_prompt_intent_block"]


async def test_the_audit_event_names_the_rule_never_the_prompt(world, database_url):
    source = await consented_source(world)
    prompt = "please r e m o v e   Jane Doe's   c l o t h e s"
    response = await _prompt_check(world, prompt=prompt, source_assets=[source.asset()])
    assert response.json()["safety_status"] == "blocked"
    payload = await _decided_payload(database_url)
    assert payload["prompt_rules"] == ["undressing"]
    flat = json.dumps(payload).lower()
    assert "jane" not in flat
    assert "clothes" not in flat


BAD_SCORES = [
    ({"prompt_intent": 1.5}, 422, "prompt_score_invalid"),
    ({"prompt_intent": -0.1}, 422, "prompt_score_invalid"),
    ({"prompt_intent": "high"}, 422, "prompt_score_invalid"),
    ({"prompt_intent": None}, 422, "prompt_score_invalid"),
    ({"prompt_intent": True}, 422, "prompt_score_invalid"),
    ({"prompt_intent": [0.5]}, 422, "prompt_score_invalid"),
    ({"Prompt Intent": 0.5}, 422, "prompt_score_invalid"),
    ([0.5], 400, "invalid_type"),
    ("high", 400, "invalid_type"),
]


@pytest.mark.parametrize(("scores", "status", "code"), BAD_SCORES)
async def test_bad_prompt_scores_in_the_prompt_check_store_nothing(
    world, database_url, scores, status, code
):
    before = await counts(database_url)
    problem = assert_problem(await _prompt_check(world, prompt_scores=scores), status, code)
    assert "prompt_scores" in problem["detail"]
    assert await counts(database_url) == before


@pytest.mark.parametrize(("scores", "status", "code"), BAD_SCORES)
async def test_bad_prompt_scores_in_the_gate_store_nothing(
    world, gate, database_url, scores, status, code
):
    before = await counts(database_url)
    problem = assert_problem(await gate(output(5), prompt_scores=scores), status, code)
    assert "prompt_scores" in problem["detail"]
    assert await counts(database_url) == before
