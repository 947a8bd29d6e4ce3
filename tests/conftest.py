"""Shared fixtures: a real PostgreSQL for every test that needs one.

With ``REGISTRY_TEST_DATABASE_URL`` (or ``REGISTRY_DATABASE_URL``) set, tests create their
databases on that server (the role needs CREATEDB); otherwise one embedded PostgreSQL
(pgserver) is started for the session in a temporary directory. The schema is migrated once
into a template database, and every test gets a fresh copy of it, so tests are isolated
without mocking and without rollback tricks that would hide commit behaviour.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from registry import db

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a server where the tests may create databases."""
    external = os.environ.get("REGISTRY_TEST_DATABASE_URL") or os.environ.get(
        "REGISTRY_DATABASE_URL"
    )
    if external:
        return external
    # A short path: PostgreSQL's unix socket path must stay under 107 bytes.
    return db.start_embedded(tmp_path_factory.mktemp("pg"))


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


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database for this test alone."""
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
