"""``registry serve`` and ``registry migrate``: run the HTTP service, apply migrations."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from registry.core.settings import Settings


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from registry.cli.supervise import become_supervisor  # noqa: PLC0415
    from registry.compose import prepare_start  # noqa: PLC0415

    # Connect, migrate and load keys once before the server starts its workers, so a bad
    # setting or an unreachable database (or Redis) ends here with a clear message instead of
    # a worker traceback. Only that: the hash index and the other parts are the workers' own.
    asyncio.run(prepare_start(settings))
    # This process has loaded the whole service to check it; the supervisor needs uvicorn
    # alone, so it becomes a fresh interpreter that runs only that (same process id).
    become_supervisor()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from registry.core import db  # noqa: PLC0415

    async def run() -> int:
        from registry.compose import resolve_database  # noqa: PLC0415

        database = await resolve_database(settings)
        try:
            # As the tables' owner (REGISTRY_DATABASE_OWNER_URL, or the embedded owner role).
            applied = await db.migrate_as(
                database.owner_url or database.url,
                connect_attempts=settings.db_connect_attempts,
                wait=settings.db_acquire_timeout,
            )
        finally:
            if database.embedded is not None:
                database.embedded.release()
        sys.stdout.write(
            f"applied {len(applied)} migration(s): {', '.join(applied)}\n"
            if applied
            else "database is up to date\n"
        )
        return 0

    return asyncio.run(run())
