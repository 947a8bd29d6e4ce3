"""Moderation KPIs over HTTP and as Prometheus gauges."""

from __future__ import annotations

from tests.review_http.conftest import store_decision
from tests.support import assert_problem


async def test_stats_and_metrics_reflect_the_tables(client, pool, staff, publisher, admin, vault):
    review_a = await store_decision(pool, vault, client=publisher, tenant="pubco", latency_ms=10.0)
    await store_decision(pool, vault, client=publisher, tenant="pubco", latency_ms=30.0)
    await store_decision(pool, vault, client=publisher, tenant="pubco", status="blocked")
    await store_decision(pool, vault, client=publisher, tenant="pubco", status="allowed")
    failed = await store_decision(
        pool, vault, client=publisher, tenant="pubco", classifier_error="timeout", latency_ms=5000.0
    )
    async with pool.acquire() as conn:
        # review_a was opened ten minutes ago and is decided now; failed's ticket is overdue.
        await conn.execute(
            "UPDATE review_tickets SET created_at = now() - interval '10 minutes'"
            " WHERE ticket_id = $1",
            review_a.ticket_id,
        )
        await conn.execute(
            "UPDATE review_tickets SET deadline = now() - interval '1 minute' WHERE ticket_id = $1",
            failed.ticket_id,
        )
        await conn.execute(
            "UPDATE review_tickets SET rank = 0 WHERE ticket_id = $1", review_a.ticket_id
        )
    claimed = await client.post("/v1/reviews/claim", headers=staff[0].headers)
    assert claimed.json()["id"] == review_a.ticket_id
    decided = await client.post(
        f"/v1/reviews/{review_a.ticket_id}/decision",
        json={"outcome": "blocked", "note": "explicit"},
        headers=staff[0].headers,
    )
    assert decided.status_code == 200

    response = await client.get("/v1/moderation/stats", headers=admin)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["decisions"] == 5
    assert stats["by_status"] == {"allowed": 1, "blocked": 1, "review": 3}
    assert stats["by_current_status"] == {"allowed": 1, "blocked": 2, "review": 2}
    assert stats["by_reason"]["score_sexual_content_review"] == 2
    assert stats["by_reason"]["score_sexual_content_block"] == 1
    assert stats["by_reason"]["classifier_unavailable"] == 1
    assert stats["blocked_rate"] == 0.2
    latency = stats["review_latency_seconds"]
    assert latency["count"] == 1
    assert 600 <= latency["p50"] < 900
    assert stats["open_tickets"] == 2
    assert stats["open_tickets_past_deadline"] == 1
    assert stats["appeals"] == {"filed": 0, "decided": 0, "overturned": 0, "overturn_rate": None}
    [http] = stats["classifiers"]
    assert http["classifier"] == "http"
    assert http["calls"] == 5
    assert http["errors"] == {"timeout": 1}
    assert http["latency_ms"]["count"] == 5
    # 10, 12.5, 12.5, 30 and 5000 ms.
    assert http["latency_ms"]["p50"] == 12.5

    metrics = (await client.get("/metrics")).text
    assert 'registry_moderation_decisions{status="review"} 3.0' in metrics
    assert 'registry_moderation_decisions_current{status="blocked"} 2.0' in metrics
    assert 'registry_moderation_decision_reasons{reason="classifier_unavailable"} 1.0' in metrics
    assert "registry_review_tickets_past_deadline 1.0" in metrics
    assert "registry_review_tickets_open 2.0" in metrics
    assert 'registry_classifier_errors{classifier="http",error="timeout"} 1.0' in metrics
    assert 'registry_classifier_latency_ms{classifier="http",quantile="0.5"} 12.5' in metrics
    assert 'registry_review_latency_seconds{quantile="0.5"}' in metrics


async def test_stats_are_for_admins(client, staff, publisher):
    for headers in (staff[0].headers, publisher.headers):
        assert_problem(await client.get("/v1/moderation/stats", headers=headers), 403, "forbidden")
    assert_problem(await client.get("/v1/moderation/stats"), 401, "unauthenticated")
