"""Fixtures for the page tests: a consent world on the in-process service, and sign-in."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.web.support import csrf_of, make_world


@pytest.fixture
async def world(client, admin):
    return await make_world(client, admin, template_may_exist=True)


async def count(database_url: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        value: int = await conn.fetchval(sql, *args)
        return value
    finally:
        await conn.close()


async def sign_in(http, api_key: str):
    """Fetch the sign-in form (its CSRF cookie and field), then post the key."""
    page = await http.get("/console/login")
    assert page.status_code == 200, page.text
    return await http.post(
        "/console/login",
        data={"api_key": api_key, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


@pytest.fixture
def make_key(client, admin):
    """A new API client with these roles; returns (client_id, api key)."""

    async def make(*roles: str, tenant: str = "system", name: str = "console user"):
        response = await client.post(
            "/v1/admin/clients",
            json={"name": name, "roles": list(roles), "tenant": tenant},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], body["api_key"]

    return make


@pytest.fixture
def app_with(settings, tmp_path):
    """The service on this test's database with some settings changed."""
    from litestar.testing import AsyncTestClient

    from registry.app import create_app
    from tests.support import make_settings

    def build(**overrides: Any) -> AsyncTestClient:
        changed = make_settings(
            settings.database_url, tmp_path / "changed", master_key=settings.master_key, **overrides
        )
        return AsyncTestClient(app=create_app(changed))

    return build


@pytest.fixture(scope="session")
def service(pg_server_url, template_database, service_role, tmp_path_factory):
    """The real service (`registry serve`) on 127.0.0.1 with its own database."""
    from tests.web.browser import RegionClassifier, browser_missing, start_service

    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    # A classifier that explains every image with a region, as a detector would.
    classifier = RegionClassifier()
    running, stop = start_service(
        pg_server_url,
        template_database,
        tmp_path_factory.mktemp("served"),
        extra_env={
            "REGISTRY_CLASSIFIER_URL": classifier.url,
            "REGISTRY_CLASSIFIER_ALLOWED_HOSTS": "127.0.0.1",
        },
    )
    yield running
    stop()
    classifier.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium(service):
    from playwright.async_api import async_playwright

    from tests.web.browser import CHROMIUM, CHROMIUM_FLAGS

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(chromium):
    """A fresh browser context (no cookies) at laptop size."""
    from tests.web.browser import VIEWPORT

    context = await chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    yield page
    await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def api(service):
    """An HTTP client for the running service (setting up what the browser then looks at)."""
    import httpx

    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        yield http


@pytest.fixture
def ticket(world, settings, database_url):
    """Send an image through the real gate into review; returns (decision, ticket, image)."""
    from tests.web.support import review_ticket

    async def make(seed: int = 1, **options: Any):
        return await review_ticket(
            world, seed, database_url=database_url, master_key=settings.master_key, **options
        )

    return make


@pytest.fixture
def reviewer(client, make_key):
    """Reviewers of the operator's tenant, each signed in with its own browser cookies."""
    import httpx

    async def make(name: str = "reviewer", *roles: str):
        client_id, key = await make_key("reviewer", *roles, name=name)
        # Another cookie jar on the same running app: the `client`'s transport runs requests
        # in the event loop where the app's lifespan built its pool.
        http = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
        response = await sign_in(http, key)
        assert response.status_code == 303, response.text
        return client_id, http

    # Not closed here: the transport is the `client`'s, which closes it.
    return make
