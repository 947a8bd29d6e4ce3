"""Fixtures for the consent registry over HTTP: a registered template, clients of each role,
a person's signing key, and a helper that walks a consent from form to token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.consent_http import helpers


@dataclass
class Party:
    client_id: str
    headers: dict[str, str]


@dataclass
class World:
    """One tenant's uploader, a generator and a publisher, and the helpers they use."""

    http: Any
    admin: dict[str, str]
    uploader: Party
    generator: Party
    publisher: Party
    signer: helpers.Signer

    async def submit(
        self, form: str, *, headers: dict[str, str] | None = None, files: Any = None
    ) -> Any:
        if files is not None:
            return await self.http.post(
                "/v1/consents",
                data={"form": form},
                files=files,
                headers=headers or self.uploader.headers,
            )
        return await self.http.post(
            "/v1/consents", json={"form": form}, headers=headers or self.uploader.headers
        )

    async def consent(self, **changes: Any) -> dict[str, Any]:
        """A recorded hash-only consent signed by ``signer``; returns the 201 body."""
        response = await self.submit(
            helpers.sign_form(self.signer, helpers.form_payload(**changes))
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def grant(self, consent_id: str, client_id: str | None = None) -> Any:
        return await self.http.post(
            f"/v1/consents/{consent_id}/grants",
            json={"client_id": client_id or self.generator.client_id},
            headers=self.uploader.headers,
        )

    async def token(self, consent_id: str, **body: Any) -> Any:
        request = {"consent_id": consent_id, "uses": ["reference.generate"], **body}
        return await self.http.post("/v1/tokens", json=request, headers=self.generator.headers)

    async def granted_token(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A consent granted to the generator and a token issued from it."""
        consent = await self.consent()
        assert (await self.grant(consent["consent_id"])).status_code == 201
        response = await self.token(consent["consent_id"])
        assert response.status_code == 201, response.text
        return consent, response.json()

    async def verify(
        self, token: str, *, headers: dict[str, str] | None = None, **body: Any
    ) -> Any:
        response = await self.http.post(
            "/v1/tokens/verify",
            json={"token": token, **body},
            headers=headers or self.generator.headers,
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def world(client, admin, make_client) -> World:
    response = await client.post(
        "/v1/consent-templates",
        json={
            "id": helpers.TEMPLATE_ID,
            "title": "Likeness for reference-based generation",
            "text": helpers.TEMPLATE_TEXT,
            "uses": helpers.TEMPLATE_USES,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    parties = [
        Party(*await make_client(role, tenant=tenant, name=f"{role} client"))
        for role, tenant in (("uploader", "acme"), ("generator", "genco"), ("publisher", "pubco"))
    ]
    return World(
        http=client,
        admin=admin,
        uploader=parties[0],
        generator=parties[1],
        publisher=parties[2],
        signer=helpers.Signer(),
    )
