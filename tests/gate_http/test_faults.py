"""Every fault of the issue's list yields `review` or `blocked` with its reason, on record;
refusals are problems and store nothing."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.consent_http import helpers
from tests.gate_http.conftest import (
    check_request,
    consented_source,
    counts,
    output,
    post_check,
    rows,
)
from tests.support import assert_problem

CLEAN = {"sexual_content": 0.01, "minor_presence": 0.01, "nonconsensual_transformation": 0.01}
NAN_ANSWER = b'{"scores": {"sexual_content": NaN, "minor_presence": 0.1}, "model": "m-1"}'


async def _decided(response, database_url, before, status, reason):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety_status"] == status, body
    if reason is None:
        assert body["reasons"] == []
    else:
        assert reason in body["reasons"], body
    after = await counts(database_url)
    assert after["moderation_decisions"] == before["moderation_decisions"] + 1
    assert after["audit_events"] > before["audit_events"]
    [row] = await rows(
        database_url,
        "SELECT status, reasons FROM moderation_decisions WHERE decision_id = $1",
        body["decision_id"],
    )
    assert (row["status"], list(row["reasons"])) == (status, body["reasons"])
    tickets = await rows(
        database_url, "SELECT * FROM review_tickets WHERE decision_id = $1", body["decision_id"]
    )
    kept_images = await rows(
        database_url,
        "SELECT media_type FROM review_images WHERE decision_id = $1",
        body["decision_id"],
    )
    if status == "review":
        [ticket] = tickets
        assert body["review_ticket"] == ticket["ticket_id"]
        assert (ticket["kind"], ticket["status"]) == ("review", "open")
        # The reviewer who claims the ticket will see the image: kept, encrypted, until closed.
        assert [r["media_type"] for r in kept_images] == ["image/jpeg"]
    else:
        assert tickets == []
        assert body["review_ticket"] is None
        assert kept_images == []
    return body


async def test_real_person_photo_without_a_token_is_blocked(world, gate, database_url):
    before = await counts(database_url)
    response = await gate(output(10), sources=[{"type": "photo", "asset_id": "ast_nobody"}])
    await _decided(response, database_url, before, "blocked", "consent_missing")


async def test_an_undeclared_source_type_counts_as_a_real_person(world, gate, database_url):
    before = await counts(database_url)
    response = await gate(output(11), sources=[{"type": "selfie", "asset_id": "ast_1"}])
    await _decided(response, database_url, before, "blocked", "consent_missing")


async def test_artwork_without_consent_passes(world, gate, database_url):
    before = await counts(database_url)
    response = await gate(output(12), sources=[{"type": "artwork", "asset_id": "ast_art"}])
    await _decided(response, database_url, before, "allowed", None)


async def test_token_for_another_generator_is_blocked(world, gate, make_client, database_url):
    source = await consented_source(world)
    other_generator, _ = await make_client("generator", tenant="genco", name="other generator")
    before = await counts(database_url)
    response = await gate(output(13), sources=[source.asset()], generator=other_generator)
    await _decided(response, database_url, before, "blocked", "consent_wrong_audience")


async def test_token_revoked_just_before_the_check_is_blocked(world, gate, database_url):
    source = await consented_source(world)
    withdrawn = await world.http.post(
        f"/v1/consents/{source.consent_id}/withdraw",
        json={"withdrawal": helpers.withdrawal(world.signer, source.consent_id)},
        headers=world.uploader.headers,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    before = await counts(database_url)

    response = await gate(output(14), sources=[source.asset()])

    body = await _decided(response, database_url, before, "blocked", "consent_token_revoked")
    # The decision still names the token, so the withdrawal's takedown list can find it.
    [used] = await rows(
        database_url,
        "SELECT jti, consent_id FROM moderation_decision_consents WHERE decision_id = $1",
        body["decision_id"],
    )
    assert (used["jti"], used["consent_id"]) == (source.jti, source.consent_id)


async def test_token_for_another_asset_hash_is_blocked(world, gate, database_url):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(output(15), sources=[source.asset(sha256="ab" * 32)])
    await _decided(response, database_url, before, "blocked", "consent_asset_mismatch")


async def test_token_for_another_asset_id_is_blocked(world, gate, database_url):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(output(16), sources=[source.asset(asset_id="ast_someone_else")])
    await _decided(response, database_url, before, "blocked", "consent_asset_mismatch")


async def test_explicit_score_without_explicit_consent_is_blocked(world, gate, database_url):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(
        output(17),
        sources=[source.asset()],
        scores={
            "sexual_content": 0.6,
            "minor_presence": 0.01,
            "nonconsensual_transformation": 0.01,
        },
    )
    body = await _decided(response, database_url, before, "blocked", "consent_use_not_permitted")
    assert "score_sexual_content_review" in body["reasons"]


async def test_missing_scores_without_a_classifier_go_to_review(world, gate, database_url):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(output(18), sources=[source.asset()], scores=None)
    await _decided(response, database_url, before, "review", "score_missing")


@pytest.mark.parametrize(
    ("scores", "reason"),
    [
        (
            {"sexual_content": 1.5, "minor_presence": 0.01, "nonconsensual_transformation": 0.01},
            "classifier_invalid_score",
        ),
        (
            {
                "sexual_content": "high",
                "minor_presence": 0.01,
                "nonconsensual_transformation": 0.01,
            },
            "classifier_invalid_score",
        ),
        (
            {"sexual_content": 0.01, "minor_presence": 0.01, "self_harm": 0.5},
            "score_self_harm_review",
        ),
    ],
)
async def test_bad_or_worrying_supplied_scores_go_to_review(
    world, gate, database_url, scores, reason
):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(output(19), sources=[source.asset()], scores=scores)
    await _decided(response, database_url, before, "review", reason)


@pytest.mark.parametrize(
    "image",
    [b"this is not an image", helpers.png_bomb()],
    ids=["unreadable", "bomb"],
)
async def test_unreadable_or_bomb_image_is_blocked(world, gate, database_url, image):
    source = await consented_source(world)
    before = await counts(database_url)
    response = await gate(image, sources=[source.asset()])
    await _decided(response, database_url, before, "blocked", "image_unreadable")


@pytest.mark.parametrize(
    ("route", "answer", "reason"),
    [
        ("/slow", None, "classifier_unavailable"),
        ("/500", (500, b'{"error": "model crashed"}'), "classifier_unavailable"),
        ("/nan", (200, NAN_ANSWER), "classifier_invalid_score"),
    ],
)
async def test_classifier_faults_go_to_review(
    world, app_with, local_server, database_url, route, answer, reason
):
    json_type = {"Content-Type": "application/json"}
    if answer is None:

        def slow() -> bytes:
            time.sleep(1.5)
            return (
                b'{"scores": {"sexual_content": 0.0, "minor_presence": 0.0,'
                b' "nonconsensual_transformation": 0.01}}'
            )

        local_server.routes[route] = (200, json_type, slow)
    else:
        local_server.routes[route] = (answer[0], json_type, answer[1])
    source = await consented_source(world)
    before = await counts(database_url)
    async with app_with(
        classifier_url=local_server.base + route,
        classifier_allowed_hosts="127.0.0.1",
        # Short only where the timeout is the fault: on two busy cores an answer that is
        # quick to write can still take longer than 0.3 s to be scheduled.
        classifier_timeout=0.3 if answer is None else 5.0,
    ) as http:
        response = await post_check(
            http,
            world.publisher.headers,
            check_request(
                sources=[source.asset()], generator=world.generator.client_id, scores=None
            ),
            output(20),
        )
    await _decided(response, database_url, before, "review", reason)
    # The server's thread records the request; give it a moment to be scheduled.
    for _ in range(50):
        if local_server.requests:
            break
        await asyncio.sleep(0.05)
    assert local_server.requests == [route]


async def test_classifier_scores_count_with_the_supplied_ones(
    world, app_with, local_server, database_url
):
    local_server.routes["/ok"] = (
        200,
        {"Content-Type": "application/json"},
        (
            b'{"scores": {"sexual_content": 0.8, "minor_presence": 0.0,'
            b' "nonconsensual_transformation": 0.01}, "model": "m-2"}'
        ),
    )
    source = await consented_source(world)
    before = await counts(database_url)
    async with app_with(
        classifier_url=local_server.base + "/ok", classifier_allowed_hosts="127.0.0.1"
    ) as http:
        response = await post_check(
            http,
            world.publisher.headers,
            check_request(sources=[source.asset()], generator=world.generator.client_id),
            output(21),
        )
    # The caller said 0.01; the classifier says 0.8: the worse one wins.
    body = await _decided(response, database_url, before, "blocked", "score_sexual_content_block")
    assert body["scores"]["sexual_content"] == 0.8


@pytest.mark.parametrize(
    ("table", "scores", "status"),
    [
        # The decision row itself cannot be written.
        ("moderation_decisions", CLEAN, "allowed"),
        # The decision row and its consents are written, then the audit event fails.
        ("audit_events", CLEAN, "allowed"),
        # A review decision whose ticket cannot be opened.
        ("review_tickets", None, "review"),
    ],
)
async def test_database_error_mid_decision_returns_no_decision(
    world, gate, database_url, table, scores, status
):
    source = await consented_source(world)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'disk full'; END $$;"
            f"CREATE TRIGGER fail_insert BEFORE INSERT ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION fail_insert();"
        )
    finally:
        await conn.close()
    before = await counts(database_url)

    response = await gate(output(22), sources=[source.asset()], scores=scores)

    body = assert_problem(response, 503, "decision_not_recorded")
    assert response.headers["retry-after"]
    assert "safety_status" not in body
    assert "allowed" not in response.text
    # All of it rolled back: no decision, consent rows, ticket or audit event.
    assert await counts(database_url) == before

    # The same request once the database is healthy again is decided and recorded.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP TRIGGER fail_insert ON {table}")
    finally:
        await conn.close()
    again = await gate(output(22), sources=[source.asset()], scores=scores)
    assert again.status_code == 200, again.text
    assert again.json()["safety_status"] == status


async def test_tokens_without_their_generator_are_refused(world, gate, database_url):
    source = await consented_source(world)
    before = await counts(database_url)
    body = check_request(sources=[source.asset()])
    response = await post_check(world.http, world.publisher.headers, body, output(23))
    assert_problem(response, 422, "generator_client_id_required")
    assert await counts(database_url) == before


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"image": ("o.jpg", b"x", "image/jpeg")}, "request_part_invalid"),
        (
            {"request": (None, "{}", "application/json"), "extra": (None, "x", "text/plain")},
            "request_part_invalid",
        ),
        (
            {
                "request": (None, '{"generation_id": "g", "bogus": 1}', "application/json"),
                "image": ("o.jpg", b"x", "image/jpeg"),
            },
            "unknown_field",
        ),
        (
            {
                "request": (None, '{"generation_id": "g", "generation_id": "h"}', "text/plain"),
                "image": ("o.jpg", b"x", "image/jpeg"),
            },
            "duplicate_key",
        ),
        (
            {"request": (None, '{"generation_id": "g"}', "application/json")},
            "request_part_invalid",
        ),
    ],
    ids=["no-request", "unknown-part", "unknown-field", "duplicate-key", "no-image"],
)
async def test_malformed_requests_are_refused(world, database_url, files, code):
    before = await counts(database_url)
    response = await world.http.post(
        "/v1/moderation/check", files=files, headers=world.publisher.headers
    )
    assert response.status_code in {400, 422}, response.text
    assert response.json()["code"] == code
    assert await counts(database_url) == before


async def test_json_without_image_url_is_refused(world, database_url):
    before = await counts(database_url)
    response = await post_check(world.http, world.publisher.headers, check_request(), None)
    assert_problem(response, 422, "image_missing")
    assert await counts(database_url) == before
