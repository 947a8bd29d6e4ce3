"""Consent withdrawn after publishing: the affected listing and signed takedown notices.

Notices go to a real HTTP server on 127.0.0.1 (allow-listed in these settings) that fails
twice and then accepts; the worker retries with backoff and records every attempt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import threading
import time
from typing import Any, Self

import jwt
import pytest
from litestar.testing import AsyncTestClient

from registry.app import create_app
from tests.consent_http import helpers
from tests.review_http.conftest import Party, snapshot, store_decision
from tests.support import assert_problem, make_settings


class Receiver:
    """A webhook receiver: answers ``failures`` times with 500, then 200; keeps what it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.received.append((dict(self.headers.items()), body))
                failing = len(receiver.received) <= receiver.failures
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/takedown"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def settings(service_database_url, tmp_path):
    return make_settings(
        service_database_url,
        tmp_path,
        webhook_hosts="127.0.0.1",
        takedown_poll_interval=0.05,
        takedown_retry_base=0.05,
        takedown_retry_max=0.2,
        takedown_max_attempts=5,
    )


@pytest.fixture
async def consent_world(client, admin, party):
    """A person's consent, granted to a generator, with one token issued (its jti)."""
    response = await client.post(
        "/v1/consent-templates",
        json={
            "id": helpers.TEMPLATE_ID,
            "title": "Likeness for reference-based generation",
            "text": helpers.TEMPLATE_TEXT,
            "uses": helpers.TEMPLATE_USES,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    uploader = await party("uploader", "acme")
    generator = await party("generator", "genco")
    signer = helpers.Signer()
    submitted = await client.post(
        "/v1/consents",
        json={"form": helpers.sign_form(signer, helpers.form_payload())},
        headers=uploader.headers,
    )
    assert submitted.status_code == 201, submitted.text
    consent_id = submitted.json()["consent_id"]
    granted = await client.post(
        f"/v1/consents/{consent_id}/grants",
        json={"client_id": generator.client_id},
        headers=uploader.headers,
    )
    assert granted.status_code == 201, granted.text
    token = await client.post(
        "/v1/tokens",
        json={"consent_id": consent_id, "uses": ["reference.generate"]},
        headers=generator.headers,
    )
    assert token.status_code == 201, token.text
    return consent_id, token.json()["jti"]


async def _withdraw(client, admin, consent_id):
    response = await client.post(
        f"/v1/consents/{consent_id}/withdraw",
        json={"reason": "the person asked us to"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _deliveries(client, admin, **query) -> list[dict[str, Any]]:
    response = await client.get("/v1/admin/webhooks/deliveries", params=query, headers=admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


async def _settled(client, admin, count: int) -> list[dict[str, Any]]:
    """Deliveries once ``count`` of them are no longer pending (gives up after a minute)."""
    give_up = time.monotonic() + 60
    while True:
        found = await _deliveries(client, admin)
        if len([d for d in found if d["status"] != "pending"]) >= count:
            return found
        assert time.monotonic() < give_up, found
        await asyncio.sleep(0.05)


async def _register(client, admin, client_id, url):
    return await client.post(
        "/v1/admin/webhooks", json={"client_id": client_id, "url": url}, headers=admin
    )


async def test_withdrawal_lists_affected_decisions(
    client, admin, pool, consent_world, party, vault
):
    consent_id, jti = consent_world
    publisher = await party("publisher", "pubco")
    used = await store_decision(
        pool,
        vault,
        client=publisher,
        tenant="pubco",
        status="allowed",
        consents=((consent_id, jti),),
    )
    await store_decision(pool, vault, client=publisher, tenant="pubco", status="allowed")

    withdrawn = await _withdraw(client, admin, consent_id)
    [listed] = withdrawn["decisions"]
    assert listed["decision_id"] == used.decision_id
    assert listed["client_id"] == publisher.client_id
    assert listed["current_status"] == "allowed"
    assert jti in withdrawn["tokens"]


async def test_affected_listing_is_scoped_to_the_tenant(client, admin, pool, party, vault):
    ours = await party("publisher", "pubco")
    theirs = await party("publisher", "otherco")
    mine = await store_decision(
        pool, vault, client=ours, tenant="pubco", status="allowed", consents=(("cns_abc", "jti-a"),)
    )
    other = await store_decision(
        pool,
        vault,
        client=theirs,
        tenant="otherco",
        status="allowed",
        consents=(("cns_abc", "jti-b"),),
    )

    def ids(response):
        assert response.status_code == 200, response.text
        return [d["decision_id"] for d in response.json()["decisions"]]

    url = "/v1/moderation/affected?consent_id=cns_abc"
    assert ids(await client.get(url, headers=ours.headers)) == [mine.decision_id]
    assert ids(await client.get(url, headers=theirs.headers)) == [other.decision_id]
    assert ids(await client.get(url, headers=admin)) == [mine.decision_id, other.decision_id]
    assert ids(await client.get("/v1/moderation/affected?consent_id=cns_x", headers=admin)) == []


async def test_affected_listing_refuses_bad_input(client, admin, party):
    uploader = await party("uploader", "acme")
    assert_problem(
        await client.get("/v1/moderation/affected?consent_id=a%20b", headers=admin),
        422,
        "consent_id_invalid",
    )
    assert_problem(
        await client.get("/v1/moderation/affected", headers=admin), 400, "invalid_parameter"
    )
    assert_problem(
        await client.get("/v1/moderation/affected?consent_id=cns_x", headers=uploader.headers),
        403,
        "forbidden",
    )


async def test_publishers_get_signed_notices_retried_until_accepted(
    client, admin, pool, consent_world, party, vault
):
    consent_id, jti = consent_world
    first = await party("publisher", "pubco", "publisher one")
    second = await party("publisher", "otherco", "publisher two")
    quiet = await party("publisher", "quietco", "publisher without affected decisions")
    decisions = {
        first.client_id: await store_decision(
            pool,
            vault,
            client=first,
            tenant="pubco",
            status="allowed",
            consents=((consent_id, jti),),
        ),
        second.client_id: await store_decision(
            pool,
            vault,
            client=second,
            tenant="otherco",
            status="allowed",
            consents=((consent_id, jti),),
        ),
    }
    with Receiver(failures=2) as flaky, Receiver(failures=0) as steady, Receiver(0) as unused:
        assert (await _register(client, admin, first.client_id, flaky.url)).status_code == 201
        assert (await _register(client, admin, second.client_id, steady.url)).status_code == 201
        assert (await _register(client, admin, quiet.client_id, unused.url)).status_code == 201

        await _withdraw(client, admin, consent_id)
        deliveries = await _settled(client, admin, 2)

        by_client = {d["client_id"]: d for d in deliveries}
        assert set(by_client) == {first.client_id, second.client_id}
        retried = by_client[first.client_id]
        assert retried["status"] == "delivered"
        assert retried["attempts"] == 3
        assert [(a["attempt"], a["http_status"], a["error"]) for a in retried["history"]] == [
            (1, 500, "http_status"),
            (2, 500, "http_status"),
            (3, 200, None),
        ]
        gaps = [
            (b - a)
            for a, b in zip(
                [_ts(a["started_at"]) for a in retried["history"]][:-1],
                [_ts(a["started_at"]) for a in retried["history"]][1:],
                strict=True,
            )
        ]
        # Backoff: at least the base wait, and the second wait is at least the doubled base.
        assert gaps[0] >= 0.05
        assert gaps[1] >= 0.1
        assert by_client[second.client_id]["attempts"] == 1
        assert len(flaky.received) == 3
        assert len(steady.received) == 1
        assert unused.received == []

    jwks = (await client.get("/.well-known/jwks.json")).json()
    for receiver, publisher in ((flaky, first), (steady, second)):
        headers, body = receiver.received[-1]
        assert headers["Content-Type"] == "application/jwt"
        assert headers["Registry-Delivery"] == by_client[publisher.client_id]["id"]
        claims = _verify(body.decode(), jwks, audience=publisher.client_id)
        assert claims["event"] == "consent.withdrawn"
        assert claims["consent_id"] == consent_id
        assert claims["decisions"] == [decisions[publisher.client_id].decision_id]
        assert claims["jti"] == by_client[publisher.client_id]["id"]
    # Every attempt carried the same notice, so a receiver can drop repeats.
    assert len({body for _, body in flaky.received}) == 1

    events = (await client.get("/v1/audit/events?limit=1000", headers=admin)).json()["events"]
    actions = [e["action"] for e in events]
    assert actions.count("takedown.notice_created") == 2
    assert actions.count("takedown.delivered") == 2


async def test_a_receiver_that_never_accepts_ends_failed(
    client, admin, pool, consent_world, party, vault
):
    consent_id, jti = consent_world
    publisher = await party("publisher", "pubco")
    await store_decision(
        pool,
        vault,
        client=publisher,
        tenant="pubco",
        status="allowed",
        consents=((consent_id, jti),),
    )
    with Receiver(failures=100) as down:
        assert (await _register(client, admin, publisher.client_id, down.url)).status_code == 201
        await _withdraw(client, admin, consent_id)
        [delivery] = await _settled(client, admin, 1)
        assert delivery["status"] == "failed"
        assert delivery["attempts"] == 5
        assert len(delivery["history"]) == 5
        assert len(down.received) == 5


async def test_two_service_processes_send_each_notice_once(
    client, settings, admin, pool, consent_world, party, vault
):
    consent_id, jti = consent_world
    publisher = await party("publisher", "pubco")
    await store_decision(
        pool,
        vault,
        client=publisher,
        tenant="pubco",
        status="allowed",
        consents=((consent_id, jti),),
    )
    with Receiver(failures=0) as receiver:
        assert (
            await _register(client, admin, publisher.client_id, receiver.url)
        ).status_code == 201
        async with AsyncTestClient(app=create_app(settings)):
            await _withdraw(client, admin, consent_id)
            await _settled(client, admin, 1)
            # Give both workers a few more rounds to misbehave in.
            await asyncio.sleep(0.3)
        assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("host_not_allowed", 422, "webhook_host_not_allowed"),
        ("credentials", 422, "webhook_url_invalid"),
        ("not_http", 422, "webhook_url_invalid"),
        ("not_a_publisher", 422, "webhook_client_invalid"),
        ("unknown_client", 422, "webhook_client_invalid"),
        ("missing_url", 400, "missing_field"),
    ],
)
async def test_bad_webhook_registrations_change_nothing(
    client, admin, pool, party, case, status, code
):
    publisher = await party("publisher", "pubco")
    reviewer = await party("reviewer", "system")
    body = {
        "host_not_allowed": {"client_id": publisher.client_id, "url": "https://example.org/h"},
        "credentials": {"client_id": publisher.client_id, "url": "http://u:p@127.0.0.1/h"},
        "not_http": {"client_id": publisher.client_id, "url": "ftp://127.0.0.1/h"},
        "not_a_publisher": {"client_id": reviewer.client_id, "url": "http://127.0.0.1/h"},
        "unknown_client": {"client_id": "cl_nobody", "url": "http://127.0.0.1/h"},
        "missing_url": {"client_id": publisher.client_id},
    }[case]
    before = await snapshot(pool)
    response = await client.post("/v1/admin/webhooks", json=body, headers=admin)
    assert_problem(response, status, code)
    assert await snapshot(pool) == before


async def test_webhooks_are_admin_only(client, party):
    publisher = await party("publisher", "pubco")
    response = await client.post(
        "/v1/admin/webhooks",
        json={"client_id": publisher.client_id, "url": "http://127.0.0.1/h"},
        headers=publisher.headers,
    )
    assert_problem(response, 403, "forbidden")
    listed = await client.get("/v1/admin/webhooks/deliveries", headers=publisher.headers)
    assert_problem(listed, 403, "forbidden")


async def test_a_webhook_can_be_replaced(client, admin, party):
    publisher: Party = await party("publisher", "pubco")
    first = await _register(client, admin, publisher.client_id, "http://127.0.0.1:9/a")
    second = await _register(client, admin, publisher.client_id, "http://127.0.0.1:9/b")
    assert first.status_code == second.status_code == 201
    assert second.json()["url"] == "http://127.0.0.1:9/b"
    assert second.json()["created_at"] == first.json()["created_at"]


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def _verify(notice: str, jwks: dict[str, Any], *, audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(notice)
    assert header["typ"] == "takedown+jwt"
    keys = {k["kid"]: k for k in jwks["keys"]}
    key = jwt.PyJWK.from_dict(keys[header["kid"]])
    claims: dict[str, Any] = jwt.decode(
        notice,
        key=key.key,
        algorithms=[header["alg"]],
        audience=audience,
        options={"require": ["iss", "aud", "iat", "jti"]},
    )
    return claims
