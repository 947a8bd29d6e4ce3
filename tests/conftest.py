"""Shared fixtures: a real PostgreSQL for every test that needs one.

With ``REGISTRY_TEST_DATABASE_URL`` (or ``REGISTRY_DATABASE_URL``) set, tests create their
databases on that server (the role needs CREATEDB and CREATEROLE); otherwise one embedded
PostgreSQL (pgserver) is started for the session in a temporary directory. The schema is
migrated once into a template database, and every test gets a fresh copy of it, so tests are
isolated without mocking and without rollback tricks that would hide commit behaviour.

Tests reach their database as the server's admin (``database_url``, ``pool``: to set up or
tamper with rows directly); the service they start runs as a login role with only the
privileges migration 0010 grants (``service_database_url``), as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from registry.app import create_app
from registry.core import db
from tests.support import (
    ADMIN_KEY,
    SERVICE_ROLE,
    bearer,
    make_settings,
    service_password,
    service_url,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from registry.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a server where the tests may create databases."""
    external = os.environ.get("REGISTRY_TEST_DATABASE_URL") or os.environ.get(
        "REGISTRY_DATABASE_URL"
    )
    if external:
        return external
    import pgserver

    # Not under pytest's basetemp: pytest prunes older basetemps, which would delete the data
    # directory of a server another pytest run on this machine is still using. A short path
    # also keeps PostgreSQL's unix socket path under its 107-byte limit.
    pgdata = Path(tempfile.mkdtemp(prefix="registry-test-pg-"))
    return str(pgserver.get_server(pgdata, cleanup_mode="delete").get_uri())


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    name = f"registry_tpl_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_database(pg_server_url, name))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(create())
    yield name

    async def drop() -> None:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def service_role(pg_server_url: str, template_database: str) -> str:
    """The login role the service runs as, a member of registry_service (made by migration
    0010 with the template; every copy of the template has its grants). Roles belong to the
    server, not to a database: this one is made once a session, and kept."""

    async def create() -> None:
        admin = await asyncpg.connect(pg_server_url)
        try:
            if not await admin.fetchval(
                "SELECT true FROM pg_roles WHERE rolname = $1", SERVICE_ROLE
            ):
                # Another test session against the same server may make it meanwhile.
                with contextlib.suppress(
                    asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError
                ):
                    await admin.execute(f"CREATE ROLE {SERVICE_ROLE} LOGIN")
            # A hex digest: safe in a literal (utility statements take no parameters).
            await admin.execute(
                f"ALTER ROLE {SERVICE_ROLE} PASSWORD '{service_password(pg_server_url)}'"
            )
            if not await admin.fetchval(
                "SELECT pg_has_role($1, $2, 'MEMBER')", SERVICE_ROLE, db.SERVICE_GROUP
            ):
                await admin.execute(f"GRANT {db.SERVICE_GROUP} TO {SERVICE_ROLE}")
        finally:
            await admin.close()

    asyncio.run(create())
    return SERVICE_ROLE


@pytest.fixture
async def database_url(
    pg_server_url: str, template_database: str, service_role: str
) -> AsyncIterator[str]:
    """A fresh, fully migrated database for this test alone, as the server's admin."""
    name = f"registry_t{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    yield _with_database(pg_server_url, name)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def service_database_url(database_url: str) -> str:
    """This test's database as the service's role (no ownership, only 0010's grants)."""
    return service_url(database_url)


@pytest.fixture
def settings(service_database_url, tmp_path) -> Settings:
    """Service settings on this test's database, with real generated keys."""
    return make_settings(service_database_url, tmp_path)


@pytest.fixture
async def client(settings) -> AsyncIterator[AsyncTestClient]:
    """The whole service (lifespan included) behind an in-process HTTP client."""
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin() -> dict[str, str]:
    return bearer(ADMIN_KEY)


@pytest.fixture
def make_client(client, admin):
    """Create an API client through the admin API; returns (client_id, headers)."""

    async def make(*roles: str, tenant: str = "acme", name: str = "test client"):
        response = await client.post(
            "/v1/admin/clients",
            json={"name": name, "roles": list(roles), "tenant": tenant},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], bearer(body["api_key"])

    return make
