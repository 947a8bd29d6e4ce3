"""The reviewer console over HTTP: queue, claim, the image behind the claim, decide, appeals."""

from __future__ import annotations

import re

import asyncpg

from tests.web.conftest import count
from tests.web.support import csrf_of

IMAGES = "SELECT count(*) FROM review_images"


async def claim(http):
    page = await http.get("/console")
    assert page.status_code == 200, page.text
    return await http.post(
        "/console/claim", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )


async def decide(http, ticket_id: str, outcome: str | None, note: str | None):
    page = await http.get(f"/console/tickets/{ticket_id}")
    form = {"csrf_token": csrf_of(page.text)}
    if outcome is not None:
        form["outcome"] = outcome
    if note is not None:
        form["note"] = note
    return await http.post(
        f"/console/tickets/{ticket_id}/decision", data=form, follow_redirects=False
    )


async def ticket_status(database_url: str, ticket_id: str) -> tuple[str, str | None]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, claimed_by FROM review_tickets WHERE ticket_id = $1", ticket_id
        )
    finally:
        await conn.close()
    return row["status"], row["claimed_by"]


async def test_queue_lists_open_tickets_with_counts_and_marks_overdue(
    ticket, reviewer, database_url
):
    _, first, _ = await ticket(1)
    _, second, _ = await ticket(2)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE review_tickets SET deadline = now() - interval '1 hour' WHERE ticket_id = $1",
            second,
        )
    finally:
        await conn.close()
    _, http = await reviewer()

    page = (await http.get("/console")).text

    assert re.search(r'id="count-waiting">2<', page)
    assert re.search(r'id="count-overdue">1<', page)
    assert first[:12] in page
    assert second[:12] in page
    rows = re.findall(r'<tr class="(overdue)?">', page)
    assert rows == ["overdue", ""]  # the overdue one comes first (same tier, earlier deadline)


async def test_claim_next_opens_the_ticket_with_everything_the_gate_saw(
    ticket, reviewer, database_url
):
    _, ticket_id, _ = await ticket(3, prompt="put her in a <script>alert(1)</script> park")
    client_id, http = await reviewer()

    response = await claim(http)

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/tickets/{ticket_id}"
    assert await ticket_status(database_url, ticket_id) == ("claimed", client_id)
    page = (await http.get(response.headers["location"])).text
    assert "you hold this ticket" in page
    assert f'src="/console/tickets/{ticket_id}/image"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert 'class="chip tone-good">valid<' in page  # the consented source photo
    assert "<strong>violence</strong>: 0.62" in page  # the score, against its thresholds
    assert "<code>score_violence_review</code>" in page
    # A score the policy does not know is shown, and noted, not dropped.
    assert "<strong>aesthetics</strong>: 0.40" in page
    assert "not a category of the policy" in page
    notes = page.split('id="notes"', 1)[1].split("</ul>", 1)[0]
    assert "<code>score_unknown_category</code>" in notes
    assert 'id="history"' in page
    assert (
        await count(
            database_url, "SELECT count(*) FROM audit_events WHERE action = 'review.claimed'"
        )
        == 1
    )


async def test_claim_without_csrf_token_is_refused_and_claims_nothing(
    ticket, reviewer, database_url
):
    _, ticket_id, _ = await ticket(4)
    _, http = await reviewer()

    missing = await http.post("/console/claim", data={})
    wrong = await http.post("/console/claim", data={"csrf_token": "x" * 43})

    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert await ticket_status(database_url, ticket_id) == ("open", None)


async def test_the_image_is_shown_only_to_the_reviewer_holding_the_claim(
    ticket, reviewer, client, database_url
):
    _, ticket_id, image = await ticket(5)
    _, holder = await reviewer("holder")
    _, other = await reviewer("other")
    url = f"/console/tickets/{ticket_id}/image"

    before_claim = await holder.get(url)
    await claim(holder)
    held = await holder.get(url)
    not_holder = await other.get(url)
    signed_out = await client.get(url, follow_redirects=False)

    assert before_claim.status_code == 403
    assert held.status_code == 200
    assert held.content == image
    assert held.headers["content-type"] == "image/jpeg"
    assert "no-store" in held.headers["cache-control"]
    assert not_holder.status_code == 403
    assert "only to the reviewer holding the claim" in not_holder.text
    assert 'src="/console/tickets/' not in (await other.get(f"/console/tickets/{ticket_id}")).text
    assert signed_out.status_code == 303
    assert (
        await count(
            database_url, "SELECT count(*) FROM audit_events WHERE action = 'review.image_viewed'"
        )
        == 1
    )


async def test_an_expired_claim_no_longer_shows_the_image(ticket, reviewer, database_url):
    _, ticket_id, _ = await ticket(6)
    _, http = await reviewer()
    await claim(http)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE review_tickets SET lease_expires_at = now() - interval '1 s'")
    finally:
        await conn.close()

    response = await http.get(f"/console/tickets/{ticket_id}/image")

    assert response.status_code == 403


async def test_decide_needs_an_outcome_and_a_note(ticket, reviewer, database_url):
    _, ticket_id, _ = await ticket(7)
    client_id, http = await reviewer()
    await claim(http)

    no_note = await decide(http, ticket_id, "blocked", "   ")
    no_outcome = await decide(http, ticket_id, None, "looks fine")
    odd_outcome = await decide(http, ticket_id, "review", "looks fine")
    too_long = await decide(http, ticket_id, "allowed", "x" * 2001)

    for response in (no_note, no_outcome, odd_outcome, too_long):
        assert response.status_code == 422
        assert 'id="decide-error"' in response.text
    assert await ticket_status(database_url, ticket_id) == ("claimed", client_id)
    assert await count(database_url, IMAGES) == 1


async def test_decide_without_the_csrf_token_changes_nothing(ticket, reviewer, database_url):
    _, ticket_id, _ = await ticket(8)
    client_id, http = await reviewer()
    await claim(http)

    response = await http.post(
        f"/console/tickets/{ticket_id}/decision", data={"outcome": "allowed", "note": "fine"}
    )

    assert response.status_code == 403
    assert await ticket_status(database_url, ticket_id) == ("claimed", client_id)
    assert await count(database_url, IMAGES) == 1


async def test_deciding_closes_the_ticket_deletes_the_image_and_updates_the_queue(
    ticket, reviewer, database_url
):
    decision_id, ticket_id, _ = await ticket(9)
    _, http = await reviewer()
    await claim(http)

    response = await decide(http, ticket_id, "blocked", "the person is shown in underwear")

    assert response.status_code == 303
    assert response.headers["location"] == "/console?done=blocked"
    queue = (await http.get(response.headers["location"])).text
    assert "Decided: blocked." in queue
    assert 'id="queue-empty"' in queue
    assert (await ticket_status(database_url, ticket_id))[0] == "closed"
    assert await count(database_url, IMAGES) == 0
    assert (
        await count(
            database_url,
            "SELECT count(*) FROM moderation_decisions WHERE decision_id = $1"
            " AND current_status = 'blocked'",
            decision_id,
        )
        == 1
    )
    assert (await http.get(f"/console/tickets/{ticket_id}/image")).status_code == 403
    page = (await http.get(f"/console/tickets/{ticket_id}")).text
    assert "the person is shown in underwear" in page  # in the decision's history
    assert "closed: blocked" in page


async def test_a_ticket_closed_through_the_api_loses_its_image_too(ticket, reviewer, database_url):
    _, ticket_id, _ = await ticket(10)
    _, http = await reviewer()
    await claim(http)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE review_tickets SET status = 'closed', closed_by = claimed_by,"
            " closed_at = now(), outcome = 'allowed' WHERE ticket_id = $1",
            ticket_id,
        )
    finally:
        await conn.close()

    assert await count(database_url, IMAGES) == 0


async def test_an_appeal_is_marked_with_the_statement_for_another_reviewer(
    ticket, reviewer, world, database_url
):
    decision_id, ticket_id, _ = await ticket(11)
    _, first = await reviewer("first")
    await claim(first)
    await decide(first, ticket_id, "blocked", "too revealing")
    appeal = await world.http.post(
        "/v1/appeals",
        json={"decision_id": decision_id, "statement": "She is <b>fully dressed</b>; see the hem."},
        headers=world.publisher.headers,
    )
    assert appeal.status_code == 201, appeal.text
    _, second = await reviewer("second")

    refused = await claim(first)
    queue = (await second.get("/console")).text
    taken = await claim(second)

    assert refused.headers["location"] == "/console?done=empty"
    assert re.search(r'id="count-appeals">1<', queue)
    assert 'tone-warn">appeal<' in queue
    page = (await second.get(taken.headers["location"])).text
    assert "Appellant&#39;s statement" in page or "Appellant's statement" in page
    assert "She is &lt;b&gt;fully dressed&lt;/b&gt;; see the hem." in page
    assert 'id="no-image"' in page  # the image went with the first ticket
    assert "too revealing" in page


async def test_a_reviewer_of_a_publisher_tenant_sees_only_that_tenant(ticket, make_key, client):
    from tests.web.conftest import sign_in

    await ticket(12)
    _, key = await make_key("reviewer", tenant="elsewhere")
    await sign_in(client, key)

    page = (await client.get("/console")).text

    assert 'id="queue-empty"' in page


async def test_admin_view_shows_kpis_policy_and_checkpoint(ticket, client, settings):
    from tests.support import ADMIN_KEY
    from tests.web.conftest import sign_in

    await ticket(13)
    await sign_in(client, ADMIN_KEY)

    page = (await client.get("/console/admin")).text

    assert "1</strong> gate decisions" in page
    assert "Gate decisions by outcome" in page
    assert "<svg" in page
    assert re.search(r'<dd class="mono">[0-9a-f]{64}</dd>', page)  # the policy version


async def test_queue_and_history_speak_in_words_and_names(ticket, reviewer):
    _, ticket_id, _ = await ticket(41)
    _, ana = await reviewer("Reviewer Ana")
    _, ben = await reviewer("Reviewer Ben")
    assert (await claim(ana)).headers["location"] == f"/console/tickets/{ticket_id}"

    queue = (await ben.get("/console")).text
    # Reasons as their plain-language line with the code beside, the claim by name.
    assert "The violence score reached the policy&#39;s review threshold." in queue
    assert "<code>score_violence_review</code>" in queue
    assert "claimed by Reviewer Ana until" in queue

    page = (await ana.get(f"/console/tickets/{ticket_id}")).text
    assert re.search(r'id="client-name">publisher client<', page)
    # The evidence first: the decision form comes after the sources, scores and history.
    form = page.index('<h2 id="decide-heading">')
    assert page.index('<h2 id="sources-heading">') < form
    assert page.index('<h2 id="history-heading">') < form
    decided = await decide(ana, ticket_id, "blocked", "Not for publication.")
    assert decided.status_code == 303
    # Seen by the next reviewer (here through an appeal-free reopen of the page): names.
    closed = (await ben.get(f"/console/tickets/{ticket_id}")).text
    assert re.search(r"by Reviewer Ana <span class=\"hint mono\">cl_", closed)
