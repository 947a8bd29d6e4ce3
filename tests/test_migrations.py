from __future__ import annotations

import asyncpg
import pytest

from registry.core import db


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


# What the service's role may do to each table (migration 0010; later migrations grant on the
# tables they add). A table missing here fails the test: decide what the service needs of it,
# grant that in its migration, and add it. The append-only tables take INSERT only.
SERVICE_PRIVILEGES = {
    "schema_migrations": "S",
    "audit_events": "SI",
    "audit_checkpoints": "SI",
    "audit_merkle_blocks": "SI",
    "moderation_decision_history": "SI",
    "takedown_attempts": "SI",
    "audit_head": "SU",
    "hash_lists_version": "SU",
    "c2pa_identity": "SI",
    "consent_templates": "SI",
    "consent_secrets": "SI",
    "consent_grants": "SI",
    "signed_outputs": "SI",
    "signed_output_consents": "SI",
    "moderation_decision_consents": "SI",
    "api_clients": "SIU",
    "api_keys": "SIU",
    "signing_keys": "SIU",
    "consent_signers": "SIU",
    "consent_records": "SIU",
    "consent_assets": "SIU",
    "status_lists": "SIU",
    "issued_tokens": "SIU",
    "moderation_decisions": "SIU",
    "review_tickets": "SIU",
    "review_appeals": "SIU",
    "review_reports": "SIU",
    "hash_lists": "SIU",
    "hash_list_entries": "SIU",
    "takedown_webhooks": "SIU",
    "takedown_events": "SIU",
    "takedown_deliveries": "SIU",
    "misuse_suspensions": "SIU",
    "feature_switches": "SIUD",
    "consent_data_keys": "SID",
    "review_images": "SID",
    "review_texts": "SID",
    "consent_shred_due": "SI",
    "web_sessions": "SIUD",
    "rate_limit_buckets": "SIUD",
    "kpi_snapshot": "SIU",
}
_LETTER = {"SELECT": "S", "INSERT": "I", "UPDATE": "U", "DELETE": "D"}


async def test_the_service_role_has_what_each_table_needs_and_owns_nothing(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner,"
            " coalesce(array_agg(a.privilege_type) FILTER ("
            "   WHERE a.grantee = $1::regrole), '{}') AS privileges"
            " FROM pg_class c LEFT JOIN LATERAL aclexplode(c.relacl) a ON true"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
            " GROUP BY c.relname, c.relowner",
            db.SERVICE_GROUP,
        )
        granted = {
            row["relname"]: "".join(
                letter for word, letter in _LETTER.items() if word in row["privileges"]
            )
            for row in rows
        }
        assert granted == SERVICE_PRIVILEGES
        # Every other privilege (TRUNCATE, REFERENCES, TRIGGER) stays the owner's.
        assert all(set(row["privileges"]) <= set(_LETTER) for row in rows)
        owners = {row["owner"] for row in rows}
        members = await conn.fetchval(
            "SELECT array_agg(o) FROM unnest($1::text[]) o"
            " WHERE pg_has_role($2, o::regrole, 'MEMBER')",
            list(owners),
            db.SERVICE_GROUP,
        )
        assert members is None
    finally:
        await conn.close()
