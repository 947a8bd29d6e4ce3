"""The gate records how close the output is to each declared source photo."""

from __future__ import annotations

import hashlib

from PIL import Image

from tests.consent_http import helpers
from tests.gate_http.conftest import CLEAN_SCORES, PERMITTED, PROHIBITED, PUBLISH_USES
from tests.moderation.support import encode_jpeg, make_image
from tests.support import opened_decisions


async def test_evidence_holds_the_outputs_distance_to_an_uploaded_source_photo(
    world, gate, database_url, settings
):
    photo = make_image(31)
    photo_bytes = encode_jpeg(photo)
    sha256 = hashlib.sha256(photo_bytes).hexdigest()
    form = helpers.sign_form(
        world.signer,
        helpers.form_payload(
            asset_hashes=[sha256], permitted_uses=PERMITTED, prohibited_uses=PROHIBITED
        ),
    )
    # The photo itself is uploaded, so the registry holds its perceptual hash.
    submitted = await world.submit(form, files={"assets": ("photo.jpg", photo_bytes, "image/jpeg")})
    assert submitted.status_code == 201, submitted.text
    consent = submitted.json()
    assert consent["assets"][0]["phash"]
    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"], uses=PUBLISH_USES)
    assert issued.status_code == 201, issued.text

    edited = encode_jpeg(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    response = await gate(
        edited,
        sources=[
            {
                "type": "photo",
                "asset_id": consent["assets"][0]["asset_id"],
                "sha256": sha256,
                "consent_token": issued.json()["token"],
            }
        ],
        scores=CLEAN_SCORES,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety_status"] == "allowed", body
    [files] = await opened_decisions(database_url, settings.master_key)
    [match] = files.evidence["hashes"]["sources"]
    assert match["asset_id"] == consent["assets"][0]["asset_id"]
    assert match["type"] == "photo"
    assert match["distance"] <= 6
