"""The public check in a real headless Chromium against the running service."""

from __future__ import annotations

import pytest

from tests.support import ADMIN_KEY, bearer
from tests.web.browser import shot
from tests.web.support import make_world, picture, signed_with_consent, tamper

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def check_in_browser(page, service, path, name: str) -> str:
    await page.goto(f"{service.url}/verify")
    await page.get_by_label("Image").set_input_files(str(path))
    await page.get_by_role("button", name="Check this image").click()
    verdict = page.locator("#verdict")
    await verdict.wait_for()
    await shot(page, name)
    return (await verdict.inner_text()).strip()


async def test_signed_tampered_and_plain_images_read_as_three_verdicts(
    page, service, api, tmp_path
):
    world = await make_world(api, bearer(ADMIN_KEY), template_may_exist=True)
    signed, _ = await signed_with_consent(world, 11, generation_id="browser-gen")
    files = {
        "signed": signed,
        "tampered": tamper(signed),
        "plain": picture(12),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)

    signed_verdict = await check_in_browser(page, service, tmp_path / "signed.jpg", "verify-signed")
    tampered_verdict = await check_in_browser(
        page, service, tmp_path / "tampered.jpg", "verify-tampered"
    )
    plain_verdict = await check_in_browser(page, service, tmp_path / "plain.jpg", "verify-plain")

    assert signed_verdict.startswith("Signed by Consent Registry")
    assert signed_verdict.endswith("says AI-generated, consent still valid.")
    assert tampered_verdict.startswith("Tampered after signing")
    assert plain_verdict == "No provenance found."
    # The facts under the signed verdict: the action, the ingredient, the consent in words.
    await check_in_browser(page, service, tmp_path / "signed.jpg", "verify-signed")
    assert "c2pa.created" in await page.locator("#actions").inner_text()
    assert await page.locator("ul.tree").get_by_text("reference").count() == 1
    assert await page.locator(".chip.tone-good", has_text="valid").count() == 1
