"""`registry hashes`: creating and listing lists, and the import formats its help documents."""

from __future__ import annotations

import csv
import json

import pytest

from tests.registry.cli_support import external, rows, run


async def _events(database_url: str) -> list[tuple]:
    found = await rows(
        database_url,
        "SELECT actor, tenant, action, subject_type, subject_id, payload FROM audit_events"
        " WHERE action = 'hash_list.created' ORDER BY seq",
    )
    return [(*tuple(r)[:5], json.loads(r["payload"])) for r in found]


async def test_create_list_records_what_the_http_api_records(client, admin, settings):
    url = settings.database_url
    env = {"REGISTRY_DATABASE_URL": url, "REGISTRY_MASTER_KEY": settings.master_key}
    made = await client.post(
        "/v1/admin/hash-lists", json={"name": "over-http", "action": "block"}, headers=admin
    )
    assert made.status_code == 201, made.text

    created = run("hashes", "create-list", "known-abuse", "--action", "block", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout == "created hash list known-abuse (action: block)\n"
    as_json = run("hashes", "create-list", "watch", "--action", "review", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    assert view.pop("created_at")
    assert view == {"name": "watch", "action": "review", "enabled": True, "entries": 0}

    admin_client = await rows(url, "SELECT client_id, tenant FROM api_clients")
    [(admin_id, admin_tenant)] = [tuple(r) for r in admin_client]
    assert await _events(url) == [
        (
            admin_id,
            admin_tenant,
            "hash_list.created",
            "hash_list",
            "over-http",
            {"action": "block"},
        ),
        ("cli", None, "hash_list.created", "hash_list", "known-abuse", {"action": "block"}),
        ("cli", None, "hash_list.created", "hash_list", "watch", {"action": "review"}),
    ]
    # The service sees the CLI's lists like its own.
    listed = await client.get("/v1/admin/hash-lists", headers=admin)
    assert [entry["name"] for entry in listed.json()["lists"]] == [
        "known-abuse",
        "over-http",
        "watch",
    ]


async def test_a_taken_name_is_refused_and_nothing_changes(database_url):
    env = external(database_url)
    assert run("hashes", "create-list", "dup", "--action", "block", env=env).returncode == 0

    again = run("hashes", "create-list", "dup", "--action", "review", "--json", env=env)

    assert again.returncode == 1
    assert again.stderr.endswith("registry: a hash list named 'dup' exists; nothing was changed\n")
    assert again.stdout == ""
    stored = await rows(database_url, "SELECT name, action FROM hash_lists")
    assert [tuple(r) for r in stored] == [("dup", "block")]
    assert len(await _events(database_url)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--action", "delete"], "argument --action: invalid choice: 'delete'"),
        (["Bad Name", "--action", "block"], "argument name: a list name is 1..64 characters"),
        (["x"], "the following arguments are required: --action"),
    ],
)
async def test_bad_create_list_arguments_are_usage_errors(args, message, database_url):
    result = run("hashes", "create-list", *args, env=external(database_url))
    assert result.returncode == 2
    assert message in result.stderr
    assert await rows(database_url, "SELECT name FROM hash_lists") == []


def _example(help_text: str, title: str) -> list[str]:
    """The two indented lines under ``title`` in the help."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 1
    example = lines[start : start + 2]
    assert all(line.startswith("  ") for line in example), example
    return [line[2:] for line in example]


async def test_the_import_help_examples_import_as_documented(database_url, tmp_path):
    shown = run("hashes", "import", "--help")
    assert shown.returncode == 0
    assert "hash    required" in shown.stdout
    csv_lines = _example(shown.stdout, "CSV example")
    jsonl_lines = _example(shown.stdout, "JSON lines example")
    # What the examples say, read with the standard library rather than our parsers.
    from_csv = {(r[0], r[1], r[2] if len(r) > 2 else None) for r in csv.reader(csv_lines)}
    from_jsonl = {(d["hash"], d["label"], d.get("source")) for d in map(json.loads, jsonl_lines)}
    env = external(database_url)

    for name, lines, suffix in (
        ("from-csv", csv_lines, ".csv"),
        ("from-jsonl", jsonl_lines, ".jsonl"),
    ):
        assert run("hashes", "create-list", name, "--action", "block", env=env).returncode == 0
        path = tmp_path / f"protected{suffix}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done = run("hashes", "import", name, str(path), "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"list": name, "received": 2, "added": 2, "updated": 0}
        # --json prints the counts alone, without the progress bar.
        assert "100.0%" not in done.stderr

    stored = await rows(
        database_url,
        "SELECT l.name, lpad(to_hex(e.hash), 16, '0') AS hash, e.label, e.source"
        " FROM hash_list_entries e JOIN hash_lists l USING (list_id) WHERE e.enabled",
    )
    landed = {name: set() for name in ("from-csv", "from-jsonl")}
    for row in stored:
        landed[row["name"]].add((row["hash"], row["label"], row["source"]))
    assert landed == {"from-csv": from_csv, "from-jsonl": from_jsonl}

    listed = run("hashes", "lists", "--json", env=env)
    assert [(v["name"], v["entries"]) for v in json.loads(listed.stdout)["lists"]] == [
        ("from-csv", 2),
        ("from-jsonl", 2),
    ]
    table = run("hashes", "lists", env=env)
    assert table.stdout.splitlines() == [
        "name        action  state     entries",
        "from-csv    block   enabled   2",
        "from-jsonl  block   enabled   2",
    ]


def test_no_lists_yet_says_how_to_make_one(database_url):
    listed = run("hashes", "lists", env=external(database_url))
    assert listed.returncode == 0
    assert "registry hashes create-list" in listed.stdout
