"""The public check at /verify over HTTP: verdicts, escaping, errors as pages, rate limit."""

from __future__ import annotations

import html
import re

from tests.consent_http import helpers
from tests.web.support import picture, sign, signed_with_consent, strip, tamper, withdraw


def verdict(page: str) -> str:
    found = re.search(r'<p id="verdict">([^<]*)</p>', page)
    assert found is not None, page
    return html.unescape(found[1])


async def check(http, data: bytes, name: str = "image.jpg", media_type: str = "image/jpeg"):
    return await http.post("/verify", files={"file": (name, data, media_type)})


async def test_form_has_a_labelled_input_and_links_to_our_public_keys(client):
    response = await client.get("/verify")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<label for="file">' in page
    assert 'id="file" name="file" type="file"' in page
    assert 'href="/.well-known/jwks.json"' in page
    assert 'href="/v1/keys/c2pa/anchor"' in page
    assert "python -m verifier verify" in page
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


async def test_root_sends_people_to_the_check(client):
    response = await client.get("/", follow_redirects=False)

    assert response.status_code in {301, 302, 303, 307}
    assert response.headers["location"] == "/verify"


async def test_signed_image_with_valid_consent(world, client):
    image, _ = await signed_with_consent(world, 1)

    response = await check(client, image)

    assert response.status_code == 200, response.text
    sentence = verdict(response.text)
    assert sentence.startswith("Signed by ")
    assert sentence.endswith("says AI-generated, consent still valid.")
    assert "c2pa.created" in response.text
    assert "this exact file was signed by us" in response.text
    assert "reference" in response.text  # the consented photo, as an ingredient


async def test_withdrawn_consent_shows_on_the_verdict(world, client):
    image, consent_id = await signed_with_consent(world, 2)
    await withdraw(world, consent_id)

    response = await check(client, image)

    assert verdict(response.text).endswith("says AI-generated, consent withdrawn.")
    assert "withdrawn" in response.text


async def test_tampered_image(world, client):
    image, _ = await signed_with_consent(world, 3)

    response = await check(client, tamper(image))

    assert response.status_code == 200
    assert verdict(response.text).startswith("Tampered after signing")
    assert "dataHash.mismatch" in response.text


async def test_plain_image_has_no_provenance(client):
    response = await check(client, picture(4))

    assert verdict(response.text) == "No provenance found."
    assert 'id="similar"' not in response.text


async def test_stripped_copy_finds_the_signed_output(world, client):
    image, _ = await signed_with_consent(world, 5, generation_id="gen-stripped")

    response = await check(client, strip(image))

    assert verdict(response.text).startswith("No provenance found in the file, but it looks like")
    assert 'id="similar"' in response.text
    assert "gen-stripped" in response.text


async def test_every_manifest_string_is_escaped(world, client):
    hostile = '<script>alert("x")</script>'
    _, token = await world.granted_token()
    image = await sign(
        world, picture(6), tokens=[token["token"]], model=hostile, generation_id=hostile
    )

    response = await check(client, image)

    assert response.status_code == 200, response.text
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text


async def test_not_an_image_is_an_error_on_the_page(client):
    response = await check(client, b"this is not an image at all", "notes.txt", "text/plain")

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="verify-error"' in response.text
    assert 'id="verdict"' not in response.text


async def test_an_image_over_the_pixel_cap_is_an_error_on_the_page(client):
    response = await check(client, helpers.png_bomb(), "bomb.png", "image/png")

    assert 400 <= response.status_code < 500
    assert 'id="verify-error"' in response.text


async def test_checks_are_rate_limited_per_address_with_a_page(app_with):
    async with app_with(rate_limit_per_minute=1) as http:
        statuses = [(await http.post("/verify")).status_code for _ in range(11)]
        limited = await http.post("/verify")

    assert 429 not in statuses[:10]
    assert limited.status_code == 429
    assert limited.headers["retry-after"].isdigit()
    assert limited.headers["content-type"].startswith("text/html")
    assert "try again in" in limited.text


def sdk_sign(data: bytes, manifest: dict, identity) -> bytes:
    """Sign with the C2PA SDK directly, as another party's tool would (any content at all)."""
    import io

    import c2pa

    signer = c2pa.Signer.from_callback(
        identity.signer.sign, c2pa.C2paSigningAlg.ES256, identity.chain_pem, None
    )
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    builder = c2pa.Builder(manifest, context)
    output = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(data), output)
    signer.close()
    context.close()
    return output.getvalue()


async def test_a_hostile_manifest_from_anyone_is_escaped_and_never_linked(client):
    from keys.c2pa_identity import generate_dev_identity

    hostile = "<script>alert(1)</script>"
    stranger = generate_dev_identity(f"{hostile} Signer", organization=f"{hostile} Org")
    manifest = {
        "claim_generator_info": [{"name": hostile, "version": "1"}],
        "title": hostile,
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "softwareAgent": {"name": hostile},
                            "digitalSourceType": "http://cv.iptc.org/newscodes/"
                            "digitalsourcetype/trainedAlgorithmicMedia",
                        }
                    ]
                },
            },
            {
                "label": "org.consent-registry.consent",
                "data": {
                    "generation_id": hostile,
                    "consents": [
                        {
                            "jti": hostile,
                            "status": {"status_list": {"idx": 1, "uri": "javascript:alert(1)"}},
                        }
                    ],
                },
            },
        ],
    }
    data = sdk_sign(picture(7), manifest, stranger)

    response = await check(client, data)

    assert response.status_code == 200, response.text
    page = response.text
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    assert 'href="javascript:' not in page
    assert "javascript:alert(1)" in page  # shown as text, not as a link
    assert verdict(page).startswith("Signed by <script>alert(1)</script> Signer (a signer we do")
