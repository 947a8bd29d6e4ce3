"""Appeals over HTTP: who may appeal what, a different reviewer decides, the record's history."""

from __future__ import annotations

import pytest

from tests.review_http.conftest import snapshot, store_decision
from tests.support import assert_problem


async def _appeal(client, publisher, decision_id, statement="The person in the photo is me."):
    return await client.post(
        "/v1/appeals",
        json={"decision_id": decision_id, "statement": statement},
        headers=publisher.headers,
    )


async def _review(client, reviewer, ticket_id, outcome, note):
    claimed = await client.post("/v1/reviews/claim", headers=reviewer.headers)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == ticket_id
    decided = await client.post(
        f"/v1/reviews/{ticket_id}/decision",
        json={"outcome": outcome, "note": note},
        headers=reviewer.headers,
    )
    assert decided.status_code == 200, decided.text
    return decided.json()


async def test_an_appeal_is_decided_by_another_reviewer_and_can_overturn(
    client, pool, staff, publisher, admin, vault
):
    first, second = staff
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    await _review(client, first, stored.ticket_id, "blocked", "Looks explicit to me.")

    statement = "This is an artistic nude I made of myself; I consented."
    response = await _appeal(client, publisher, stored.decision_id, statement)
    assert response.status_code == 201, response.text
    appeal = response.json()
    assert appeal["status"] == "open"
    assert appeal["appealed_status"] == "blocked"
    assert appeal["decision_id"] == stored.decision_id

    # The reviewer who blocked it is never offered the appeal.
    assert (await client.post("/v1/reviews/claim", headers=first.headers)).status_code == 204
    listed = await client.get("/v1/reviews?status=open", headers=first.headers)
    [ticket] = listed.json()["tickets"]
    assert ticket["kind"] == "appeal"
    assert ticket["appeal_id"] == appeal["id"]

    decided = await _review(client, second, appeal["ticket_id"], "allowed", "Self-made, consented.")
    assert decided["appeal_status"] == "overturned"
    assert decided["current_status"] == "allowed"

    record = await client.get(
        f"/v1/moderation/decisions/{stored.decision_id}", headers=publisher.headers
    )
    assert record.status_code == 200
    body = record.json()
    assert body["status"] == "review"
    assert body["current_status"] == "allowed"
    assert [(h["event"], h["from_status"], h["to_status"]) for h in body["history"]] == [
        ("gated", None, "review"),
        ("reviewed", "review", "blocked"),
        ("appealed", "blocked", "blocked"),
        ("appeal_decided", "blocked", "allowed"),
    ]
    assert [h["actor"] for h in body["history"]] == [
        "gate",
        first.client_id,
        publisher.client_id,
        second.client_id,
    ]
    assert body["appeal"]["status"] == "overturned"
    assert body["appeal"]["statement"] == statement
    assert body["statement"].startswith("In review: a person will look at this")
    assert "The appeal was decided on" in body["statement"]
    assert body["statement"].endswith("Current status: allowed.")

    events = (await client.get("/v1/audit/events?limit=1000", headers=admin)).json()["events"]
    actions = [e["action"] for e in events]
    assert "appeal.filed" in actions
    assert "appeal.decided" in actions
    assert statement not in str(events)

    stats = (await client.get("/v1/moderation/stats", headers=admin)).json()
    assert stats["appeals"] == {"filed": 1, "decided": 1, "overturned": 1, "overturn_rate": 1.0}


async def test_an_upheld_appeal_keeps_the_block(client, pool, staff, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    response = await _appeal(client, publisher, stored.decision_id)
    assert response.status_code == 201, response.text
    # The gate blocked it, no human decided before: any reviewer may take the appeal.
    decided = await _review(
        client, staff[0], response.json()["ticket_id"], "blocked", "The block stands."
    )
    assert decided["appeal_status"] == "upheld"
    assert decided["current_status"] == "blocked"
    record = await client.get(
        f"/v1/moderation/decisions/{stored.decision_id}", headers=publisher.headers
    )
    assert record.json()["appeal"]["status"] == "upheld"
    assert record.json()["current_status"] == "blocked"


async def test_another_tenants_decision_is_not_found(client, pool, party, publisher, vault):
    other = await party("publisher", "otherco")
    stored = await store_decision(pool, vault, client=other, tenant="otherco", status="blocked")
    before = await snapshot(pool)
    assert_problem(await _appeal(client, publisher, stored.decision_id), 404, "decision_not_found")
    assert_problem(
        await client.get(
            f"/v1/moderation/decisions/{stored.decision_id}", headers=publisher.headers
        ),
        404,
        "decision_not_found",
    )
    assert await snapshot(pool) == before


async def test_an_unknown_decision_is_not_found(client, pool, publisher):
    before = await snapshot(pool)
    assert_problem(
        await _appeal(client, publisher, "dec_nosuchdecision00000"), 404, "decision_not_found"
    )
    assert await snapshot(pool) == before


@pytest.mark.parametrize("status", ["allowed", "review"])
async def test_only_a_blocked_decision_can_be_appealed(client, pool, publisher, status, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco", status=status)
    before = await snapshot(pool)
    response = await _appeal(client, publisher, stored.decision_id)
    assert_problem(response, 409, "decision_not_appealable")
    assert await snapshot(pool) == before


async def test_a_decision_is_appealed_once(client, pool, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    assert (await _appeal(client, publisher, stored.decision_id)).status_code == 201
    before = await snapshot(pool)
    again = await _appeal(client, publisher, stored.decision_id, "Please look again.")
    assert_problem(again, 409, "appeal_exists")
    assert await snapshot(pool) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"statement": "x"}, "missing_field"),
        ({"decision_id": "dec_x"}, "missing_field"),
        ({"statement": "", "decision_id": "dec_x"}, "invalid_value"),
        ({"statement": "  ", "decision_id": "dec_x"}, "invalid_value"),
        ({"statement": "x" * 4001, "decision_id": "dec_x"}, "invalid_value"),
        ({"statement": "x", "decision_id": "dec_x", "user": "u"}, "unknown_field"),
    ],
)
async def test_bad_appeal_bodies_change_nothing(client, pool, publisher, body, code, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    body = {k: (stored.decision_id if v == "dec_x" else v) for k, v in body.items()}
    before = await snapshot(pool)
    response = await client.post("/v1/appeals", json=body, headers=publisher.headers)
    assert_problem(response, 400, code)
    assert await snapshot(pool) == before


async def test_only_publishers_appeal(client, pool, staff, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    before = await snapshot(pool)
    assert_problem(await _appeal(client, staff[0], stored.decision_id), 403, "forbidden")
    assert await snapshot(pool) == before
