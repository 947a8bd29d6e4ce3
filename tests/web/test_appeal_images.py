"""The image of an appealed decision: the publisher attaches the bytes the gate decided on, the
appeal's reviewer sees it while the appeal is open, and it goes when the appeal is decided.
Everything wrong is refused with nothing kept."""

from __future__ import annotations

import pytest

from tests.gate_http.conftest import check_request, post_check
from tests.support import assert_problem
from tests.web.conftest import count
from tests.web.support import picture
from tests.web.test_console_review import claim, decide

IMAGES = "SELECT count(*) FROM review_images"
ATTACHED = "SELECT count(*) FROM audit_events WHERE action = 'appeal.image_attached'"
BLOCK_SCORES = {"sexual_content": 0.1, "minor_presence": 0.01, "violence": 0.95}
MINOR_SCORES = {"sexual_content": 0.95, "minor_presence": 0.9}


async def _blocked_appeal(world, seed: int, scores=BLOCK_SCORES):
    """A real gate decision blocked outright, appealed; returns (appeal, image bytes)."""
    image = picture(seed, size=(480, 360))
    gated = await post_check(
        world.http,
        world.publisher.headers,
        check_request(f"gen-appeal-{seed}", scores=scores, generator=world.generator.client_id),
        image,
    )
    assert gated.status_code == 200, gated.text
    decision = gated.json()
    assert decision["safety_status"] == "blocked", decision
    appeal = await world.http.post(
        "/v1/appeals",
        json={"decision_id": decision["decision_id"], "statement": "It is a film still."},
        headers=world.publisher.headers,
    )
    assert appeal.status_code == 201, appeal.text
    return appeal.json(), image


async def _attach(world, appeal_id: str, image: bytes, headers=None, media="image/jpeg"):
    return await world.http.put(
        f"/v1/appeals/{appeal_id}/image",
        files={"image": ("output.jpg", image, media)},
        headers=world.publisher.headers if headers is None else headers,
    )


async def test_an_appeal_shows_the_attached_image_until_it_is_decided(
    world, reviewer, database_url
):
    appeal, image = await _blocked_appeal(world, 51)
    assert await count(database_url, IMAGES) == 0  # a blocked decision keeps no image

    attached = await _attach(world, appeal["id"], image)
    again = await _attach(world, appeal["id"], image)

    assert attached.status_code == 200, attached.text
    assert attached.json() == {
        "appeal_id": appeal["id"],
        "decision_id": appeal["decision_id"],
        "media_type": "image/jpeg",
        "bytes": len(image),
        "created": True,
    }
    assert again.json()["created"] is False
    assert await count(database_url, IMAGES) == 1
    assert await count(database_url, ATTACHED) == 1

    _, http = await reviewer("appeal reviewer")
    taken = await claim(http)
    ticket_id = taken.headers["location"].rsplit("/", 1)[-1]
    assert ticket_id == appeal["ticket_id"]
    page = (await http.get(f"/console/tickets/{ticket_id}")).text
    shown = await http.get(f"/console/tickets/{ticket_id}/image")

    assert f'src="/console/tickets/{ticket_id}/image"' in page
    assert shown.status_code == 200
    assert shown.content == image

    decided = await decide(http, ticket_id, "blocked", "A still from a war film; the block stands.")
    assert decided.status_code == 303, decided.text
    assert await count(database_url, IMAGES) == 0
    after = await _attach(world, appeal["id"], image)
    assert_problem(after, 409, "appeal_not_open")
    assert await count(database_url, IMAGES) == 0


async def test_an_appeal_without_its_image_says_why_on_the_ticket(world, reviewer):
    appeal, _ = await _blocked_appeal(world, 52)
    _, http = await reviewer("appeal reviewer")
    taken = await claim(http)
    page = (await http.get(taken.headers["location"])).text

    assert appeal["ticket_id"] in taken.headers["location"]
    assert 'id="no-image"' in page
    assert "has not attached the decided image to this appeal" in page


async def test_an_image_blocked_for_a_likely_minor_is_never_kept(world, database_url):
    appeal, image = await _blocked_appeal(world, 53, scores=MINOR_SCORES)

    refused = await _attach(world, appeal["id"], image)

    assert_problem(refused, 409, "appeal_image_not_kept")
    assert "minor" in refused.json()["detail"]
    assert await count(database_url, IMAGES) == 0
    assert await count(database_url, ATTACHED) == 0


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ("other image", 422, "appeal_image_mismatch"),
        ("not an image", 415, "image_format_not_allowed"),
        ("unknown appeal", 404, "appeal_not_found"),
        ("another tenant", 404, "appeal_not_found"),
        ("a reviewer", 403, "forbidden"),
        ("no image part", 400, "part_invalid"),
    ],
)
async def test_a_wrong_attachment_keeps_nothing(
    world, make_key, database_url, change, status, code
):
    appeal, image = await _blocked_appeal(world, 54)
    appeal_id, headers, data = appeal["id"], world.publisher.headers, image
    if change == "other image":
        data = picture(55, size=(480, 360))
    elif change == "not an image":
        data = b"GIF89a, or rather not an image at all"
    elif change == "unknown appeal":
        appeal_id = "apl_nosuchappeal0000000000"
    elif change == "another tenant":
        _, key = await make_key("publisher", tenant="otherco", name="another publisher")
        headers = {"Authorization": f"Bearer {key}"}
    elif change == "a reviewer":
        _, key = await make_key("reviewer", name="a reviewer")
        headers = {"Authorization": f"Bearer {key}"}

    if change == "no image part":
        response = await world.http.put(
            f"/v1/appeals/{appeal_id}/image",
            files={"picture": ("output.jpg", data, "image/jpeg")},
            headers=headers,
        )
    else:
        response = await _attach(world, appeal_id, data, headers=headers)

    assert_problem(response, status, code)
    assert await count(database_url, IMAGES) == 0
    assert await count(database_url, ATTACHED) == 0
