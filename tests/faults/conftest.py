"""The fault suite: real PostgreSQL faults under a real service process.

Each test that restarts PostgreSQL gets a server of its own (pgserver, in a short /tmp
directory, so the tests' shared server is never disturbed) and runs `registry serve` against
it as a subprocess: the same uvicorn, uvloop and asyncpg pool an operator runs, a process
that can be killed with SIGKILL, and connections that really break when the server goes.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from tests.faults.support import RestartablePostgres

if TYPE_CHECKING:
    from collections.abc import Iterator

_databases = itertools.count()


@pytest.fixture(scope="session")
def restartable_pg() -> Iterator[RestartablePostgres]:
    server = RestartablePostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def fault_database(restartable_pg: RestartablePostgres) -> str:
    """A new, empty database on the restartable server; the service migrates it."""
    return await restartable_pg.create_database(f"faults_{next(_databases)}")
