"""docs/privacy.md lists every column of the schema, and nothing that is not in it.

The data inventory (issue 18) is one Markdown table per database table, under a heading
``### `table` `` in its section "Database", whose first column ``Column`` names each column
in backquotes. The test migrates a fresh database, reads every column of the public schema
from ``information_schema.columns`` and compares both ways: a column missing from the
inventory and an inventory row naming no column fail alike, each by name, so neither a new
migration nor an edit of the document lets them drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

INVENTORY = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
SECTION = "Database"
HEADER = ("Column", "Personal data", "Purpose", "Read by", "Kept", "On erasure")

_SECTION = re.compile(r"^## (?P<title>.+?)\s*$", re.MULTILINE)
_TABLE = re.compile(r"^### `(?P<name>[a-z_][a-z0-9_]*)`\s*$", re.MULTILINE)
_NAME = re.compile(r"`(?P<name>[a-z_][a-z0-9_]*)`")
_RULE = re.compile(r":?-{3,}:?")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``##`` heading."""
    headings = list(_SECTION.finditer(text))
    for index, heading in enumerate(headings):
        if heading["title"] == title:
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            return text[heading.end() : end]
    raise ValueError(f"no section ## {title}")


def _rows(table: str, chunk: str) -> dict[str, list[str]]:
    """{column: cells} of the one Markdown table in ``chunk``, the text under a table heading."""
    lines = [line for line in chunk.splitlines() if line.startswith("|")]
    # The header and its rule, at least.
    if len(lines) < 2 or tuple(_cells(lines[0])) != HEADER:
        raise ValueError(f"{table}: its table must have the header | {' | '.join(HEADER)} |")
    if not all(_RULE.fullmatch(cell) for cell in _cells(lines[1])):
        raise ValueError(f"{table}: the header must be followed by a rule")
    rows: dict[str, list[str]] = {}
    for line in lines[2:]:
        cells = _cells(line)
        name = _NAME.fullmatch(cells[0])
        if name is None:
            raise ValueError(f"{table}: a row names a column in backquotes, not {cells[0]!r}")
        column = name["name"]
        if len(cells) != len(HEADER) or not all(cells):
            raise ValueError(f"{table}.{column} must fill all {len(HEADER)} cells")
        if column in rows:
            raise ValueError(f"{table}.{column} is listed twice")
        rows[column] = cells
    return rows


def parse_inventory(text: str) -> dict[str, dict[str, list[str]]]:
    """{table: {column: cells}} from the section "Database" of the inventory.

    Every ``### `table` `` heading there has one Markdown table with ``HEADER``; a row fills
    every cell (a column with nothing personal says so with "—") and names its column once.
    """
    section = _section(text, SECTION)
    headings = list(_TABLE.finditer(section))
    tables: dict[str, dict[str, list[str]]] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(section)
        if heading["name"] in tables:
            raise ValueError(f"table {heading['name']} is listed twice")
        tables[heading["name"]] = _rows(heading["name"], section[heading.end() : end])
    return tables


async def _schema_columns(database_url: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    return {(row["table_name"], row["column_name"]) for row in rows}


async def test_the_inventory_lists_every_column_and_only_those(database_url):
    schema = await _schema_columns(database_url)
    inventory = parse_inventory(INVENTORY.read_text(encoding="utf-8"))
    listed = {(table, column) for table, columns in inventory.items() for column in columns}
    assert schema, "the migrated database has no columns: the query is wrong"
    missing = sorted(f"{t}.{c}" for t, c in schema - listed)
    stale = sorted(f"{t}.{c}" for t, c in listed - schema)
    empty = sorted(table for table, columns in inventory.items() if not columns)
    assert not missing, f"columns missing from docs/privacy.md: {', '.join(missing)}"
    assert not stale, f"docs/privacy.md lists columns that do not exist: {', '.join(stale)}"
    assert not empty, f"docs/privacy.md lists tables without columns: {', '.join(empty)}"


def test_the_parser_reads_rows_and_refuses_a_half_filled_one():
    good = (
        "## Database\n\n### `things`\n\nAbout things.\n\n"
        f"| {' | '.join(HEADER)} |\n|---|---|---|---|---|---|\n"
        "| `thing_id` | — | names a thing | — | — | — |\n"
        "| `owner` | a user id | who owns it | admin | for good | NULLed |\n\n"
        "## Elsewhere\n\n| `not_a_column` | x | x | x | x | x |\n"
    )
    assert parse_inventory(good) == {
        "things": {
            "thing_id": ["`thing_id`", "—", "names a thing", "—", "—", "—"],
            "owner": ["`owner`", "a user id", "who owns it", "admin", "for good", "NULLed"],
        }
    }
    half = good.replace("| who owns it | admin | for good | NULLed |", "| |")
    with pytest.raises(ValueError, match=r"things\.owner must fill all 6 cells"):
        parse_inventory(half)
    twice = good.replace("`owner`", "`thing_id`")
    with pytest.raises(ValueError, match=r"things\.thing_id is listed twice"):
        parse_inventory(twice)
