"""Every number a request carries is range-checked before use: integers beyond 64 bits and
floats that overflow are refused (400 ``invalid_value``), out-of-range values get the field's
own answer, and none of it is a 500 or stores anything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.consent_http import conftest as consent_fixtures
from tests.consent_http import helpers
from tests.gate_http.conftest import check_request, consented_source, counts, output
from tests.support import assert_problem

world = consent_fixtures.world
PLACEHOLDER = '"__number__"'
# JSON literals no 64-bit integer or float holds.
HUGE = [
    pytest.param("1" + "0" * 400, id="10^400"),
    pytest.param("-" + "9" * 5000, id="5000-digits"),
    pytest.param("18446744073709551616", id="2^64"),
    pytest.param("9223372036854775808", id="2^63"),
    pytest.param("1e400", id="1e400"),
    pytest.param("-1e400", id="-1e400"),
]
# For the requests that need a consent and a token first: the three kinds of overflow.
FEW = [HUGE[0], HUGE[1], HUGE[4]]


def _with(document: dict[str, Any], literal: str) -> str:
    """``document`` as JSON text, its ``"__number__"`` string replaced by ``literal``."""
    text = json.dumps(document)
    assert text.count(PLACEHOLDER) == 1
    return text.replace(PLACEHOLDER, literal)


async def _gate(world, literal: str, image: bytes) -> Any:
    source = await consented_source(world)
    body = check_request(
        "gen-numbers",
        sources=[source.asset()],
        generator=world.generator.client_id,
        scores={
            "sexual_content": "__number__",
            "minor_presence": 0.01,
            "nonconsensual_transformation": 0.01,
        },
    )
    return await world.http.post(
        "/v1/moderation/check",
        files={
            "request": (None, _with(body, literal), "application/json"),
            "image": ("output.jpg", image, "image/jpeg"),
        },
        headers=world.publisher.headers,
    )


@pytest.mark.parametrize("literal", FEW)
async def test_a_supplied_score_beyond_any_number_is_refused(world, database_url, literal):
    image = output(3)
    before = await counts(database_url)
    response = await _gate(world, literal, image)
    assert_problem(response, 400, "invalid_value")
    after = await counts(database_url)
    # The source's consent and token were made first (audit events); no decision was.
    assert after["moderation_decisions"] == before["moderation_decisions"]
    assert after["review_tickets"] == before["review_tickets"]


async def test_a_supplied_score_outside_0_to_1_is_recorded_as_invalid(world, database_url):
    # A 64-bit integer is a number the gate reads: out of 0..1, it counts as an invalid score.
    response = await _gate(world, "9223372036854775807", output(4))
    assert response.status_code == 200, response.text
    assert "classifier_invalid_score" in response.json()["reasons"]


@pytest.mark.parametrize("literal", FEW)
async def test_a_token_lifetime_beyond_any_number_is_refused(world, database_url, literal):
    consent = await world.consent()
    assert (await world.grant(consent["consent_id"])).status_code == 201
    before = await helpers.counts(database_url)
    body = {"consent_id": consent["consent_id"], "uses": ["reference.generate"]}
    response = await world.http.post(
        "/v1/tokens",
        content=_with({**body, "ttl_seconds": "__number__"}, literal),
        headers={**world.generator.headers, "content-type": "application/json"},
    )
    assert_problem(response, 400, "invalid_value")
    assert await helpers.counts(database_url) == before


@pytest.mark.parametrize("ttl", [0, 3601, 2**63 - 1, -(2**63)])
async def test_a_token_lifetime_out_of_range_is_ttl_invalid(world, database_url, ttl):
    consent = await world.consent()
    assert (await world.grant(consent["consent_id"])).status_code == 201
    before = await helpers.counts(database_url)
    response = await world.token(consent["consent_id"], ttl_seconds=ttl)
    assert_problem(response, 422, "ttl_invalid")
    assert await helpers.counts(database_url) == before


@pytest.mark.parametrize(
    ("role", "query"),
    [
        pytest.param("admin", "/v1/audit/events?after=9223372036854775808", id="after-2^63"),
        pytest.param("admin", "/v1/audit/events?after=" + "9" * 5000, id="after-5000-digits"),
        pytest.param("admin", "/v1/audit/events?after=-1", id="after-negative"),
        pytest.param("admin", "/v1/audit/events?limit=1" + "0" * 30, id="limit-10^30"),
        pytest.param("admin", "/v1/audit/events?limit=0", id="limit-0"),
        pytest.param("reviewer", "/v1/reviews?limit=18446744073709551616", id="reviews-2^64"),
        pytest.param(
            "admin", "/v1/admin/webhooks/deliveries?limit=1" + "0" * 400, id="deliveries-10^400"
        ),
    ],
)
async def test_a_limit_or_position_out_of_range_is_invalid_parameter(
    client, admin, make_client, role, query
):
    headers = admin if role == "admin" else (await make_client(role))[1]
    response = await client.get(query, headers=headers)
    assert_problem(response, 400, "invalid_parameter")


async def test_the_largest_position_is_read_not_refused(client, admin):
    response = await client.get("/v1/audit/events?after=9223372036854775807", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["events"] == []


@pytest.mark.parametrize("literal", HUGE)
async def test_a_number_in_a_signer_key_is_refused(world, database_url, literal):
    before = await helpers.counts(database_url)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "__number__"}
    response = await world.http.post(
        "/v1/signers",
        content=_with({"jwk": jwk}, literal),
        headers={**world.uploader.headers, "content-type": "application/json"},
    )
    assert_problem(response, 400, "invalid_value")
    assert await helpers.counts(database_url) == before


@pytest.mark.parametrize("literal", HUGE)
async def test_a_number_in_a_signed_form_is_refused(world, database_url, literal):
    before = await helpers.counts(database_url)
    payload = _with(helpers.form_payload(version="__number__"), literal).encode()
    response = await world.submit(helpers.sign_form(world.signer, payload))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"] == "invalid_value"
    assert await helpers.counts(database_url) == before
