"""Erasure reaches the gate's records (issue 18, item 2): a decision in review made with a
consent keeps its outcome after the consent is erased, and nothing else of it."""

from __future__ import annotations

import hashlib
import json

import asyncpg

from tests.support import assert_problem, bearer, opened_decisions
from tests.web.conftest import count
from tests.web.test_console_review import claim, decide


async def _consent_of(database_url: str, decision_id: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        consent_id: str = await conn.fetchval(
            "SELECT consent_id FROM moderation_decision_consents WHERE decision_id = $1",
            decision_id,
        )
        return consent_id
    finally:
        await conn.close()


async def test_erasing_a_consent_erases_the_decisions_made_with_it(
    world, ticket, reviewer, make_key, database_url, settings
):
    prompt = "put her in a sunny park, erasure marker 7f3a"
    decision_id, ticket_id, _ = await ticket(21, prompt=prompt)
    _, other_ticket, _ = await ticket(22)
    consent_id = await _consent_of(database_url, decision_id)
    [mine, _] = await opened_decisions(database_url, settings.master_key)
    [source] = mine.evidence["sources"]
    photo_sha256 = source["check"]["asset_sha256"]
    assert photo_sha256 in json.dumps(mine.evidence)
    _, http = await reviewer()
    assert (await claim(http)).headers["location"] == f"/console/tickets/{ticket_id}"
    assert (await http.get(f"/console/tickets/{ticket_id}/image")).status_code == 200
    images = await count(database_url, "SELECT count(*) FROM review_images")

    erased = await world.http.post(
        f"/v1/consents/{consent_id}/erase", headers=world.uploader.headers
    )

    assert erased.status_code == 200, erased.text
    # The image is gone with a clear answer; the other ticket's image stays.
    gone = await http.get(f"/console/tickets/{ticket_id}/image")
    assert gone.status_code == 410, gone.text
    assert await count(database_url, "SELECT count(*) FROM review_images") == images - 1
    # The reviewer still sees the decision and its outcome, not what it was made from.
    page = (await http.get(f"/console/tickets/{ticket_id}")).text
    assert "erased" in page
    assert prompt not in page
    assert photo_sha256 not in page
    _, api_reviewer = await make_key("reviewer", name="api reviewer")
    case = await world.http.get(f"/v1/reviews/{ticket_id}", headers=bearer(api_reviewer))
    assert case.status_code == 200, case.text
    body = case.json()
    assert body["erased_at"] is not None
    assert body["request"] == {}
    assert body["image_sha256"] is None
    assert body["decision"]["status"] == "review"
    assert prompt not in case.text
    assert photo_sha256 not in case.text
    # In the table: no clear copy, no key, no hashes; the other decision is untouched.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT * FROM moderation_decisions WHERE decision_id = $1", decision_id
        )
        other = await conn.fetchrow(
            "SELECT d.* FROM moderation_decisions d JOIN review_tickets t USING (decision_id)"
            " WHERE t.ticket_id = $1",
            other_ticket,
        )
        [event] = await conn.fetch(
            "SELECT payload FROM audit_events WHERE action = 'consent.erased'"
        )
    finally:
        await conn.close()
    assert row["erased_at"] is not None
    assert (row["request"], row["image_sha256"], row["image_phash"]) == (None, None, None)
    assert row["data_key_id"] is None
    assert other["erased_at"] is None
    assert other["data_key_id"] is not None
    assert json.loads(event["payload"])["derived_erased"] == 1
    [_, still] = await opened_decisions(database_url, settings.master_key)
    assert still.evidence["sources"]


async def test_the_image_of_a_decision_never_erased_is_not_found_not_gone(
    ticket, reviewer, database_url
):
    _, ticket_id, _ = await ticket(23)
    _, http = await reviewer()
    assert (await claim(http)).status_code == 303
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM review_images")
    finally:
        await conn.close()

    response = await http.get(f"/console/tickets/{ticket_id}/image")

    assert response.status_code == 404


async def test_an_erasure_by_a_stranger_erases_no_decision(
    world, ticket, make_client, database_url, settings
):
    decision_id, _, _ = await ticket(24)
    consent_id = await _consent_of(database_url, decision_id)
    _, stranger = await make_client("uploader", tenant="othertenant")

    response = await world.http.post(f"/v1/consents/{consent_id}/erase", headers=stranger)

    assert_problem(response, 404, "consent_not_found")
    [files] = await opened_decisions(database_url, settings.master_key)
    assert files.erased_at is None
    assert files.evidence["sources"]


async def test_erasure_deletes_the_notes_about_its_decisions_and_keeps_their_hashes(
    world, ticket, reviewer, database_url
):
    decision_id, ticket_id, _ = await ticket(25)
    _, other_ticket, _ = await ticket(26)
    consent_id = await _consent_of(database_url, decision_id)
    _, http = await reviewer()
    note = "the person in the photo asked for this, erasure marker 91c2"
    for expected in (ticket_id, other_ticket):
        assert (await claim(http)).headers["location"] == f"/console/tickets/{expected}"
        decided = await decide(http, expected, "blocked", note)
        assert decided.status_code == 303, decided.text
    texts = "SELECT count(*) FROM review_texts"
    assert await count(database_url, texts) == 2

    erased = await world.http.post(
        f"/v1/consents/{consent_id}/erase", headers=world.uploader.headers
    )

    assert erased.status_code == 200, erased.text
    assert await count(database_url, texts) == 1  # the other decision's note stays
    record = await world.http.get(f"/v1/moderation/decisions/{decision_id}", headers=world.admin)
    assert record.status_code == 200, record.text
    [reviewed] = [e for e in record.json()["history"] if e["event"] == "reviewed"]
    assert reviewed["note"] is None
    assert reviewed["note_sha256"] == hashlib.sha256(note.encode()).hexdigest()
    assert note not in record.text
    page = (await http.get(f"/console/tickets/{ticket_id}")).text
    assert "note erased" in page
    assert note not in page
