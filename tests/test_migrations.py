from __future__ import annotations

import asyncpg
import pytest

from registry import db


async def test_migrations_are_recorded_and_idempotent(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        assert await db.pending_migrations(conn) == []
        assert await db.migrate(conn) == []
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in db.load_migrations()]
    finally:
        await conn.close()


async def test_changed_migration_is_refused(database_url, tmp_path):
    for m in db.load_migrations():
        (tmp_path / f"{m.version}_{m.name}.sql").write_text(m.sql)
    first = db.load_migrations()[0]
    (tmp_path / f"{first.version}_{first.name}.sql").write_text(first.sql + "\n-- edited\n")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(db.DatabaseError, match="changed after it was applied"):
            await db.migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_audit_rows_cannot_be_rewritten(pool):
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO audit_events VALUES (1, now(), 'system', NULL, 'test', 'x', '1', '{}',"
            " '\\x00', '\\x00')"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_events")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_events SET action = 'forged'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE audit_events")
