"""PostgreSQL: the embedded server, the connection pool and the migrations runner.

This is the shell's only asyncpg module; domain repositories take a connection that the shell
hands them inside its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import logging
import re
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from datetime import datetime
    from importlib.resources.abc import Traversable
    from pathlib import Path

log = logging.getLogger(__name__)

# The top-level migrations/ folder, which pyproject.toml ships as this package: a directory in a
# checkout and in an installed wheel alike, read only through the importlib.resources API.
MIGRATIONS_DIR: Traversable = resources.files("registry.migrations")
# Arbitrary constant shared by every process that may migrate this database.
_MIGRATION_LOCK_ID = 0x5245_4749_4D49_4752  # "REGIMIGR"
# Another, for processes that start the embedded server together and set up its roles.
_ROLES_LOCK_ID = 0x5245_4749_524F_4C45  # "REGIROLE"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# The group role migration 0010 grants the service's privileges to, and the embedded server's
# login roles: the tables' owner, who migrates, and the service, a member of the group.
SERVICE_GROUP = "registry_service"
EMBEDDED_OWNER = "registry_owner"
EMBEDDED_SERVICE = "registry_app"


class DatabaseError(Exception):
    """The database is unreachable, misconfigured or its schema is not ours."""

    code = "database_unavailable"


# What a request meets while PostgreSQL restarts, fails over or is overloaded: worth a retry,
# so these become DatabaseError (503 with Retry-After), never an internal error.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,  # 08xxx, ConnectionDoesNotExistError among them
    asyncpg.AdminShutdownError,  # 57P01: the server is shutting down
    asyncpg.CrashShutdownError,  # 57P02: a backend crashed, so every session was dropped
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down or in recovery
    asyncpg.DatabaseDroppedError,  # 57P04
    asyncpg.IdleSessionTimeoutError,  # 57P05
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a standby answers (after a failover)
)
_BOUNDED = (
    asyncpg.QueryCanceledError,  # 57014: REGISTRY_DB_STATEMENT_TIMEOUT
    asyncpg.LockNotAvailableError,  # 55P03: REGISTRY_DB_LOCK_TIMEOUT
    asyncpg.InsufficientResourcesError,  # 53xxx: too many connections, disk full, memory
)


def database_fault(exc: BaseException) -> DatabaseError | None:
    """``exc`` as the DatabaseError it amounts to, or None when it is no database fault.

    The one definition of a database fault: ``acquire`` applies it to what escapes a
    connection's block, the HTTP layer to what escapes a handler otherwise (the key ring
    uses the pool directly).
    """
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, _BOUNDED) or (isinstance(exc, TimeoutError) and _in_asyncpg(exc)):
        return DatabaseError(f"the database did not answer in time ({type(exc).__name__})")
    if connection_lost(exc):
        return DatabaseError(f"the database connection was lost ({type(exc).__name__})")
    return None


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the server or the connection to it went away."""
    if isinstance(exc, (*_CONNECTION_LOST, ConnectionError)):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed", "pool is closing": asyncpg has no subclass for these.
        return "clos" in str(exc)
    # Other OSErrors (the unix socket gone: FileNotFoundError) count when asyncpg was
    # connecting or talking; one from a file a handler reads is not the database's.
    return isinstance(exc, OSError) and not isinstance(exc, TimeoutError) and _in_asyncpg(exc)


def _in_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("asyncpg"):
            return True
        tb = tb.tb_next
    return False


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    files = (f for f in directory.iterdir() if f.name.endswith(".sql") and f.is_file())
    for file in sorted(files, key=lambda f: f.name):
        match = _MIGRATION_NAME.match(file.name)
        if match is None:
            msg = f"migration file {file.name!r} is not named NNNN_snake_case.sql"
            raise DatabaseError(msg)
        migrations.append(
            Migration(version=match[1], name=match[2], sql=file.read_text(encoding="utf-8"))
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        msg = "two migration files share a version number"
        raise DatabaseError(msg)
    return migrations


async def migrate(conn: asyncpg.Connection, directory: Traversable = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order; return the versions applied.

    An advisory lock makes concurrent starters wait for one another, each migration runs in
    its own transaction, and an applied migration whose file has since changed stops the run:
    migrations are append-only history.
    """
    migrations = load_migrations(directory)
    step = "creating schema_migrations"
    done: list[str] = []
    locked = False
    try:
        await conn.execute("SET lock_timeout = '15s'")
        await conn.execute("SET statement_timeout = '120s'")
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        locked = True
        # Checked first: CREATE TABLE IF NOT EXISTS needs the right to create even when the
        # table exists, and the service's role, which has none, migrates a current database.
        if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
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
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    msg = (
                        f"migration {migration.version}_{migration.name} was changed after it "
                        "was applied; add a new migration instead"
                    )
                    raise DatabaseError(msg)
                continue
            step = f"migration {migration.version}_{migration.name}"
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
    except asyncpg.InsufficientPrivilegeError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        msg = (
            f"{step} was refused: {exc}{hint}; migrations run as the tables' owner: set "
            "REGISTRY_DATABASE_OWNER_URL, or run `registry migrate` with it (README: Database "
            "roles)"
        )
        raise DatabaseError(msg) from exc
    finally:
        # The pool does not reset a session on release (``_keep_session``): the lock and the
        # settings are undone here, whatever failed.
        try:
            if locked:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
        finally:
            await conn.execute("RESET lock_timeout; RESET statement_timeout")
    return done


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Versions on disk that the database has not applied (empty when current)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: set[str] = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m.version for m in load_migrations() if m.version not in applied]


async def migrate_as(url: str, *, connect_attempts: int, wait: float) -> list[str]:
    """Migrate on a connection of its own (the owner's, when the service runs as another
    role); return the versions applied."""
    pool = await create_pool(url, min_size=1, max_size=1, connect_attempts=connect_attempts)
    try:
        async with acquire(pool, wait=wait) as conn:
            return await migrate(conn)
    finally:
        await pool.close()


async def has_owner_rights(conn: asyncpg.Connection) -> bool:
    """Whether this connection's role owns the audit log, can become its owner or is a
    superuser: then it could also switch off the triggers that keep the log append-only."""
    return bool(
        await conn.fetchval(
            "SELECT pg_has_role(relowner, 'MEMBER') FROM pg_class"
            " WHERE oid = to_regclass('audit_events')"
        )
    )


async def current_role(conn: asyncpg.Connection) -> str:
    """The role this connection runs as (``current_user``)."""
    role: str = await conn.fetchval("SELECT current_user")
    return role


async def now(conn: asyncpg.Connection) -> datetime:
    """The database's clock: inside a transaction, the time it started (``now()``), which
    every row it writes with ``DEFAULT now()`` carries too."""
    at: datetime = await conn.fetchval("SELECT now()")
    return at


@dataclass(frozen=True, kw_only=True)
class EmbeddedPostgres:
    """A handle on the embedded server; ``release`` lets go of it.

    pgserver counts the processes using a data directory and stops the server when the last
    one releases it, so several service processes on one machine can share it. Release
    explicitly: uvicorn ends on the re-raised SIGTERM, so ``atexit`` hooks never run.

    ``url`` is the service's role, ``owner_url`` the tables' owner, who migrates. pgserver
    trusts every local connection to its socket, so the roles need no passwords; they keep
    the service's SQL from altering the schema or rewriting the audit log, not a local user
    who could connect as the superuser.
    """

    url: str
    owner_url: str
    _server: Any

    def release(self) -> None:
        _follow_restart(self._server)
        self._server.cleanup()


def _follow_restart(server: Any) -> None:
    """Point pgserver at the server running now in its data directory.

    pgserver stops only the postmaster it saw at start (by pid); after ``pg_ctl restart`` (an
    operator's, or a test's) that pid is gone and the new server would outlive the service.
    """
    from pgserver.utils import PostmasterInfo  # noqa: PLC0415 - embedded only

    try:
        current = PostmasterInfo.read_from_pgdata(server.pgdata)
    except (OSError, ValueError, AssertionError):
        # postmaster.pid is being rewritten: keep what pgserver knows.
        return
    if current is not None and current.is_running():
        server._postmaster_info = current  # noqa: SLF001 - pgserver has no public setter


# Run as the superuser at every embedded start; quick once done. The owner gets the schema
# and whatever an earlier release made as the superuser (which owned everything then).
_EMBEDDED_ROLES = """
DO $$
DECLARE
    item record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_service') THEN
        CREATE ROLE registry_service NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_owner') THEN
        CREATE ROLE registry_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_app') THEN
        CREATE ROLE registry_app LOGIN;
    END IF;
    IF NOT pg_has_role('registry_app', 'registry_service', 'MEMBER') THEN
        GRANT registry_service TO registry_app;
    END IF;
    -- The shredder (registry.consent.shredding) retires the WAL that held deleted keys.
    IF NOT pg_has_role('registry_owner', 'pg_checkpoint', 'MEMBER') THEN
        GRANT pg_checkpoint TO registry_owner;
    END IF;
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() TO registry_owner;
    ALTER SCHEMA public OWNER TO registry_owner;
    FOR item IN
        SELECT oid::regclass AS name FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
          AND relowner <> 'registry_owner'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO registry_owner', item.name);
    END LOOP;
    FOR item IN
        SELECT oid::regprocedure AS name FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace AND proowner <> 'registry_owner'::regrole
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO registry_owner', item.name);
    END LOOP;
END
$$
"""


def _as_role(url: str, role: str) -> str:
    """``url`` (the embedded server's, passwordless) connecting as ``role`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))


async def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL in ``data_dir/pg``, its roles made."""
    server = await asyncio.to_thread(_start_server, data_dir / "pg")
    superuser = str(server.get_uri())
    try:
        conn = await asyncpg.connect(superuser)
        try:
            async with conn.transaction():
                # Roles belong to the whole server: processes starting together take turns.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _ROLES_LOCK_ID)
                await conn.execute(_EMBEDDED_ROLES)
            # Retired WAL segments are deleted, not renamed for reuse with their old bytes
            # (which would keep a shredded key on disk). ALTER SYSTEM refuses a transaction.
            if await conn.fetchval("SHOW wal_recycle") != "off":
                await conn.execute("ALTER SYSTEM SET wal_recycle = off")
                await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        await asyncio.to_thread(server.cleanup)
        msg = f"the embedded PostgreSQL's roles could not be set up: {exc}"
        raise DatabaseError(msg) from exc
    except BaseException:
        await asyncio.to_thread(server.cleanup)
        raise
    return EmbeddedPostgres(
        url=_as_role(superuser, EMBEDDED_SERVICE),
        owner_url=_as_role(superuser, EMBEDDED_OWNER),
        _server=server,
    )


def _start_server(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # pgserver keeps its lock file in the user's runtime directory; without
        # XDG_RUNTIME_DIR (root shells, containers, CI) platformdirs warns at import and falls
        # back to /tmp, which is fine for a lock. (Matched by message: older platformdirs
        # versions warn with a plain UserWarning.)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - heavy, embedded only

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
    return server


async def _init_connection(conn: asyncpg.Connection, *, dead_after: float | None) -> None:
    # JSON columns come back as Python values, not text.
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_encode, decoder=_json_decode, schema="pg_catalog"
        )
    if dead_after is not None:
        transport = cast("Any", conn)._transport  # noqa: SLF001 - asyncpg has no public way to its socket
        watch_socket(transport.get_extra_info("socket"), dead_after=dead_after)


# Probes start after this many idle seconds, then follow at this interval.
_KEEPALIVE_IDLE = 5
_KEEPALIVE_INTERVAL = 5


def watch_socket(sock: Any, *, dead_after: float) -> None:
    """Have the kernel give up on a TCP connection to the server ``dead_after`` seconds after
    the server last acknowledged anything: keepalive probes while a statement runs (the
    server's kernel answers them), TCP_USER_TIMEOUT for what is sent and probes unanswered.
    Linux has both; elsewhere only keepalives at the system's intervals. Unix sockets (the
    embedded server) have no network to lose and are left alone.
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", _KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL),
        ("TCP_USER_TIMEOUT", round(dead_after * 1000)),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _json_encode(value: Any) -> str:
    import msgspec  # noqa: PLC0415 - keeps module import light for the CLI

    return msgspec.json.encode(value).decode()


def _json_decode(value: str) -> Any:
    import msgspec  # noqa: PLC0415

    return msgspec.json.decode(value)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond what asyncpg always does.

    asyncpg's default (``reset=None``) runs ``Connection.reset()`` on every release:
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, a round trip per
    request. Before calling this, asyncpg still rolls back a transaction left open and drops
    the connection's listeners (``Connection._reset``), so a leaked transaction never reaches
    the next user. The service keeps no other session state: its advisory locks are
    transaction-scoped (``pg_advisory_xact_lock``), it never LISTENs, declares no cursors
    outside transactions and sets no session settings (``SET LOCAL`` at most). The one
    exception, ``migrate``, undoes its own SETs and its session lock before it returns.
    Code that adds session state must undo it itself, or call ``conn.reset()``.
    """


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def session_bounds(
    *, statement_timeout: float | None, lock_timeout: float | None
) -> dict[str, str]:
    """Server settings every pooled session starts with (RESET restores them, too)."""
    bounds: dict[str, str] = {}
    if statement_timeout is not None:
        bounds["statement_timeout"] = _milliseconds(statement_timeout)
    if lock_timeout is not None:
        bounds["lock_timeout"] = _milliseconds(lock_timeout)
    return bounds


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_attempts: int = 1,
    retry_delay: float = 1.0,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
) -> asyncpg.Pool:
    """Open a pool, retrying while the server is still coming up.

    ``statement_timeout`` and ``lock_timeout`` (seconds) bound every statement on the server,
    so a request holding a connection waits no longer than they allow; None: unbounded (the
    operator's commands, whose imports and verifications may take minutes).

    The client's own bound, for a server that stops answering altogether (a network
    partition), is statement timeout + 5 s, at least 30 s. With a statement timeout it is kept
    by the kernel (``watch_socket``) rather than by a timer asyncpg would arm and cancel for
    every query; without one, by asyncpg's ``command_timeout``.
    """
    last: Exception | None = None
    dead_after = max(30.0, (statement_timeout or 0.0) + 5.0)
    bounded = statement_timeout is not None
    for attempt in range(1, connect_attempts + 1):
        try:
            return await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                init=functools.partial(
                    _init_connection, dead_after=dead_after if bounded else None
                ),
                reset=_keep_session,
                command_timeout=None if bounded else dead_after,
                server_settings=session_bounds(
                    statement_timeout=statement_timeout, lock_timeout=lock_timeout
                ),
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


class WaitBudget:
    """Seconds one request may still spend waiting for pooled connections, all its acquires
    together (a gate decision acquires four times)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


_budget: contextvars.ContextVar[WaitBudget | None] = contextvars.ContextVar(
    "registry_db_wait_budget", default=None
)
# With the budget spent, an acquire still takes a connection that is free at once.
_LEAST_WAIT = 0.05


@contextlib.contextmanager
def wait_budget(seconds: float) -> Iterator[WaitBudget]:
    """Within this block (and the tasks it starts), acquires share ``seconds`` of waiting, so
    a request whose connections do not come answers about ``seconds`` after it first waited."""
    budget = WaitBudget(seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


@contextlib.asynccontextmanager
async def acquire(pool: asyncpg.Pool, *, wait: float) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection, or DatabaseError when none frees up within ``wait`` seconds
    (or what is left of the request's ``wait_budget``).

    A database fault (``database_fault``) escaping the block leaves as DatabaseError, so
    every caller meets one exception for "the database is not there now".
    """
    budget = _budget.get()
    if budget is not None:
        wait = min(wait, max(budget.seconds, _LEAST_WAIT))
    started = time.monotonic()
    try:
        proxy = await pool.acquire(timeout=wait)
    except TimeoutError as exc:
        msg = "no database connection became free in time"
        raise DatabaseError(msg) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The pool replaces a closed connection here, so connecting anew failed.
        await _expire(pool)
        msg = f"cannot connect to the database ({type(exc).__name__})"
        raise DatabaseError(msg) from exc
    finally:
        if budget is not None:
            budget.seconds -= time.monotonic() - started
    try:
        # The pool hands out proxies that forward every Connection method; domain code is
        # typed against Connection, so the cast lives here once.
        yield cast("asyncpg.Connection", proxy)
    except Exception as exc:
        fault = database_fault(exc)
        if fault is None or fault is exc:
            raise
        if connection_lost(exc):
            await _expire(pool)
        raise fault from exc
    finally:
        await _release(pool, proxy)


async def _expire(pool: asyncpg.Pool) -> None:
    # After a restart every pooled connection is dead, even the idle ones asyncpg has not
    # noticed yet: each is replaced on its next acquire instead of failing a request first.
    with contextlib.suppress(asyncpg.InterfaceError):
        await pool.expire_connections()


async def _release(pool: asyncpg.Pool, proxy: Any) -> None:
    try:
        await pool.release(proxy)
    except Exception as exc:
        if database_fault(exc) is None:
            raise
        # The connection died on its way back; the pool has dropped it. The work done on it
        # stands or fell already, so the caller's outcome is not changed.
        log.warning("database connection lost on release: %s", type(exc).__name__)
