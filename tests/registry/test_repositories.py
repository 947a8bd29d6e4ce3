"""Each domain's repository owns its tables; there is no SQL outside repositories and core.

``OWNERS`` is the one written-down map of which domain owns which table. A table belongs to
the feature whose migration created it, unless the code says otherwise (the reasons are in the
owning repository's docstring, e.g. why review tickets are the gate's). Every other domain
reaches a table through its owner's repository functions; where the import layers forbid
that import (a lower layer needing a higher one's table, or the siblings consent and
provenance), the function is injected at composition (``registry.app``).

Static checks, no database needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "registry"
MIGRATIONS = ROOT / "migrations"

OWNERS: dict[str, frozenset[str]] = {
    # registry.core: API clients and keys (core.auth authenticates against both in one
    # statement), the audit log and its Merkle blocks (core.audit, core.audit_tree), the C2PA
    # identity (core.signing_identity), the migrations' own record (core.db), the shared
    # rate-limit buckets (core.ratelimit) and KPI snapshot (core.kpi_snapshot), and the
    # registry's signing keys, which the key ring of the ``keys`` floor keeps for the service
    # (its SQL lives there, below registry).
    "core": frozenset(
        {
            "api_clients",
            "api_keys",
            "audit_events",
            "audit_head",
            "audit_checkpoints",
            "audit_merkle_blocks",
            "signing_keys",
            "c2pa_identity",
            "schema_migrations",
            "rate_limit_buckets",
            "kpi_snapshot",
        }
    ),
    "consent": frozenset(
        {
            "consent_templates",
            "consent_data_keys",
            "consent_secrets",
            "consent_signers",
            "consent_records",
            "consent_assets",
            "consent_grants",
            "status_lists",
            "issued_tokens",
            "consent_shred_due",
        }
    ),
    "provenance": frozenset({"signed_outputs", "signed_output_consents"}),
    "gate": frozenset(
        {
            "moderation_decisions",
            "moderation_decision_consents",
            "review_tickets",
            "hash_lists",
            "hash_list_entries",
            "hash_lists_version",
            "misuse_suspensions",
            "feature_switches",
        }
    ),
    "review": frozenset(
        {
            "review_appeals",
            "review_reports",
            "moderation_decision_history",
            "review_texts",
            "takedown_webhooks",
            "takedown_events",
            "takedown_deliveries",
            "takedown_attempts",
        }
    ),
    "web": frozenset({"web_sessions", "review_images"}),
}

# The connection methods that run SQL (asyncpg's Connection and Pool).
DB_METHODS = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany", "cursor"})
COPY_TABLE_METHODS = frozenset({"copy_to_table", "copy_records_to_table", "copy_from_table"})
# Receivers that have a method of one of those names and are not a database.
NOT_DATABASE = {
    "self._fetcher": "registry.core.outbound.ImageFetcher.fetch is an HTTP GET",
}
_TABLE_AFTER = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?"
    # A name right before "(" is a function (FROM unnest(...)), not a table.
    r"([A-Za-z_][A-Za-z0-9_]*)\b(?!\()",
    re.IGNORECASE,
)
_CREATE_TABLE = re.compile(
    r"\bCREATE\s+(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)
_OWNS = re.compile(r"^owns:\s*(.+?)\.\s*$", re.MULTILINE | re.DOTALL)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_repository(path: Path) -> bool:
    return path.name == "repository.py" or path.parent.name == "repository"


def _may_run_sql(path: Path) -> bool:
    return _is_repository(path) or REGISTRY / "core" in path.parents


def _domain(path: Path) -> str:
    return path.relative_to(REGISTRY).parts[0]


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(REGISTRY.rglob("*.py"))]


def _database_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, call) of every call of a method that runs SQL, on any receiver but those known
    not to be a database."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        if method not in DB_METHODS and not method.startswith("copy_"):
            continue
        if ast.unparse(node.func.value) in NOT_DATABASE:
            continue
        found.append((node.lineno, ast.unparse(node)))
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of docstring nodes: prose, not SQL."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _sql_strings(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, text) of every string constant but docstrings, f-string parts included."""
    skip = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def _tables_named(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, table) for each name after FROM/JOIN/INTO/UPDATE/TABLE in a string, and for
    the table argument of asyncpg's COPY-to/from-table methods."""
    named = [
        (line, match.group(1).lower())
        for line, text in _sql_strings(tree)
        for match in _TABLE_AFTER.finditer(text)
    ]
    named.extend(
        (node.lineno, node.args[0].value.lower())
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in COPY_TABLE_METHODS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )
    return named


def _temporary_tables(tree: ast.Module) -> set[str]:
    return {
        match.group(1).lower()
        for _, text in _sql_strings(tree)
        if re.search(r"\bCREATE\s+TEMP", text, re.IGNORECASE)
        for match in _CREATE_TABLE.finditer(text)
    }


def _created_tables() -> set[str]:
    """Every table the schema has: those the migrations create, and the migrations' own
    record, which registry.core.db creates before the first migration runs."""
    created = {
        match.group(1).lower()
        for sql in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        for match in _CREATE_TABLE.finditer(sql.read_text())
    }
    runner = ast.parse((REGISTRY / "core" / "db.py").read_text())
    created |= {
        match.group(1).lower()
        for _, text in _sql_strings(runner)
        for match in _CREATE_TABLE.finditer(text)
    }
    return created


def _owner_of() -> dict[str, str]:
    owner: dict[str, str] = {}
    for domain, tables in OWNERS.items():
        for table in tables:
            assert table not in owner, f"{table} has two owners: {owner[table]} and {domain}"
            owner[table] = domain
    return owner


def test_every_table_has_exactly_one_owner():
    """A new table (a CREATE TABLE in migrations/) fails here until it is given an owner, so
    nobody has to guess whose repository may touch it; a table that no longer exists fails
    too, so the map never describes a schema we do not have."""
    owner = _owner_of()
    created = _created_tables()
    assert len(created) > 30  # the migrations were found and parsed
    assert sorted(created - owner.keys()) == [], "tables without an owner in OWNERS"
    assert sorted(owner.keys() - created) == [], "OWNERS names tables no migration creates"


def test_no_sql_runs_outside_repositories_and_core():
    """Only repositories (``registry/<domain>/repository.py`` or ``repository/*.py``) and
    ``registry/core`` run SQL. Anywhere else, a call of a connection's query methods is SQL
    that escaped its owner: the statement moves into the owner's repository as a named
    function, so every statement on a table is found in one place, next to the others the
    table's invariants depend on. Method names are flagged on any receiver (a connection
    goes by many names) except the few known not to be databases (``NOT_DATABASE``)."""
    offenders: dict[tuple[str, str], int] = {}
    for path, tree in _sources():
        if _may_run_sql(path):
            continue
        for _, call in _database_calls(tree):
            key = (_relative(path), call)
            offenders[key] = offenders.get(key, 0) + 1
    assert offenders == {}


def test_the_sql_scan_is_not_vacuous():
    """The scan above finds what it looks for: in every repository module that runs SQL, and
    in a made-up module that runs SQL the way the code base does."""
    repositories = [(path, tree) for path, tree in _sources() if _is_repository(path)]
    domains = {_domain(path) for path, _ in repositories}
    assert domains >= {"consent", "provenance", "gate", "review", "web"}
    for path, tree in repositories:
        if path.name != "__init__.py":
            assert _database_calls(tree), f"{_relative(path)} runs no SQL?"
    sample = ast.parse(
        "async def f(conn, uow, pool):\n"
        "    await conn.fetch('SELECT 1')\n"
        "    await uow.conn.fetchval('SELECT now()')\n"
        "    await pool.execute('SELECT 2')\n"
        "    await conn.copy_from_query('SELECT 3', output=None)\n"
        "    await self._fetcher.fetch('https://example.test/a.png')\n"
    )
    assert [line for line, _ in _database_calls(sample)] == [2, 3, 4, 5]


def test_repositories_name_only_their_own_tables():
    """A repository (and core) states SQL on its own domain's tables only. A statement that
    reads or writes another domain's table, a JOIN across owners included, would let two
    domains depend on each other's rows behind their backs; it is replaced by calls of the
    owner's repository functions (directly from a higher layer, or through a function or
    Protocol injected at composition where the layers forbid the import). Temporary tables a
    module creates itself are its own."""
    owner = _owner_of()
    offenders = []
    checked = 0
    for path, tree in _sources():
        if not _may_run_sql(path):
            continue
        domain = _domain(path)
        own = OWNERS[domain] | _temporary_tables(tree)
        for line, table in _tables_named(tree):
            checked += 1
            if table in owner and table not in own:
                offenders.append(f"{_relative(path)}:{line}: {domain} uses {owner[table]}.{table}")
    assert offenders == []
    assert checked > 100  # the scan reads the repositories' SQL


def test_the_table_scan_is_not_vacuous():
    """The table scan finds names after FROM, JOIN, INTO, UPDATE and TABLE, in f-strings and
    COPY calls, and ignores docstrings and function calls such as ``FROM unnest(...)``."""
    sample = ast.parse(
        "def f(conn, cols):\n"
        '    """Reads FROM issued_tokens, in words only."""\n'
        '    conn.fetch(f"SELECT {cols} FROM moderation_decisions d"\n'
        '               " JOIN review_tickets t USING (decision_id)")\n'
        '    conn.execute("UPDATE Web_Sessions SET x = 1 FROM unnest($1) AS u")\n'
        '    conn.execute("INSERT INTO takedown_events (a) VALUES (1)")\n'
        '    conn.execute("CREATE TEMP TABLE hash_import (a int) ON COMMIT DROP")\n'
        '    conn.copy_records_to_table("signed_outputs", records=[])\n'
    )
    assert sorted(table for _, table in _tables_named(sample)) == [
        "hash_import",
        "moderation_decisions",
        "review_tickets",
        "signed_outputs",
        "takedown_events",
        "web_sessions",
    ]
    assert _temporary_tables(sample) == {"hash_import"}


@pytest.mark.parametrize("domain", sorted(set(OWNERS) - {"core"}))
def test_each_repository_says_what_it_owns(domain):
    """Each domain's repository opens with the same map (``owns: a, b, c.``), so a reader of
    the code finds it where the SQL is."""
    package = REGISTRY / domain / "repository" / "__init__.py"
    module = package if package.exists() else REGISTRY / domain / "repository.py"
    docstring = ast.get_docstring(ast.parse(module.read_text())) or ""
    match = _OWNS.search(docstring)
    assert match is not None, f"{_relative(module)}: no 'owns: ...' line in its docstring"
    listed = {name.strip() for name in " ".join(match.group(1).split()).split(",")}
    assert listed == OWNERS[domain]
