"""Least privilege in the database: migrations as the owner, the service as a role of its own.

The service's role may add to the audit log but never rewrite it, nor switch off or drop what
protects it; the whole service works as that role (every HTTP test runs it so, see
tests/conftest.py); the embedded server makes both roles itself.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import keys
from registry.compose import build_services
from registry.core import audit, db
from registry.core.settings import Settings, SettingsError
from tests.registry.cli_support import run
from tests.support import SERVICE_ROLE, make_settings, service_url

APPEND_ONLY = ("audit_events", "audit_checkpoints", "moderation_decision_history")
FORBIDDEN = (
    "UPDATE {table} SET {column} = {column}",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "DROP TABLE {table}",
    "ALTER TABLE {table} OWNER TO {role}",
    "ALTER TABLE {table} ADD COLUMN forged text",
)
_FIRST_COLUMN = {
    "audit_events": "actor",
    "audit_checkpoints": "jws",
    "moderation_decision_history": "note_sha256",
    "audit_head": "hash",
}


class _Signer:
    def __init__(self) -> None:
        self.key = keys.LocalSigner.generate("EdDSA")

    def sign_jws(self, payload, *, typ: str) -> str:
        import msgspec

        return keys.sign_compact(msgspec.json.encode(payload), self.key, typ=typ)


async def _snapshot(conn: asyncpg.Connection) -> dict[str, list[asyncpg.Record]]:
    return {
        table: await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - constants
        for table in (*APPEND_ONLY, "audit_head")
    }


async def test_the_service_role_cannot_rewrite_or_unprotect_the_audit_log(
    database_url, service_database_url
):
    # A pool as the service opens it (JSON codecs included), one connection.
    pool = await db.create_pool(service_database_url, min_size=1, max_size=1)
    service = await pool.acquire()
    admin = await asyncpg.connect(database_url)
    try:
        assert await service.fetchval("SELECT current_user") == SERVICE_ROLE
        # What the service does: append events and sign a checkpoint of them.
        for i in range(3):
            async with service.transaction():
                await audit.append(
                    service,
                    actor="test",
                    tenant=None,
                    action="thing.done",
                    subject_type="thing",
                    subject_id=str(i),
                )
        async with service.transaction():
            assert await audit.make_checkpoint(service, _Signer(), issuer="http://test")
        before = await _snapshot(admin)

        allowed = []
        statements = [
            template.format(table=table, column=_FIRST_COLUMN[table], role=SERVICE_ROLE)
            for table in APPEND_ONLY
            for template in FORBIDDEN
        ]
        # The head moves forward with every append, but is never removed or replaced.
        statements += [
            template.format(table="audit_head", column="hash", role=SERVICE_ROLE)
            for template in FORBIDDEN[1:]
        ]
        statements += [
            "INSERT INTO audit_head (id, seq, hash) VALUES (false, 0, '\\x00')",
            "CREATE TABLE audit_events_forged (seq bigint)",
            (
                "CREATE TRIGGER forged BEFORE INSERT ON audit_events"
                " FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            ),
            (
                "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
            ),
            "SET session_replication_role = replica",
        ]
        for statement in statements:
            try:
                await service.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                continue
            allowed.append(statement)
        assert allowed == []

        assert await _snapshot(admin) == before
        triggers = await admin.fetch(
            "SELECT tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal"
            " AND tgrelid IN ('audit_events'::regclass, 'audit_checkpoints'::regclass,"
            " 'moderation_decision_history'::regclass)"
        )
        assert len(triggers) == 5
        assert {t["tgenabled"] for t in triggers} == {"O"}
        report = await audit.verify_chain(service)
        assert report.ok
        assert report.size == 3
        assert report.checkpoint_size == 3
    finally:
        await pool.release(service)
        await pool.close()
        await admin.close()


async def test_a_service_role_that_owns_the_tables_is_warned_about(
    database_url, service_database_url, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="registry.app")
    master_key = keys.MasterKey.generate().to_text()
    for url, warned in ((service_database_url, False), (database_url, True)):
        caplog.clear()
        settings = make_settings(url, tmp_path / str(warned), master_key=master_key)
        services = await build_services(settings)
        try:
            async with services.connection() as conn:
                assert (await conn.fetchval("SELECT current_user") == SERVICE_ROLE) is not warned
        finally:
            await services.close()
        assert any("could switch off" in r.getMessage() for r in caplog.records) is warned


def test_the_owner_url_is_checked_and_hidden_like_the_service_url():
    with pytest.raises(SettingsError, match="REGISTRY_DATABASE_OWNER_URL must be a postgresql"):
        Settings(database_url="postgresql://app@db/registry", database_owner_url="mysql://x")
    with pytest.raises(SettingsError, match="REGISTRY_DATABASE_OWNER_URL needs"):
        Settings(database_owner_url="postgresql://owner@db/registry")
    shown = Settings(
        database_url="postgresql://app:one@db/registry",
        database_owner_url="postgresql://owner:two@db/registry",
    ).redacted()
    assert shown["database_url"] == "postgresql://app:***@db/registry"
    assert shown["database_owner_url"] == "postgresql://owner:***@db/registry"


async def test_migrate_runs_as_the_owner_and_the_service_role_cannot(pg_server_url, service_role):
    name = f"registry_roles_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    owner = urlunsplit(urlsplit(pg_server_url)._replace(path=f"/{name}"))
    env = {
        "REGISTRY_DATABASE_URL": service_url(owner),
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
    }
    try:
        refused = run("migrate", env=env)
        assert refused.returncode == 2
        assert "creating schema_migrations was refused" in refused.stderr
        assert "REGISTRY_DATABASE_OWNER_URL" in refused.stderr

        migrated = run("migrate", env={**env, "REGISTRY_DATABASE_OWNER_URL": owner})
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.startswith(f"applied {len(db.load_migrations())} migration(s)")

        # Migrated by the owner, the service's role alone runs a command (and is not warned).
        verified = run("audit", "verify", env=env)
        assert verified.returncode == 0, verified.stderr
        assert "could switch off" not in verified.stderr
    finally:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def embedded_data_dir():
    # Under /tmp like conftest.py's server, not in pytest's basetemp: run as root, pgserver
    # opens every parent directory to its own user, and pytest makes its basetemp private.
    path = Path(tempfile.mkdtemp(prefix="registry-roles-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_an_embedded_start_makes_both_roles_and_takes_over_an_older_schema(
    embedded_data_dir,
):
    import pgserver

    # A data directory of the previous release: everything made by the superuser.
    old = embedded_data_dir / "old-migrations"
    old.mkdir()
    for migration in sorted(db.MIGRATIONS_DIR.glob("000[1-9]_*.sql")):
        shutil.copy(migration, old)
    server = pgserver.get_server(embedded_data_dir / "pg", cleanup_mode="stop")
    try:
        conn = await asyncpg.connect(server.get_uri())
        try:
            await db.migrate(conn, old)
            await conn.execute(
                "INSERT INTO api_clients (client_id, name, tenant, roles)"
                " VALUES ('cl_aaaaaaaaaaaaaaaa', 'old', 'acme', '{generator}')"
            )
        finally:
            await conn.close()
    finally:
        server.cleanup()

    settings = Settings(data_dir=embedded_data_dir, master_key=keys.MasterKey.generate().to_text())
    services = await build_services(settings)
    try:
        assert services.embedded is not None
        async with services.connection() as conn:
            assert await conn.fetchval("SELECT current_user") == db.EMBEDDED_SERVICE
            assert not await db.has_owner_rights(conn)
            assert await conn.fetchval("SELECT name FROM api_clients") == "old"
            owners = await conn.fetch(
                "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            )
            assert [r["owner"] for r in owners] == [db.EMBEDDED_OWNER]
            assert (
                await conn.fetchval(
                    "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
                )
                == db.EMBEDDED_OWNER
            )
            assert await conn.fetchval(
                "SELECT pg_has_role($1, $2, 'MEMBER')", db.EMBEDDED_SERVICE, db.SERVICE_GROUP
            )
            applied = await conn.fetchval("SELECT max(version) FROM schema_migrations")
            assert applied == db.load_migrations()[-1].version
    finally:
        await services.close()
