"""The pages work with no network: /schema, /verify and the console's sign-in load their
assets from the service alone, and the live OpenAPI document is the committed one, request
bodies included."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
_HOST = re.compile(r"(?:https?:)?//([A-Za-z0-9.-]+)")


async def test_the_live_document_is_the_committed_one(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    committed = (ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8")
    assert response.text == committed
    # Routes with path parameters keep their request bodies (they were missing once).
    withdraw = json.loads(committed)["paths"]["/v1/consents/{consent_id}/withdraw"]["post"]
    assert "application/json" in withdraw["requestBody"]["content"]


@pytest.mark.parametrize("page", ["/schema", "/verify", "/console/login"])
async def test_a_page_names_no_other_host(client, settings, page):
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    ours = {urlsplit(settings.public_issuer).hostname}
    # XML namespaces are names, not addresses a browser fetches.
    hosts = {host for host in _HOST.findall(response.text) if host != "www.w3.org"}
    assert hosts <= ours, hosts - ours
    references = [r for r in _REFERENCE.findall(response.text) if not r.startswith("#")]
    assert references, "a page with neither stylesheet nor script?"
    for found in references:
        reference = found.removeprefix(settings.public_issuer)
        assert reference.startswith("/"), found
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        if reference.endswith(".css"):
            # A stylesheet could still pull fonts or images from elsewhere.
            assert "@import" not in asset.text
            assert re.search(r"url\(\s*['\"]?(?:https?:)?//", asset.text) is None


async def test_the_schema_page_loads_swagger_ui_from_the_service(client):
    page = (await client.get("/schema")).text
    assert {"/schema/ui/swagger-ui.css", "/schema/ui/swagger-ui-bundle.js"} <= set(
        _REFERENCE.findall(page)
    )


async def test_swagger_ui_is_started_without_the_public_validator(client):
    script = await client.get("/static/schema-ui.js")
    assert script.status_code == 200
    assert "validatorUrl: null" in script.text
    assert (await client.get("/schema/ui/../../README.md")).status_code == 404
