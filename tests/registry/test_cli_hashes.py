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
    assert created.stdout == (
        "created hash list known-abuse (phash, action: block, scope: global, tenant: system)\n"
    )
    as_json = run(
        "hashes",
        "create-list",
        "watch",
        "--action",
        "review",
        "--signal",
        "pdq",
        "--scope",
        "tenant",
        "--unreviewed-distance",
        "16",
        "--tenant",
        "acme",
        "--json",
        env=env,
    )
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    assert view.pop("created_at")
    assert view == {
        "name": "watch",
        "signal": "pdq",
        "action": "review",
        "enabled": True,
        "unreviewed_distance": 16,
        "tenant": "acme",
        "scope": "tenant",
        "entries": 0,
    }

    admin_client = await rows(url, "SELECT client_id, tenant FROM api_clients")
    [(admin_id, admin_tenant)] = [tuple(r) for r in admin_client]
    phash_block = {
        "signal": "phash",
        "action": "block",
        "scope": "global",
        "unreviewed_distance": None,
    }
    watch = {"signal": "pdq", "action": "review", "scope": "tenant", "unreviewed_distance": 16}
    assert await _events(url) == [
        (admin_id, admin_tenant, "hash_list.created", "hash_list", "over-http", phash_block),
        ("cli", "system", "hash_list.created", "hash_list", "known-abuse", phash_block),
        ("cli", "acme", "hash_list.created", "hash_list", "watch", watch),
    ]
    # An admin sees its own tenant's lists only: the bootstrap admin's tenant is the CLI's
    # default one, not acme.
    assert admin_tenant == "system"
    listed = await client.get("/v1/admin/hash-lists", headers=admin)
    assert [entry["name"] for entry in listed.json()["lists"]] == ["known-abuse", "over-http"]
    # The CLI sees every tenant's.
    every = json.loads(run("hashes", "lists", "--json", env=env).stdout)["lists"]
    assert [(v["name"], v["tenant"]) for v in every] == [
        ("known-abuse", "system"),
        ("over-http", admin_tenant),
        ("watch", "acme"),
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
        (["x", "--action", "block", "--signal", "md5"], "argument --signal: invalid choice"),
        (["x", "--action", "block", "--scope", "all"], "argument --scope: invalid choice"),
        (["x", "--action", "block", "--unreviewed-distance", "-1"], "a distance is 0..256"),
        (["x", "--action", "block", "--unreviewed-distance", "65"], "hash_value_invalid"),
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
    assert "hash      required" in shown.stdout
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
        assert json.loads(done.stdout) == {
            "list": name,
            "received": 2,
            "added": 2,
            "updated": 0,
            "low_quality": 0,
        }
        # --json prints the counts alone, without the progress bar.
        assert "100.0%" not in done.stderr

    stored = await rows(
        database_url,
        "SELECT l.name, encode(e.hash, 'hex') AS hash, e.label, e.source"
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
        "name        signal  action  state     entries",
        "from-csv    phash   block   enabled   2",
        "from-jsonl  phash   block   enabled   2",
    ]


def test_no_lists_yet_says_how_to_make_one(database_url):
    listed = run("hashes", "lists", env=external(database_url))
    assert listed.returncode == 0
    assert "registry hashes create-list" in listed.stdout


PDQ_A = "f" * 16 + "0" * 48
PDQ_B = "0123456789abcdef" * 4
THREATEXCHANGE = (
    "signal_type,signal_str,collab,category,tags\n"
    f"pdq,{PDQ_A},hotline,POSITIVE_CLASS,case-1\n"
    f"HASH_PDQ,{PDQ_B},,INVESTIGATION_SEED,case-2\n"
)


async def _entries(database_url: str, name: str) -> set[tuple]:
    found = await rows(
        database_url,
        "SELECT encode(e.hash, 'hex') AS h, e.label, e.source, e.reviewed"
        " FROM hash_list_entries e JOIN hash_lists l USING (list_id)"
        " WHERE l.name = $1 AND e.enabled",
        name,
    )
    return {tuple(r) for r in found}


def test_the_cli_names_the_formats_moderation_reads():
    from moderation.exchange import FORMATS
    from registry.cli.hashes import _FORMATS

    assert _FORMATS == FORMATS


async def test_import_detects_or_is_told_the_format_and_counts_low_quality(database_url, tmp_path):
    env = external(database_url)
    assert run("hashes", "create-list", "te", "--action", "block", "--signal", "pdq", env=env)
    detected = tmp_path / "dataset.csv"
    detected.write_text(THREATEXCHANGE)
    # A name that says nothing: the format is named.
    named = tmp_path / "export.txt"
    named.write_text(
        f'{{"signals": {{"pdq": "{PDQ_A}"}}, "note": "case-3"}}\n'
        f'{{"signals": {{"pdq": "{PDQ_B}"}}, "note": "case-4", "disable_until_ts": 0}}\n'
    )
    low = tmp_path / "low.jsonl"
    low.write_text(f'{{"hash": "{PDQ_A}", "label": "flat", "quality": 12}}\n')

    first = run("hashes", "import", "te", str(detected), env=env)
    assert first.returncode == 0, first.stderr
    assert "te: 2 entries read, 2 added, 0 updated, 0 below the quality floor" in first.stderr
    assert await _entries(database_url, "te") == {
        (PDQ_A, "case-1", "hotline", True),
        (PDQ_B, "case-2", None, False),
    }
    second = run("hashes", "import", "te", str(named), "--format", "hma", "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["updated"] == 2
    assert await _entries(database_url, "te") == {
        (PDQ_A, "case-3", None, True),
        (PDQ_B, "case-4", None, False),
    }
    third = run("hashes", "import", "te", str(low), "--json", env=env)
    assert json.loads(third.stdout) == {
        "list": "te",
        "received": 1,
        "added": 0,
        "updated": 0,
        "low_quality": 1,
    }
    wrong = run("hashes", "import", "te", str(detected), "--format", "stopncii", env=env)
    assert wrong.returncode == 2
    assert "hash_list_line_invalid: line 1" in wrong.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "threatexchange", "hma", "stopncii"])
async def test_export_writes_what_import_reads_back(database_url, tmp_path, fmt):
    env = external(database_url)
    for name in ("source", "copy"):
        made = run("hashes", "create-list", name, "--action", "block", "--signal", "pdq", env=env)
        assert made.returncode == 0, made.stderr
    path = tmp_path / "dataset.csv"
    path.write_text(THREATEXCHANGE)
    assert run("hashes", "import", "source", str(path), "--json", env=env).returncode == 0

    to_stdout = run("hashes", "export", "source", "--format", fmt, env=env)
    out = tmp_path / f"exported.{fmt}"
    to_file = run("hashes", "export", "source", "--format", fmt, "--output", str(out), env=env)

    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_file.returncode == 0, to_file.stderr
    assert out.read_text() == to_stdout.stdout
    assert f"source: 2 entries written to {out}" in to_file.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    back = run("hashes", "import", "copy", str(out), "--format", fmt, "--json", env=env)
    assert back.returncode == 0, back.stderr
    assert await _entries(database_url, "copy") == await _entries(database_url, "source")


async def test_export_refusals_leave_no_file(database_url, tmp_path):
    env = external(database_url)
    assert run("hashes", "create-list", "pictures", "--action", "block", env=env).returncode == 0
    out = tmp_path / "out.jsonl"

    phash_as_stopncii = run(
        "hashes", "export", "pictures", "--format", "stopncii", "--output", str(out), env=env
    )
    missing = run("hashes", "export", "nope", env=env)
    empty = run("hashes", "export", "pictures", env=env)

    assert phash_as_stopncii.returncode == 2
    assert "hash_signal_mismatch" in phash_as_stopncii.stderr
    assert list(tmp_path.iterdir()) == []
    assert missing.returncode == 2
    assert "no hash list named 'nope'" in missing.stderr
    assert empty.stdout == "hash,label,source,reviewed\n"
