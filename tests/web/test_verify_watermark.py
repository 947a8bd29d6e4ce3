"""The public check at /verify names the signed output a stripped copy's watermark points to."""

from __future__ import annotations

import importlib.resources
import io

from PIL import Image

from tests.web.support import sign
from tests.web.test_verify_page import check, verdict


def photo(name: str) -> bytes:
    folder = importlib.resources.files("skimage") / "data"
    with (folder / name).open("rb") as file, Image.open(file) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


def strip(data: bytes, quality: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


async def test_a_stripped_copy_is_named_by_its_watermark(world, client):
    image = await sign(world, photo("coffee.png"), tokens=[], generation_id="gen-marked")

    response = await check(client, strip(image, 75))

    assert response.status_code == 200, response.text
    assert verdict(response.text) == (
        "No provenance found in the file, but it looks like an image we signed: it carries "
        "our invisible watermark (its provenance was probably stripped)."
    )
    assert 'id="watermark"' in response.text
    assert "found by watermark" in response.text
    assert "gen-marked" in response.text


async def test_a_tiny_image_has_no_verdict_from_the_watermark(client):
    tiny = io.BytesIO()
    Image.new("RGB", (10, 10), (9, 9, 9)).save(tiny, "JPEG")

    response = await check(client, tiny.getvalue())

    assert response.status_code == 200, response.text
    assert verdict(response.text) == "No provenance found."
    assert 'id="watermark"' not in response.text
