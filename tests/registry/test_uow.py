"""The unit of work: a change and its audit events commit together, and it is the only way in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from registry.core import audit
from registry.core.uow import unit_of_work

REGISTRY = Path(__file__).resolve().parents[2] / "registry"
UOW = REGISTRY / "core" / "uow.py"
# Migrations and the pool's own fault handling open transactions with no operation behind them.
TRANSACTIONS_ALLOWED = {UOW, REGISTRY / "core" / "db.py"}


class Boom(Exception):
    pass


async def _events(conn) -> list[tuple[str, str | None, str, str]]:
    rows = await conn.fetch(
        "SELECT actor, tenant, action, subject_id FROM audit_events ORDER BY seq"
    )
    return [(r["actor"], r["tenant"], r["action"], r["subject_id"]) for r in rows]


async def test_changes_and_events_commit_together_in_order(pool):
    async with pool.acquire() as conn:
        async with unit_of_work(conn, actor="alice", tenant="t1") as uow:
            await uow.conn.execute("CREATE TABLE thing (id text)")
            await uow.conn.execute("INSERT INTO thing VALUES ('a')")
            uow.record("thing.made", subject_type="thing", subject_id="a")
            uow.record_all(
                [
                    audit.AuditRecord(
                        action="thing.seen", subject_type="thing", subject_id="a", payload={}
                    )
                ],
                tenant="t2",
            )
            # Nothing is in the log before the operation ends: the head is locked briefly.
            assert await _events(uow.conn) == []
        assert await conn.fetchval("SELECT count(*) FROM thing") == 1
        assert await _events(conn) == [
            ("alice", "t1", "thing.made", "a"),
            ("alice", "t2", "thing.seen", "a"),
        ]
        report = await audit.verify_chain(conn)
        assert report.ok, report


async def test_a_failed_operation_keeps_neither_change_nor_event(pool):
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE thing (id text)")

        async def fails() -> None:
            async with unit_of_work(conn, actor="alice", tenant="t1") as uow:
                await uow.conn.execute("INSERT INTO thing VALUES ('a')")
                uow.record("thing.made", subject_type="thing", subject_id="a")
                raise Boom

        with pytest.raises(Boom):
            await fails()
        assert await conn.fetchval("SELECT count(*) FROM thing") == 0
        assert await _events(conn) == []


async def test_a_system_event_can_belong_to_no_tenant(pool):
    async with pool.acquire() as conn:
        async with unit_of_work(conn, actor="reviewer", tenant="t1") as uow:
            uow.record("thing.done", subject_type="thing", subject_id="x", tenant=None)
        assert await _events(conn) == [("reviewer", None, "thing.done", "x")]


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in REGISTRY.rglob("*.py")]


def _calls_audit_append(tree: ast.Module) -> list[int]:
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "registry.core.audit"
        for alias in node.names
        if alias.name == "append"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "append":
            if isinstance(func.value, ast.Name) and func.value.id == "audit":
                lines.append(node.lineno)
        elif isinstance(func, ast.Name) and func.id in imported:
            lines.append(node.lineno)
    return lines


def _read_only(call: ast.Call) -> bool:
    return any(
        k.arg == "readonly" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def _opens_transactions(tree: ast.Module) -> list[int]:
    """Lines opening a transaction that may write (a read-only snapshot is no operation)."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "transaction"
        and not _read_only(node)
    ]


def test_only_the_unit_of_work_appends_to_the_audit_log():
    sources = _sources()
    assert len(sources) > 100  # the scan sees the whole package
    offenders = [
        f"{path.relative_to(REGISTRY.parent)}:{line}"
        for path, tree in sources
        if path != UOW
        for line in _calls_audit_append(tree)
    ]
    assert offenders == []
    # The rule is not vacuous: the unit of work itself is found appending.
    assert _calls_audit_append(ast.parse(UOW.read_text()))


def test_write_transactions_are_opened_only_by_the_unit_of_work():
    offenders = [
        f"{path.relative_to(REGISTRY.parent)}:{line}"
        for path, tree in _sources()
        if path not in TRANSACTIONS_ALLOWED
        for line in _opens_transactions(tree)
    ]
    assert offenders == []
    assert _opens_transactions(ast.parse(UOW.read_text()))
