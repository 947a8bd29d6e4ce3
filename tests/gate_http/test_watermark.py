"""The publish gate reads our watermark from an output that carries no manifest: a copy of a
signed output stripped of it is named in the evidence (found by watermark), on a real
database with real signing."""

from __future__ import annotations

import io

from PIL import Image

from tests.gate_http.conftest import output
from tests.support import opened_decisions


def strip(data: bytes, quality: int = 75) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


async def sign(world, image: bytes, generation_id: str):
    response = await world.http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", image, "image/jpeg"),
            "metadata": (
                None,
                f'{{"generation_id":"{generation_id}","model":"m","consent_tokens":[]}}',
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )
    assert response.status_code == 200, response.text
    return response


async def test_a_stripped_signed_output_is_named_by_its_watermark(
    world, gate, database_url, settings
):
    signed = await sign(world, output(31), "gen-wm-gate")

    response = await gate(strip(signed.content), generation_id="gen-wm-check")

    assert response.status_code == 200, response.text
    [files] = await opened_decisions(database_url, settings.master_key)
    provenance = files.evidence["provenance"]
    assert provenance["state"] == "absent"
    key = provenance["watermark"]["key"]
    assert provenance["watermark"] == {
        "key": key,
        "output_id": signed.headers["provenance-output-id"],
        "generation_id": "gen-wm-gate",
        "found_by": "watermark",
    }


async def test_an_unmarked_output_and_a_signed_one_carry_no_watermark_evidence(
    world, gate, database_url, settings
):
    signed = await sign(world, output(32), "gen-wm-signed")

    assert (await gate(output(33), generation_id="gen-plain")).status_code == 200
    # With its manifest the output is read by C2PA; the watermark is not read at all.
    assert (await gate(signed.content, generation_id="gen-signed")).status_code == 200

    plain, with_manifest = await opened_decisions(database_url, settings.master_key)
    assert plain.evidence["provenance"]["state"] == "absent"
    assert plain.evidence["provenance"].get("watermark") is None
    assert with_manifest.evidence["provenance"]["state"] == "trusted"
    assert with_manifest.evidence["provenance"].get("watermark") is None


async def test_a_tiny_image_at_the_gate_has_no_watermark_and_no_error(
    world, gate, database_url, settings
):
    tiny = io.BytesIO()
    Image.new("RGB", (12, 12), (0, 0, 0)).save(tiny, "JPEG")

    response = await gate(tiny.getvalue(), generation_id="gen-tiny")

    assert response.status_code == 200, response.text
    [files] = await opened_decisions(database_url, settings.master_key)
    assert files.evidence["provenance"].get("watermark") is None
