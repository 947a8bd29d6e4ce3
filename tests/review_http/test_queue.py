"""The review queue over HTTP: priority, leases, concurrent claims, the case, decisions."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from litestar.testing import AsyncTestClient

from registry.app import create_app
from tests.review_http.conftest import snapshot, store_decision
from tests.support import assert_problem


async def _claim(client, reviewer):
    return await client.post("/v1/reviews/claim", headers=reviewer.headers)


async def _decide(client, reviewer, ticket_id, **body):
    return await client.post(
        f"/v1/reviews/{ticket_id}/decision", json=body, headers=reviewer.headers
    )


async def test_claim_follows_priority_rank_then_deadline(client, pool, staff, publisher, vault):
    early = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    # Same tier ("high": score_sexual_content_review), deadlines an hour apart.
    later = await store_decision(pool, vault, client=publisher, tenant="pubco")
    sooner = await store_decision(pool, vault, client=publisher, tenant="pubco", received_at=early)
    # An urgent ticket (rank 0) comes first even with the latest deadline.
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE review_tickets SET rank = 0, tier = 'urgent', deadline = now() + interval '9h'"
            " WHERE ticket_id = $1",
            later.ticket_id,
        )
    third = await store_decision(pool, vault, client=publisher, tenant="pubco")

    order = []
    for _ in range(3):
        response = await _claim(client, staff[0])
        assert response.status_code == 200, response.text
        order.append(response.json()["id"])
    assert order == [later.ticket_id, sooner.ticket_id, third.ticket_id]


async def test_claim_leases_the_ticket_and_is_audited(client, pool, staff, publisher, admin, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    response = await _claim(client, staff[0])
    assert response.status_code == 200
    ticket = response.json()
    assert ticket["id"] == stored.ticket_id
    assert ticket["status"] == "claimed"
    assert ticket["claimed_by"] == staff[0].client_id
    assert ticket["decision_id"] == stored.decision_id
    expires = dt.datetime.fromisoformat(ticket["lease_expires_at"])
    lease = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=800) < lease <= dt.timedelta(seconds=900)

    listed = await client.get("/v1/reviews?status=claimed", headers=staff[1].headers)
    assert [t["id"] for t in listed.json()["tickets"]] == [stored.ticket_id]
    assert (await client.get("/v1/reviews?status=open", headers=staff[1].headers)).json() == {
        "tickets": []
    }

    events = await client.get(
        f"/v1/audit/events?subject_type=review_ticket&subject_id={stored.ticket_id}",
        headers=admin,
    )
    [event] = events.json()["events"]
    assert event["action"] == "review.claimed"
    assert event["actor"] == staff[0].client_id
    assert event["payload"]["decision_id"] == stored.decision_id


async def test_two_reviewers_claiming_at_once_get_different_tickets(
    client, pool, staff, publisher, vault
):
    stored = [await store_decision(pool, vault, client=publisher, tenant="pubco") for _ in range(2)]
    first, second = await asyncio.gather(_claim(client, staff[0]), _claim(client, staff[1]))
    assert first.status_code == second.status_code == 200
    ids = {first.json()["id"], second.json()["id"]}
    assert ids == {s.ticket_id for s in stored}
    assert {first.json()["claimed_by"], second.json()["claimed_by"]} == {
        staff[0].client_id,
        staff[1].client_id,
    }


async def test_one_ticket_many_claimers_exactly_one_wins(client, pool, party, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    reviewers = [await party("reviewer", "system", f"reviewer {i}") for i in range(6)]
    responses = await asyncio.gather(*(_claim(client, r) for r in reviewers))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 204, 204, 204, 204, 204]
    [winner] = [r for r in responses if r.status_code == 200]
    assert winner.json()["id"] == stored.ticket_id


async def test_two_app_instances_on_one_database_never_share_a_ticket(
    client, settings, pool, staff, publisher, vault
):
    stored = [await store_decision(pool, vault, client=publisher, tenant="pubco") for _ in range(2)]
    async with AsyncTestClient(app=create_app(settings)) as other:
        first, second = await asyncio.gather(_claim(client, staff[0]), _claim(other, staff[1]))
        third = await _claim(other, staff[1])
    assert first.status_code == second.status_code == 200
    assert {first.json()["id"], second.json()["id"]} == {s.ticket_id for s in stored}
    assert third.status_code == 204
    async with pool.acquire() as conn:
        holders = dict(await conn.fetch("SELECT ticket_id, claimed_by FROM review_tickets"))
    assert holders == {
        first.json()["id"]: staff[0].client_id,
        second.json()["id"]: staff[1].client_id,
    }


async def test_an_expired_lease_returns_the_ticket_to_the_queue(
    client, pool, staff, publisher, admin, vault
):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    assert (await _claim(client, staff[0])).status_code == 200
    assert (await _claim(client, staff[1])).status_code == 204
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE review_tickets SET lease_expires_at = now() - interval '1 second'"
            " WHERE ticket_id = $1",
            stored.ticket_id,
        )
    listed = await client.get("/v1/reviews?status=open", headers=staff[1].headers)
    [open_ticket] = listed.json()["tickets"]
    assert open_ticket["id"] == stored.ticket_id
    assert open_ticket["claimed_by"] is None

    taken = await _claim(client, staff[1])
    assert taken.status_code == 200
    assert taken.json()["id"] == stored.ticket_id
    assert taken.json()["claimed_by"] == staff[1].client_id

    # The first reviewer's lease is gone: their decision is refused, the new holder's counts.
    before = await snapshot(pool)
    late = await _decide(client, staff[0], stored.ticket_id, outcome="allowed", note="fine")
    assert_problem(late, 409, "ticket_not_held")
    assert await snapshot(pool) == before
    done = await _decide(client, staff[1], stored.ticket_id, outcome="blocked", note="explicit")
    assert done.status_code == 200, done.text

    events = await client.get(
        f"/v1/audit/events?subject_type=review_ticket&subject_id={stored.ticket_id}",
        headers=admin,
    )
    claims = [e for e in events.json()["events"] if e["action"] == "review.claimed"]
    assert claims[1]["payload"]["reclaimed_from"] == staff[0].client_id


async def test_case_shows_everything_the_gate_saw(client, pool, staff, publisher, vault):
    stored = await store_decision(
        pool,
        vault,
        client=publisher,
        tenant="pubco",
        consents=(("cns_unknown", "jti-1"),),
        prompt="her portrait, softly lit",
    )
    response = await client.get(f"/v1/reviews/{stored.ticket_id}", headers=staff[0].headers)
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["ticket"]["id"] == stored.ticket_id
    assert case["request"]["prompt"] == "her portrait, softly lit"
    assert case["request"]["source_assets"] == [{"type": "photo", "asset_id": "ast_0"}]
    evidence = case["evidence"]
    assert evidence["provenance"]["state"] == "absent"
    assert evidence["classifiers"][0]["scores"]["sexual_content"] == 0.4
    assert evidence["hashes"] == {"matches": [], "sources": [], "error": None, "pdq_quality": None}
    assert evidence["sources"][0]["check"]["consent_id"] == "cns_unknown"
    assert case["consents"] == [
        {
            "asset_id": "ast_0",
            "consent_id": "cns_unknown",
            "jti": "jti-1",
            "consent_status": "unknown",
            "token_status": "unknown",
        }
    ]
    decision = case["decision"]
    assert decision["status"] == decision["current_status"] == "review"
    assert decision["scores"]["sexual_content"] == 0.4
    assert len(decision["policy_version"]) == 64
    assert [r["code"] for r in decision["reasons"]] == ["score_sexual_content_review"]
    assert decision["reasons"][0]["text"].startswith("The sexual content score")
    assert decision["history"][0]["event"] == "gated"
    assert case["tenant"] == "pubco"
    assert case["client_id"] == publisher.client_id


async def test_decision_by_the_holder_updates_everything(
    client, pool, staff, publisher, admin, vault
):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    assert (await _claim(client, staff[0])).status_code == 200
    note = "Clearly a consented, stylised portrait; nothing explicit."
    response = await _decide(client, staff[0], stored.ticket_id, outcome="allowed", note=note)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current_status"] == "allowed"
    assert body["from_status"] == "review"
    assert body["ticket"]["status"] == "closed"
    assert body["ticket"]["outcome"] == "allowed"
    assert body["ticket"]["closed_by"] == staff[0].client_id

    record = await client.get(
        f"/v1/moderation/decisions/{stored.decision_id}", headers=publisher.headers
    )
    assert record.status_code == 200
    history = record.json()["history"]
    assert [h["event"] for h in history] == ["gated", "reviewed"]
    assert history[1]["note"] == note
    assert history[1]["actor"] == staff[0].client_id
    assert history[1]["from_status"] == "review"
    assert history[1]["to_status"] == "allowed"
    assert record.json()["current_status"] == "allowed"
    assert record.json()["status"] == "review"
    assert "A reviewer decided on" in record.json()["statement"]

    events = await client.get("/v1/audit/events?limit=1000", headers=admin)
    [decided] = [e for e in events.json()["events"] if e["action"] == "review.decided"]
    assert decided["subject_id"] == stored.ticket_id
    assert decided["payload"]["outcome"] == "allowed"
    # Notes are free text: they stay in the history table, never in the audit log.
    assert note not in str(events.json())

    listed = await client.get("/v1/reviews?status=closed", headers=staff[1].headers)
    assert [t["id"] for t in listed.json()["tickets"]] == [stored.ticket_id]


async def test_claim_with_an_empty_queue_is_204_and_changes_nothing(
    client, pool, staff, publisher, vault
):
    decided = await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    assert decided.ticket_id is None
    before = await snapshot(pool)
    response = await _claim(client, staff[0])
    assert response.status_code == 204
    assert response.content == b""
    assert await snapshot(pool) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"outcome": "allowed"}, 400, "missing_field"),
        ({"outcome": "allowed", "note": ""}, 400, "invalid_value"),
        ({"outcome": "allowed", "note": "   \n "}, 400, "invalid_value"),
        ({"outcome": "allowed", "note": "x" * 2001}, 400, "invalid_value"),
        ({"outcome": "review", "note": "later"}, 400, "invalid_value"),
        ({"outcome": "allowed", "note": "ok", "extra": 1}, 400, "unknown_field"),
        ({"note": "ok"}, 400, "missing_field"),
    ],
)
async def test_bad_decision_bodies_change_nothing(
    client, pool, staff, publisher, body, status, code, vault
):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    assert (await _claim(client, staff[0])).status_code == 200
    before = await snapshot(pool)
    response = await _decide(client, staff[0], stored.ticket_id, **body)
    assert_problem(response, status, code)
    assert await snapshot(pool) == before


async def test_a_note_of_exactly_2000_characters_is_accepted(client, pool, staff, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    assert (await _claim(client, staff[0])).status_code == 200
    response = await _decide(client, staff[0], stored.ticket_id, outcome="blocked", note="n" * 2000)
    assert response.status_code == 200, response.text


async def test_deciding_a_ticket_you_do_not_hold_changes_nothing(
    client, pool, staff, publisher, vault
):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    before = await snapshot(pool)
    # Nobody holds it yet.
    unclaimed = await _decide(client, staff[0], stored.ticket_id, outcome="allowed", note="ok")
    assert_problem(unclaimed, 409, "ticket_not_held")
    assert await snapshot(pool) == before
    # Someone else holds it.
    assert (await _claim(client, staff[1])).status_code == 200
    before = await snapshot(pool)
    other = await _decide(client, staff[0], stored.ticket_id, outcome="allowed", note="ok")
    assert_problem(other, 409, "ticket_not_held")
    assert await snapshot(pool) == before


async def test_a_decided_ticket_cannot_be_decided_again(client, pool, staff, publisher, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    assert (await _claim(client, staff[0])).status_code == 200
    first = await _decide(client, staff[0], stored.ticket_id, outcome="blocked", note="no")
    assert first.status_code == 200
    before = await snapshot(pool)
    again = await _decide(client, staff[0], stored.ticket_id, outcome="allowed", note="yes")
    assert_problem(again, 409, "ticket_closed")
    assert await snapshot(pool) == before


async def test_unknown_ticket_is_404(client, pool, staff):
    before = await snapshot(pool)
    assert_problem(
        await client.get("/v1/reviews/tkt_nosuchticket0000000", headers=staff[0].headers),
        404,
        "ticket_not_found",
    )
    assert_problem(
        await _decide(client, staff[0], "tkt_nosuchticket0000000", outcome="allowed", note="x"),
        404,
        "ticket_not_found",
    )
    assert await snapshot(pool) == before


async def test_bad_status_filter_is_400(client, staff):
    response = await client.get("/v1/reviews?status=lost", headers=staff[0].headers)
    assert_problem(response, 400, "invalid_parameter")


async def test_only_reviewers_work_the_queue(client, pool, publisher, party, vault):
    stored = await store_decision(pool, vault, client=publisher, tenant="pubco")
    admin_like = await party("admin", "system")
    before = await snapshot(pool)
    for headers in (publisher.headers, admin_like.headers):
        assert_problem(await client.get("/v1/reviews", headers=headers), 403, "forbidden")
        assert_problem(await client.post("/v1/reviews/claim", headers=headers), 403, "forbidden")
        assert_problem(
            await client.get(f"/v1/reviews/{stored.ticket_id}", headers=headers), 403, "forbidden"
        )
    assert_problem(await client.post("/v1/reviews/claim"), 401, "unauthenticated")
    assert await snapshot(pool) == before


async def test_tenant_reviewers_see_only_their_tenant(client, pool, staff, party, publisher, vault):
    """Operator reviewers (tenant ``system``) see every tenant; a reviewer client made inside a
    publisher's tenant sees and claims only that tenant's tickets."""
    other_publisher = await party("publisher", "otherco")
    ours = await store_decision(pool, vault, client=publisher, tenant="pubco")
    theirs = await store_decision(pool, vault, client=other_publisher, tenant="otherco")
    local = await party("reviewer", "pubco", "in-house reviewer")

    listed = await client.get("/v1/reviews", headers=local.headers)
    assert [t["id"] for t in listed.json()["tickets"]] == [ours.ticket_id]
    everything = await client.get("/v1/reviews", headers=staff[0].headers)
    assert {t["id"] for t in everything.json()["tickets"]} == {ours.ticket_id, theirs.ticket_id}

    assert_problem(
        await client.get(f"/v1/reviews/{theirs.ticket_id}", headers=local.headers),
        404,
        "ticket_not_found",
    )
    assert_problem(
        await client.get(f"/v1/moderation/decisions/{theirs.decision_id}", headers=local.headers),
        404,
        "decision_not_found",
    )
    first = await _claim(client, local)
    assert first.json()["id"] == ours.ticket_id
    assert (await _claim(client, local)).status_code == 204
    # The operator's reviewer still gets the other tenant's ticket.
    assert (await _claim(client, staff[0])).json()["id"] == theirs.ticket_id
