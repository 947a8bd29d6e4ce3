"""The reviewer console in a real headless Chromium against the running service."""

from __future__ import annotations

import dataclasses
import re

import asyncpg
import pytest

from tests.consent_http.conftest import Party
from tests.support import ADMIN_KEY, bearer
from tests.web.browser import shot
from tests.web.support import make_world, review_ticket, withdraw

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def new_key(api, role: str, tenant: str = "system") -> str:
    response = await api.post(
        "/v1/admin/clients",
        json={"name": f"{role} in the browser", "roles": [role], "tenant": tenant},
        headers=bearer(ADMIN_KEY),
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    return key


async def sign_in(page, service, key: str) -> None:
    await page.goto(f"{service.url}/console/login")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def image_filter(page) -> str:
    value: str = await page.locator(".viewer img").evaluate("e => getComputedStyle(e).filter")
    return value


async def test_reviewer_signs_in_claims_reveals_and_decides_with_the_keyboard(page, service, api):
    world = await make_world(api, bearer(ADMIN_KEY), template_may_exist=True)
    for seed in (21, 22):
        await review_ticket(
            world, seed, database_url=service.database_url, master_key=service.master_key
        )
    await sign_in(page, service, await new_key(api, "reviewer"))
    await page.wait_for_url(f"{service.url}/console")
    waiting_before = int(await page.locator("#count-waiting").inner_text())
    await shot(page, "console-queue")

    await page.get_by_role("button", name="Claim next ticket").click()
    await page.wait_for_url(re.compile(r"/console/tickets/[\w-]+$"))
    image = page.locator(".viewer img")
    await image.wait_for()
    loaded = await image.evaluate("e => e.complete && e.naturalWidth")
    blurred = await image_filter(page)
    await shot(page, "console-ticket-blurred")

    await page.locator("#reveal").focus()
    await page.keyboard.press("Space")
    revealed = await image_filter(page)
    await page.locator("#grayscale").focus()
    await page.keyboard.press("Space")
    grey = await image_filter(page)
    await shot(page, "console-ticket-revealed")
    await page.locator(".viewer .frame").click()  # a click on the image blurs it again
    clicked = await image_filter(page)

    await page.get_by_label("Block publication").focus()
    await page.keyboard.press("Space")
    await page.get_by_label("Note for the record").focus()
    await page.keyboard.type("Suggestive pose of a real person; consent does not cover it.")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.id")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{service.url}/console?done=blocked")
    waiting_after = int(await page.locator("#count-waiting").inner_text())
    notice = await page.locator("#notice").inner_text()
    await shot(page, "console-queue-after")

    assert waiting_before >= 2
    assert loaded == 480
    assert "blur" in blurred
    assert revealed == "none"
    assert grey == "grayscale(1)"
    assert "blur" in clicked
    assert focused == "decide"
    assert outline == "solid"  # keyboard focus is visible
    assert notice.startswith("Decided: blocked.")
    assert waiting_after == waiting_before - 1


async def test_a_form_without_its_csrf_token_is_refused_and_a_publisher_cannot_sign_in(
    page, service, api
):
    await sign_in(page, service, await new_key(api, "publisher", tenant="pubco"))
    error = await page.locator("#login-error").inner_text()
    await shot(page, "console-login-refused")

    await sign_in(page, service, await new_key(api, "reviewer"))
    await page.wait_for_url(f"{service.url}/console")
    await page.locator('form[action="/console/claim"] input[name="csrf_token"]').evaluate(
        "e => e.remove()"
    )
    async with page.expect_response(f"{service.url}/console/claim") as posted:
        await page.get_by_role("button", name="Claim next ticket").click()
    response = await posted.value
    heading = await page.locator("h1").inner_text()

    assert "neither the reviewer nor the admin role" in error
    assert response.status == 403
    assert heading == "Form refused"
    # Nothing was claimed: the queue holds no ticket of this reviewer.
    await page.goto(f"{service.url}/console")
    assert await page.get_by_text("Continue with your ticket").count() == 0


async def test_admin_view_shows_the_kpi_charts(page, service):
    await sign_in(page, service, ADMIN_KEY)
    await page.wait_for_url(f"{service.url}/console/admin")
    await page.locator("#kpis").wait_for()
    await shot(page, "console-admin")

    assert await page.locator("svg[role=img]").count() >= 2
    assert re.fullmatch(r"[0-9a-f]{64}", await page.locator("#policy dd.mono").inner_text())


async def _ticket_of_own_tenant(api, service, seed: int, *, tenant: str, name: str):
    """A review ticket of a publisher in ``tenant`` alone, so that a reviewer of that tenant
    claims exactly it; returns the world (with that publisher) and the decision id."""
    world = await make_world(api, bearer(ADMIN_KEY), template_may_exist=True)
    created = await api.post(
        "/v1/admin/clients",
        json={"name": name, "roles": ["publisher"], "tenant": tenant},
        headers=bearer(ADMIN_KEY),
    )
    assert created.status_code == 201, created.text
    publisher = Party(created.json()["client_id"], bearer(created.json()["api_key"]))
    world = dataclasses.replace(world, publisher=publisher)
    decision_id, _, _ = await review_ticket(
        world, seed, database_url=service.database_url, master_key=service.master_key
    )
    return world, decision_id


async def test_the_ticket_draws_the_classifiers_regions_on_the_image(page, service, api):
    await _ticket_of_own_tenant(api, service, 32, tenant="pub-regions", name="region publisher")
    await sign_in(page, service, await new_key(api, "reviewer", tenant="pub-regions"))
    await page.wait_for_url(f"{service.url}/console")
    await page.get_by_role("button", name="Claim next ticket").click()
    await page.wait_for_url(re.compile(r"/console/tickets/[\w-]+$"))
    await page.locator(".viewer img").wait_for()
    # The service's classifier (tests.web.browser.RegionClassifier) explained the image
    # with one box: drawn over the image where it said, and listed with its confidence.
    box = await page.locator("#regions rect").evaluate(
        "e => ['x', 'y', 'width', 'height'].map(name => e.getAttribute(name))"
    )
    frame = await page.locator(".viewer .stage").bounding_box()
    drawn = await page.locator("#regions rect").bounding_box()
    label = await page.locator("#regions text").text_content()
    listed = await page.locator("#region-list tbody").inner_text()
    await page.locator("#reveal").focus()
    await page.keyboard.press("Space")
    await shot(page, "console-ticket-regions")

    assert box == ["12", "16", "96", "72"]
    assert frame is not None
    assert drawn is not None
    # 480 x 360 pixels shown at the frame's size: the box lands at the same share of it.
    assert abs((drawn["x"] - frame["x"]) / frame["width"] - 12 / 480) < 0.02
    assert abs((drawn["y"] - frame["y"]) / frame["height"] - 16 / 360) < 0.02
    assert abs(drawn["width"] / frame["width"] - 96 / 480) < 0.02
    assert label == "FACE_FEMALE 0.87"
    assert "http" in listed
    assert "FACE_FEMALE" in listed
    assert "0.87" in listed


async def test_an_output_whose_consent_ended_cannot_be_allowed(page, service, api):
    world, decision_id = await _ticket_of_own_tenant(
        api, service, 31, tenant="pub-ended", name="publisher of ended consents"
    )
    conn = await asyncpg.connect(service.database_url)
    try:
        consent_id = await conn.fetchval(
            "SELECT consent_id FROM moderation_decision_consents WHERE decision_id = $1",
            decision_id,
        )
    finally:
        await conn.close()
    await withdraw(world, consent_id)

    await sign_in(page, service, await new_key(api, "reviewer", tenant="pub-ended"))
    await page.wait_for_url(f"{service.url}/console")
    await page.get_by_role("button", name="Claim next ticket").click()
    await page.wait_for_url(re.compile(r"/console/tickets/[\w-]+$"))
    banner = await page.locator("#consent-ended").inner_text()
    asked_by = await page.locator("#client-name").inner_text()
    # The evidence comes first: the decision form follows the sources and the history.
    form_last = await page.evaluate("[...document.querySelectorAll('h2')].map(h => h.id).slice(-2)")
    allow = page.get_by_label("Allow publication")
    disabled = await allow.is_disabled()
    await shot(page, "console-ticket-consent-ended")

    # A page that was open before the withdrawal (or a forged form) still cannot allow it.
    await allow.evaluate("e => { e.disabled = false; e.checked = true; }")
    await page.get_by_label("Note for the record").fill("Fine by me.")
    async with page.expect_response(re.compile(r"/decision$")) as posted:
        await page.get_by_role("button", name="Record decision").click()
    refused = await posted.value
    error = await page.locator("#decide-error").inner_text()
    status = await page.locator("#current-status").inner_text()

    await page.get_by_label("Block publication").check()
    await page.get_by_label("Note for the record").fill("Consent withdrawn.")
    await page.get_by_role("button", name="Record decision").click()
    await page.wait_for_url(f"{service.url}/console?done=blocked")

    assert consent_id in banner
    assert "cannot be allowed" in banner
    assert asked_by == "publisher of ended consents"
    assert form_last == ["history-heading", "decide-heading"]
    assert disabled
    assert refused.status == 409
    assert consent_id in error
    assert "cannot be allowed" in error
    assert status == "review"


async def test_an_appeal_ticket_shows_the_image_its_publisher_attached(page, service, api):
    from tests.web.test_appeal_images import _attach, _blocked_appeal

    world = await make_world(api, bearer(ADMIN_KEY), template_may_exist=True)
    created = await api.post(
        "/v1/admin/clients",
        json={"name": "appealing publisher", "roles": ["publisher"], "tenant": "pub-appeal"},
        headers=bearer(ADMIN_KEY),
    )
    assert created.status_code == 201, created.text
    publisher = Party(created.json()["client_id"], bearer(created.json()["api_key"]))
    world = dataclasses.replace(world, publisher=publisher)
    appeal, image = await _blocked_appeal(world, 33)
    attached = await _attach(world, appeal["id"], image)
    assert attached.status_code == 200, attached.text

    await sign_in(page, service, await new_key(api, "reviewer", tenant="pub-appeal"))
    await page.wait_for_url(f"{service.url}/console")
    await page.get_by_role("button", name="Claim next ticket").click()
    await page.wait_for_url(re.compile(r"/console/tickets/[\w-]+$"))
    shown = page.locator(".viewer img")
    await shown.wait_for()
    loaded = await shown.evaluate("e => e.complete && e.naturalWidth")
    blurred = await image_filter(page)
    statement = await page.get_by_text("It is a film still.").count()
    await shot(page, "console-appeal-image")

    assert page.url.endswith(appeal["ticket_id"])
    assert loaded == 480
    assert "blur" in blurred
    assert statement == 1
