"""PostgreSQL: the embedded server, the connection pool and the migrations runner.

This is the shell's only asyncpg module; domain repositories take a connection that the shell
hands them inside its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Arbitrary constant shared by every process that may migrate this database.
_MIGRATION_LOCK_ID = 0x5245_4749_4D49_4752  # "REGIMIGR"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class DatabaseError(Exception):
    """The database is unreachable, misconfigured or its schema is not ours."""

    code = "database_unavailable"


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            msg = f"migration file {path.name!r} is not named NNNN_snake_case.sql"
            raise DatabaseError(msg)
        migrations.append(
            Migration(version=match[1], name=match[2], sql=path.read_text(encoding="utf-8"))
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        msg = "two migration files share a version number"
        raise DatabaseError(msg)
    return migrations


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order; return the versions applied.

    An advisory lock makes concurrent starters wait for one another, each migration runs in
    its own transaction, and an applied migration whose file has since changed stops the run:
    migrations are append-only history.
    """
    migrations = load_migrations(directory)
    await conn.execute("SET lock_timeout = '15s'")
    await conn.execute("SET statement_timeout = '120s'")
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version text PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = {
            row["version"]: row["checksum"]
            for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    msg = (
                        f"migration {migration.version}_{migration.name} was changed after it "
                        "was applied; add a new migration instead"
                    )
                    raise DatabaseError(msg)
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %s_%s", migration.version, migration.name)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
        await conn.execute("RESET lock_timeout")
        await conn.execute("RESET statement_timeout")


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Versions on disk that the database has not applied (empty when current)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: set[str] = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m.version for m in load_migrations() if m.version not in applied]


@dataclass(frozen=True, kw_only=True)
class EmbeddedPostgres:
    """A handle on the embedded server; ``release`` lets go of it.

    pgserver counts the processes using a data directory and stops the server when the last
    one releases it, so several service processes on one machine can share it. Release
    explicitly: uvicorn ends on the re-raised SIGTERM, so ``atexit`` hooks never run.
    """

    url: str
    _server: Any

    def release(self) -> None:
        self._server.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL in ``data_dir/pg``."""
    with warnings.catch_warnings():
        # pgserver keeps its lock file in the user's runtime directory; without
        # XDG_RUNTIME_DIR (root shells, containers, CI) platformdirs warns at import and falls
        # back to /tmp, which is fine for a lock. (Matched by message: older platformdirs
        # versions warn with a plain UserWarning.)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - heavy, embedded only

    pgdata = data_dir / "pg"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
    except subprocess.SubprocessError as exc:
        # pgserver has logged the failed command and the server's log as errors already.
        msg = f"the embedded PostgreSQL did not start; its log is {pgdata / 'log'}"
        raise DatabaseError(msg) from exc
    except OSError as exc:
        msg = f"the embedded PostgreSQL cannot use {pgdata}: {exc}"
        raise DatabaseError(msg) from exc
    return EmbeddedPostgres(url=str(server.get_uri()), _server=server)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns come back as Python values, not text.
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_encode, decoder=_json_decode, schema="pg_catalog"
        )


def _json_encode(value: Any) -> str:
    import msgspec  # noqa: PLC0415 - keeps module import light for the CLI

    return msgspec.json.encode(value).decode()


def _json_decode(value: str) -> Any:
    import msgspec  # noqa: PLC0415

    return msgspec.json.decode(value)


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_attempts: int = 1,
    retry_delay: float = 1.0,
) -> asyncpg.Pool:
    """Open a pool, retrying while the server is still coming up."""
    last: Exception | None = None
    for attempt in range(1, connect_attempts + 1):
        try:
            return await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                # The reset query (RESET ALL, UNLISTEN, advisory unlock) runs on every release;
                # we set no session state outside migrations, so skip it on the hot path.
                reset=None,
                command_timeout=30,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            last = exc
            if attempt < connect_attempts:
                log.warning(
                    "database not reachable (attempt %d/%d): %s",
                    attempt,
                    connect_attempts,
                    type(exc).__name__,
                )
                await asyncio.sleep(retry_delay)
    msg = f"cannot connect to the database after {connect_attempts} attempt(s): {last}"
    raise DatabaseError(msg) from last


@contextlib.asynccontextmanager
async def acquire(pool: asyncpg.Pool, *, wait: float) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection, or DatabaseError when none frees up within ``wait`` seconds."""
    try:
        proxy = await pool.acquire(timeout=wait)
    except TimeoutError as exc:
        msg = "no database connection became free in time"
        raise DatabaseError(msg) from exc
    try:
        # The pool hands out proxies that forward every Connection method; domain code is
        # typed against Connection, so the cast lives here once.
        yield cast("asyncpg.Connection", proxy)
    finally:
        await pool.release(proxy)
