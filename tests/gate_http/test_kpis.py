"""The KPIs a policy team steers by, from decisions the real gate made: repeat offenders per
end user and per client, overturned appeals (false positives) and reported outputs a
reviewer blocked (false negatives) per policy version; and reports themselves, with the
bad requests that change nothing."""

from __future__ import annotations

import re

import pytest

from moderation import default_policy
from tests.gate_http.conftest import output, rows
from tests.support import assert_problem

BLOCKING = {"sexual_content": 0.95, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}
CLEAN = {"sexual_content": 0.01, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}


async def _decide(gate, seed, *, user, scores, headers=None):
    response = await gate(
        output(seed),
        generation_id=f"gen-kpi-{seed}",
        scores=scores,
        user_id=user,
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _stats(world, **params):
    response = await world.http.get("/v1/moderation/stats", params=params, headers=world.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def _decide_ticket(world, reviewer, ticket_id, outcome):
    claimed = await world.http.post("/v1/reviews/claim", headers=reviewer)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == ticket_id
    decided = await world.http.post(
        f"/v1/reviews/{ticket_id}/decision",
        json={"outcome": outcome, "note": "checked against the report"},
        headers=reviewer,
    )
    assert decided.status_code == 200, decided.text
    return decided.json()


async def test_repeat_blocks_are_counted_per_end_user_and_per_client(
    world, gate, make_client, database_url
):
    for seed in (1, 2, 3):
        assert (await _decide(gate, seed, user="user-42", scores=BLOCKING))["safety_status"] == (
            "blocked"
        )
    await _decide(gate, 4, user="user-7", scores=BLOCKING)
    await _decide(gate, 5, user="user-9", scores=CLEAN)
    # The same user id at another tenant is another person.
    other_id, other = await make_client("publisher", tenant="otherco", name="other publisher")
    await _decide(gate, 6, user="user-42", scores=BLOCKING, headers=other)

    recidivism = (await _stats(world))["recidivism"]
    assert recidivism["window_days"] == 30
    assert recidivism["blocked_users"] == 3
    assert recidivism["repeat_users"] == 1
    assert recidivism["repeat_blocks"] == 2
    assert recidivism["repeat_user_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert recidivism["clients"] == [
        {
            "client_id": world.publisher.client_id,
            "decisions": 5,
            "blocked": 4,
            "repeat_users": 1,
        },
        {"client_id": other_id, "decisions": 1, "blocked": 1, "repeat_users": 0},
    ]

    # What is kept in clear is a blind index: the user id itself is nowhere in the row.
    stored = await rows(
        database_url,
        "SELECT user_ref, row_to_json(d)::text AS raw FROM moderation_decisions d"
        " ORDER BY created_at",
    )
    refs = [row["user_ref"] for row in stored]
    assert all(re.fullmatch(r"eu1:[0-9a-f]{64}", ref) for ref in refs)
    assert len(set(refs[:3])) == 1
    assert len(set(refs)) == 4  # user-42 here, user-7, user-9, user-42 at otherco
    assert not any("user-42" in row["raw"] or "user-7" in row["raw"] for row in stored)

    metrics = (await world.http.get("/metrics")).text
    assert 'registry_recidivism_end_users{kind="repeat"} 1.0' in metrics
    assert 'registry_recidivism_end_users{kind="blocked"} 3.0' in metrics
    assert "registry_recidivism_repeat_blocks 2.0" in metrics
    assert (
        f'registry_recidivism_client_blocked{{client_id="{world.publisher.client_id}"}} 4.0'
        in metrics
    )

    # The window: with user-42's first two blocks moved 40 days back, the last 30 days hold
    # no repeat, and a 60-day window finds it again.
    await rows(
        database_url,
        "UPDATE moderation_decisions SET created_at = created_at - interval '40 days'"
        " WHERE generation_id IN ('gen-kpi-1', 'gen-kpi-2') RETURNING 1",
    )
    assert (await _stats(world))["recidivism"]["repeat_users"] == 0
    assert (await _stats(world, window_days=60))["recidivism"]["repeat_users"] == 1


async def test_reports_and_appeals_give_false_negatives_and_positives_per_policy_version(
    world, gate, make_client, database_url
):
    _, reviewer = await make_client("reviewer", tenant="pubco", name="pubco reviewer")
    allowed = await _decide(gate, 11, user="user-1", scores=CLEAN)
    also_allowed = await _decide(gate, 12, user="user-2", scores=CLEAN)
    blocked = await _decide(gate, 13, user="user-3", scores=BLOCKING)
    assert [d["safety_status"] for d in (allowed, also_allowed, blocked)] == [
        "allowed",
        "allowed",
        "blocked",
    ]

    # The publisher's users flag the first output twice: one report, one ticket.
    path = f"/v1/moderation/decisions/{allowed['decision_id']}/reports"
    first = await world.http.post(
        path, json={"category": "nonconsensual"}, headers=world.publisher.headers
    )
    assert first.status_code == 201, first.text
    report = first.json()
    assert (report["status"], report["created"], report["category"]) == (
        "open",
        True,
        "nonconsensual",
    )
    again = await world.http.post(
        path, json={"category": "sexual"}, headers=world.publisher.headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == report["id"]
    assert again.json()["created"] is False
    [ticket] = (await world.http.get("/v1/reviews?status=open", headers=reviewer)).json()["tickets"]
    assert (ticket["id"], ticket["kind"]) == (report["ticket_id"], "report")
    # Nonconsensual content waits in the most urgent tier.
    assert ticket["tier"] == default_policy().review.tiers[0].name

    decided = await _decide_ticket(world, reviewer, report["ticket_id"], "blocked")
    assert decided["current_status"] == "blocked"
    record = (
        await world.http.get(
            f"/v1/moderation/decisions/{allowed['decision_id']}", headers=world.publisher.headers
        )
    ).json()
    assert [(h["event"], h["to_status"]) for h in record["history"]] == [
        ("gated", "allowed"),
        ("reported", "allowed"),
        ("report_decided", "blocked"),
    ]
    assert "Reported after publication on" in record["statement"]
    [stored] = await rows(database_url, "SELECT status, decided_at FROM review_reports")
    assert stored["status"] == "confirmed"
    assert stored["decided_at"] is not None
    actions = [
        r["action"]
        for r in await rows(database_url, "SELECT action FROM audit_events ORDER BY seq")
    ]
    assert "report.filed" in actions
    assert "report.decided" in actions

    # The blocked one is appealed and a reviewer overturns it: a false positive.
    appeal = await world.http.post(
        "/v1/appeals",
        json={"decision_id": blocked["decision_id"], "statement": "It is a beach photo."},
        headers=world.publisher.headers,
    )
    assert appeal.status_code == 201, appeal.text
    await _decide_ticket(world, reviewer, appeal.json()["ticket_id"], "allowed")

    [version] = (await _stats(world))["policy_versions"]
    assert version == {
        "policy_version": default_policy().version,
        "policy_label": default_policy().label,
        "decisions": 3,
        "allowed_by_gate": 2,
        "appeals_decided": 1,
        "appeals_overturned": 1,
        "false_positive_rate": 1.0,
        "reports_decided": 1,
        "reports_confirmed": 1,
        "false_negative_rate": 0.5,
    }
    metrics = (await world.http.get("/metrics")).text
    label = f'policy_version="{default_policy().version}"'
    assert f"registry_policy_false_negative_ratio{{{label}}} 0.5" in metrics
    assert f"registry_policy_false_positive_ratio{{{label}}} 1.0" in metrics


async def test_a_dismissed_report_leaves_the_output_allowed(world, gate, make_client):
    _, reviewer = await make_client("reviewer", tenant="pubco", name="pubco reviewer")
    allowed = await _decide(gate, 21, user="user-1", scores=CLEAN)
    filed = await world.http.post(
        f"/v1/moderation/decisions/{allowed['decision_id']}/reports",
        json={"category": "other"},
        headers=world.publisher.headers,
    )
    assert filed.status_code == 201, filed.text
    [ticket] = (await world.http.get("/v1/reviews?status=open", headers=reviewer)).json()["tickets"]
    assert ticket["tier"] == default_policy().review.default_tier
    decided = await _decide_ticket(world, reviewer, filed.json()["ticket_id"], "allowed")
    assert decided["current_status"] == "allowed"
    [version] = (await _stats(world))["policy_versions"]
    assert (version["reports_decided"], version["reports_confirmed"]) == (1, 0)
    assert version["false_negative_rate"] == 0.0
    # Decided, it is no longer open: a new flag opens a new report.
    again = await world.http.post(
        f"/v1/moderation/decisions/{allowed['decision_id']}/reports",
        json={"category": "sexual"},
        headers=world.publisher.headers,
    )
    assert again.status_code == 201, again.text
    assert again.json()["id"] != filed.json()["id"]


async def _report_state(database_url):
    tables = ("review_reports", "review_tickets", "moderation_decision_history", "audit_events")
    counts = {}
    for table in tables:
        [row] = await rows(database_url, f"SELECT count(*) AS n FROM {table}")  # noqa: S608
        counts[table] = row["n"]
    statuses = await rows(
        database_url, "SELECT decision_id, current_status FROM moderation_decisions ORDER BY 1"
    )
    return counts, [tuple(r) for r in statuses]


async def test_bad_reports_change_nothing(world, gate, make_client, database_url):
    allowed = await _decide(gate, 31, user="user-1", scores=CLEAN)
    blocked = await _decide(gate, 32, user="user-1", scores=BLOCKING)
    _, other = await make_client("publisher", tenant="otherco", name="other publisher")
    _, reviewer = await make_client("reviewer", tenant="pubco", name="pubco reviewer")
    prompt = await world.http.post(
        "/v1/moderation/prompt-check",
        json={"generation_id": "gen-kpi-p", "prompt": "a lighthouse at dusk"},
        headers=world.generator.headers,
    )
    assert prompt.status_code == 200, prompt.text
    before = await _report_state(database_url)

    def post(decision_id, body, headers=world.publisher.headers):
        return world.http.post(
            f"/v1/moderation/decisions/{decision_id}/reports", json=body, headers=headers
        )

    ok = {"category": "sexual"}
    assert_problem(await post(allowed["decision_id"], {}), 400, "missing_field")
    assert_problem(await post(allowed["decision_id"], {"category": "boring"}), 400, "invalid_value")
    assert_problem(
        await post(allowed["decision_id"], {"category": "sexual", "note": "x"}),
        400,
        "unknown_field",
    )
    assert_problem(await post(allowed["decision_id"], ok, other), 404, "decision_not_found")
    assert_problem(await post("dec_nosuchdecision00000", ok), 404, "decision_not_found")
    assert_problem(await post(blocked["decision_id"], ok), 409, "decision_not_reportable")
    assert_problem(
        await post(prompt.json()["decision_id"], ok, world.generator.headers), 403, "forbidden"
    )
    assert_problem(await post(allowed["decision_id"], ok, reviewer), 403, "forbidden")
    for window in ("0", "367", "x"):
        response = await world.http.get(
            "/v1/moderation/stats", params={"window_days": window}, headers=world.admin
        )
        assert_problem(response, 400, "invalid_parameter")
    assert await _report_state(database_url) == before


async def test_a_prompt_check_cannot_be_reported(world, gate, database_url, make_client):
    _, both = await make_client("publisher", "generator", tenant="genco", name="both")
    prompt = await world.http.post(
        "/v1/moderation/prompt-check",
        json={"generation_id": "gen-kpi-q", "prompt": "a lighthouse at dusk"},
        headers=both,
    )
    assert prompt.status_code == 200, prompt.text
    assert prompt.json()["safety_status"] == "allowed"
    before = await _report_state(database_url)
    response = await world.http.post(
        f"/v1/moderation/decisions/{prompt.json()['decision_id']}/reports",
        json={"category": "other"},
        headers=both,
    )
    assert_problem(response, 409, "decision_not_reportable")
    assert await _report_state(database_url) == before


async def test_a_report_of_what_a_reviewer_allowed_is_not_the_policys_miss(
    world, gate, make_client
):
    _, first = await make_client("reviewer", tenant="pubco", name="first reviewer")
    _, second = await make_client("reviewer", tenant="pubco", name="second reviewer")
    borderline = await _decide(
        gate,
        41,
        user="user-1",
        scores={
            "sexual_content": 0.45,
            "minor_presence": 0.0,
            "nonconsensual_transformation": 0.01,
        },
    )
    assert borderline["safety_status"] == "review"
    await _decide_ticket(world, first, borderline["review_ticket"], "allowed")
    filed = await world.http.post(
        f"/v1/moderation/decisions/{borderline['decision_id']}/reports",
        json={"category": "sexual"},
        headers=world.publisher.headers,
    )
    assert filed.status_code == 201, filed.text
    decided = await _decide_ticket(world, second, filed.json()["ticket_id"], "blocked")
    assert decided["current_status"] == "blocked"
    [version] = (await _stats(world))["policy_versions"]
    assert version["allowed_by_gate"] == 0
    assert (version["reports_decided"], version["reports_confirmed"]) == (0, 0)
    assert version["false_negative_rate"] is None
