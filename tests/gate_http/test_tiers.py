"""Access tiers and rate limits tied to risk, against the real service: an admin sets a
client's tier, a burst of blocked decisions shrinks its limit at the next risk round (and the
429 says which limit applied), quiet signals restore it; bad tiers change nothing."""

from __future__ import annotations

import pytest

from registry import operations
from registry.core import auth, db
from registry.core.tiers import MIN_DECISIONS, RiskSignals, assess, parse_tier_limits
from registry.core.uow import unit_of_work
from tests.gate_http.conftest import output, rows
from tests.support import assert_problem

BLOCKING = {"sexual_content": 0.95, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}


async def _risk_round(database_url):
    """One round of the service's risk worker, as the service's role, on the service's codecs."""
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with (
            pool.acquire() as conn,
            unit_of_work(conn, actor="system", tenant=auth.SYSTEM_TENANT) as uow,
        ):
            return await operations.refresh_client_risk(uow)
    finally:
        await pool.close()


async def _client(world, client_id):
    response = await world.http.get(f"/v1/admin/clients/{client_id}", headers=world.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_admin_sets_a_tier_and_the_limit_follows(
    world, database_url, service_database_url
):
    created = await world.http.post(
        "/v1/admin/clients",
        json={"name": "sign-up", "roles": ["publisher"], "tenant": "pubco", "tier": "public"},
        headers=world.admin,
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    limit = (await _client(world, client_id))["rate_limit"]
    assert limit == {
        "tier": "public",
        "tier_limit_per_minute": 300,  # a quarter of REGISTRY_RATE_LIMIT_PER_MINUTE
        "risk_factor": 1.0,
        "risk_reasons": [],
        "risk_changed_at": None,
        "limit_per_minute": 300,
    }
    # A public client is new for a week: the first risk round halves its limit.
    changed = await _risk_round(service_database_url)
    assert changed[client_id].reasons == ("new_client",)
    assert (await _client(world, client_id))["rate_limit"]["limit_per_minute"] == 150

    raised = await world.http.post(
        f"/v1/admin/clients/{client_id}/tier", json={"tier": "enterprise"}, headers=world.admin
    )
    assert raised.status_code == 200, raised.text
    assert raised.json()["rate_limit"]["tier"] == "enterprise"
    assert raised.json()["rate_limit"]["tier_limit_per_minute"] == 6000
    # Age says nothing about a client the operator contracted: the next round restores it.
    await _risk_round(service_database_url)
    limit = (await _client(world, client_id))["rate_limit"]
    assert (limit["risk_factor"], limit["limit_per_minute"]) == (1.0, 6000)
    events = await rows(
        database_url,
        "SELECT action, payload FROM audit_events WHERE subject_id = $1 ORDER BY seq",
        client_id,
    )
    assert [e["action"] for e in events] == [
        "client.created",
        "client.risk_changed",
        "client.tier_set",
        "client.risk_changed",
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tier": "gold"}, "invalid_value"),
        ({"tier": 3}, "invalid_type"),
        ({}, "missing_field"),
        ({"tier": "public", "limit": 5}, "unknown_field"),
    ],
)
async def test_a_bad_tier_changes_nothing(world, database_url, body, code):
    client_id = world.publisher.client_id
    before = await _client(world, client_id)
    response = await world.http.post(
        f"/v1/admin/clients/{client_id}/tier", json=body, headers=world.admin
    )
    assert_problem(response, 400, code)
    assert await _client(world, client_id) == before
    created = await world.http.post(
        "/v1/admin/clients",
        json={"name": "x", "roles": ["publisher"], "tenant": "pubco", "tier": "gold"},
        headers=world.admin,
    )
    assert_problem(created, 400, "invalid_value")
    [row] = await rows(database_url, "SELECT count(*) AS n FROM api_clients WHERE name = 'x'")
    assert row["n"] == 0


async def test_tiers_for_unknown_clients_and_non_admins_are_refused(world):
    missing = await world.http.post(
        "/v1/admin/clients/cl_0000000000000000/tier", json={"tier": "public"}, headers=world.admin
    )
    assert_problem(missing, 404, "client_not_found")
    forbidden = await world.http.post(
        f"/v1/admin/clients/{world.publisher.client_id}/tier",
        json={"tier": "enterprise"},
        headers=world.publisher.headers,
    )
    assert_problem(forbidden, 403, "forbidden")
    assert (await _client(world, world.publisher.client_id))["rate_limit"]["tier"] == "verified"


async def test_a_burst_of_blocks_shrinks_the_limit_and_the_429_says_why(
    world, gate, app_with, database_url, service_database_url
):
    publisher = world.publisher
    for seed in range(MIN_DECISIONS):
        response = await gate(
            output(100 + seed), generation_id=f"gen-burst-{seed}", scores=BLOCKING
        )
        assert response.status_code == 200, response.text
        assert response.json()["safety_status"] == "blocked"
    decision_id = response.json()["decision_id"]

    changed = await _risk_round(service_database_url)
    assert changed[publisher.client_id].reasons == ("blocked_rate_high",)
    limit = (await _client(world, publisher.client_id))["rate_limit"]
    assert limit["risk_factor"] == 0.25
    assert limit["risk_reasons"] == ["blocked_rate_high"]
    assert limit["limit_per_minute"] == 300
    assert limit["risk_changed_at"] is not None
    # The other clients did nothing wrong.
    assert world.generator.client_id not in changed

    # On a service whose verified tier has 120 a minute (a burst of 20), the publisher now
    # gets 30 (a burst of 10); a client without risk still gets its 20.
    async with app_with(tier_limits="verified=120") as http:
        path = f"/v1/moderation/decisions/{decision_id}"
        answers = [(await http.get(path, headers=publisher.headers)) for _ in range(16)]
        statuses = [a.status_code for a in answers]
        assert 429 in statuses
        assert statuses.index(429) <= 11
        refused = assert_problem(answers[statuses.index(429)], 429, "rate_limited")
        assert refused["detail"] == (
            "rate limit exceeded for this caller: 30 requests a minute for this client "
            "(tier verified, reduced from 120 for blocked_rate_high)"
        )
        calm = [
            (await http.get("/v1/uses", headers=world.generator.headers)).status_code
            for _ in range(16)
        ]
        assert calm == [200] * 16

    # An hour later the blocks are outside the window: the next round restores the limit.
    await rows(
        database_url,
        "UPDATE moderation_decisions SET created_at = created_at - interval '2 hours'"
        " WHERE client_id = $1 RETURNING 1",
        publisher.client_id,
    )
    changed = await _risk_round(service_database_url)
    assert changed[publisher.client_id].factor == 1.0
    assert (await _client(world, publisher.client_id))["rate_limit"]["limit_per_minute"] == 1200


def test_risk_rules():
    quiet = RiskSignals(age_days=30, decisions=100, blocked=10, hash_matches=0)
    assert assess("verified", quiet).factor == 1.0
    # Too few decisions say nothing about a rate.
    few = RiskSignals(age_days=30, decisions=MIN_DECISIONS - 1, blocked=MIN_DECISIONS - 1)
    assert assess("verified", few).factor == 1.0
    elevated = RiskSignals(age_days=30, decisions=100, blocked=20)
    assert assess("enterprise", elevated).reasons == ("blocked_rate_elevated",)
    everything = RiskSignals(age_days=1, decisions=40, blocked=20, hash_matches=3)
    risk = assess("public", everything)
    assert risk.reasons == ("blocked_rate_high", "hash_matches", "new_client")
    assert risk.factor == 0.25 * 0.5 * 0.5
    assert assess("verified", everything).factor == 0.25 * 0.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("gold=5", "'gold' is not a tier"),
        ("public=0", "whole number"),
        ("public=x", "whole number"),
        ("public", "whole number"),
        ("public=5,public=6", "given twice"),
    ],
)
def test_bad_tier_limits_are_refused_naming_the_part(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_tier_limits(text, per_minute=1200)


def test_tier_limits_default_from_the_flat_limit():
    limits = parse_tier_limits("enterprise=9000", per_minute=100)
    assert (limits.public, limits.verified, limits.enterprise) == (25, 100, 9000)
