"""`registry clients`: listing, showing, revoking, adding and removing keys from the command line.

Each change goes through the function its HTTP endpoint uses, so it records the same audit
event (with actor "cli"); a refused one changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.registry.cli_support import external, rows, run
from tests.support import ADMIN_KEY, bearer, make_settings

CLIENTS = "/v1/admin/clients"
PROBE = "/v1/reviews"  # any authenticated GET; needs no particular role to get past 401
# The command line is another process: the service honours what it revokes within its API
# key cache interval (REGISTRY_API_KEY_CACHE_SECONDS), kept short here.
KEY_CACHE_SECONDS = 0.3


@pytest.fixture
def settings(service_database_url, tmp_path):
    return make_settings(service_database_url, tmp_path, api_key_cache_seconds=KEY_CACHE_SECONDS)


def _env(settings) -> dict[str, str]:
    """The CLI on the database and master key of the in-process service."""
    return {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_MASTER_KEY": settings.master_key,
    }


def _ok(*args: str, env: dict[str, str]):
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


async def _events(database_url: str, subject_id: str) -> list[tuple]:
    found = await rows(
        database_url,
        "SELECT actor, tenant, action, payload FROM audit_events WHERE subject_id = $1"
        " ORDER BY seq",
        subject_id,
    )
    return [(r["actor"], r["tenant"], r["action"], json.loads(r["payload"])) for r in found]


async def _state(database_url: str) -> tuple:
    """Everything a refused change must leave as it was."""
    clients = await rows(database_url, "SELECT * FROM api_clients ORDER BY client_id")
    keys = await rows(database_url, "SELECT * FROM api_keys ORDER BY key_id")
    events = await rows(database_url, "SELECT count(*) AS n FROM audit_events")
    return [dict(r) for r in clients], [dict(r) for r in keys], events[0]["n"]


def _without_last_used(listing):
    """last_used_at is written in the background (every 10 s): not comparable across calls."""
    if isinstance(listing, dict):
        return {k: _without_last_used(v) for k, v in listing.items() if k != "last_used_at"}
    if isinstance(listing, list):
        return [_without_last_used(item) for item in listing]
    return listing


async def _works(client, api_key: str) -> bool:
    response = await client.get(PROBE, headers=bearer(api_key))
    assert response.status_code in {200, 401, 403}, response.text
    return response.status_code != 401


async def test_list_and_show_answer_what_the_http_api_answers(client, admin, settings):
    env = _env(settings)
    made = await client.post(
        CLIENTS,
        json={"name": "Studio gen", "roles": ["generator"], "tenant": "studio"},
        headers=admin,
    )
    client_id = made.json()["client_id"]
    second = await client.post(
        f"{CLIENTS}/{client_id}/keys",
        json={"expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
        headers=admin,
    )
    [first_key] = [
        k["key_id"]
        for k in (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()["keys"]
        if k["key_id"] != second.json()["key_id"]
    ]
    await client.delete(f"{CLIENTS}/{client_id}/keys/{first_key}", headers=admin)

    listed = json.loads(_ok("clients", "list", "--json", env=env).stdout)
    shown = json.loads(_ok("clients", "show", client_id, "--json", env=env).stdout)

    over_http = (await client.get(CLIENTS, headers=admin)).json()
    assert _without_last_used(listed) == _without_last_used(over_http)
    one = (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()
    assert _without_last_used(shown) == _without_last_used(one)
    assert "api_key" not in json.dumps(listed) + json.dumps(shown)

    table = _ok("clients", "list", env=env).stdout.splitlines()
    assert re.fullmatch(r"client_id +name +tenant +roles +state +live keys", table[0])
    assert re.fullmatch(r"cl_\w+ +bootstrap-admin +system +admin +enabled +1 of 1", table[1])
    assert re.fullmatch(rf"{client_id} +Studio gen +studio +generator +enabled +1 of 2", table[2])
    text = _ok("clients", "show", client_id, env=env).stdout
    assert f"client_id: {client_id}\nname:      Studio gen\ntenant:    studio\n" in text
    assert "state:     enabled\nkeys:      1 live of 2\n" in text
    assert re.search(
        rf"  {first_key}  created \S+Z  expires never  last used \S+  revoked \S+Z", text
    )
    assert re.search(rf"  {second.json()['key_id']}  created \S+Z  expires \S+Z  .*  live\n", text)
    assert "rk_" not in text


async def test_changes_record_the_events_the_http_api_records(client, admin, settings):
    """One client changed over HTTP, one from the command line: the same events, by "cli"."""
    env = _env(settings)
    admin_id = next(
        c["client_id"]
        for c in (await client.get(CLIENTS, headers=admin)).json()["clients"]
        if c["name"] == "bootstrap-admin"
    )
    ids = []
    for name in ("over http", "from the cli"):
        made = await client.post(
            CLIENTS, json={"name": name, "roles": ["uploader"], "tenant": "acme"}, headers=admin
        )
        ids.append(made.json()["client_id"])
    over_http, from_cli = ids
    expiry = "2031-06-01T12:00:00+02:00"

    key = (
        await client.post(f"{CLIENTS}/{over_http}/keys", json={"expires_at": expiry}, headers=admin)
    ).json()
    await client.delete(f"{CLIENTS}/{over_http}/keys/{key['key_id']}", headers=admin)
    await client.post(f"{CLIENTS}/{over_http}/revoke", headers=admin)

    added = json.loads(
        _ok("clients", "add-key", from_cli, "--expires-at", expiry, "--json", env=env).stdout
    )
    assert set(added) == {"key_id", "api_key", "created_at", "expires_at"}
    assert added["expires_at"] == "2031-06-01T10:00:00Z"
    assert await _works(client, added["api_key"])
    removed = json.loads(
        _ok("clients", "remove-key", from_cli, added["key_id"], "--json", env=env).stdout
    )
    assert removed["key_id"] == added["key_id"]
    assert removed["revoked_at"]
    await asyncio.sleep(KEY_CACHE_SECONDS)
    assert not await _works(client, added["api_key"])
    revoked = json.loads(_ok("clients", "revoke", from_cli, "--json", env=env).stdout)
    assert revoked["client_id"] == from_cli
    assert revoked["disabled_at"]

    def changes(events, key_id):
        """Each change after creation, with the key's id (which differs) made a placeholder."""
        return [
            (action, {k: "KEY" if v == key_id else v for k, v in payload.items()})
            for _, _, action, payload in events[1:]
        ]

    http_events = await _events(settings.database_url, over_http)
    cli_events = await _events(settings.database_url, from_cli)
    assert changes(http_events, key["key_id"]) == [
        ("client.key_created", {"key_id": "KEY", "expires_at": "2031-06-01T10:00:00+00:00"}),
        ("client.key_revoked", {"key_id": "KEY"}),
        ("client.revoked", {"tenant": "acme"}),
    ]
    assert changes(cli_events, added["key_id"]) == changes(http_events, key["key_id"])
    assert {(actor, tenant) for actor, tenant, _, _ in http_events[1:]} == {(admin_id, "system")}
    assert {(actor, tenant) for actor, tenant, _, _ in cli_events[1:]} == {("cli", None)}


async def test_add_key_prints_the_key_once_and_it_works(client, admin, settings, database_url):
    env = _env(settings)
    made = await client.post(
        CLIENTS, json={"name": "gen", "roles": ["generator"], "tenant": "acme"}, headers=admin
    )
    client_id = made.json()["client_id"]

    added = _ok("clients", "add-key", client_id, env=env).stdout
    match = re.fullmatch(
        rf"added key (key_[0-9a-f]{{16}}) to client {client_id} \(expires never\); its API key, "
        r"shown this once:\n(rk_[A-Za-z0-9_-]{43})\n",
        added,
    )
    assert match, added
    key_id, api_key = match.groups()
    assert await _works(client, api_key)
    # Only its hash is stored, and no listing shows it.
    assert api_key not in _ok("clients", "show", client_id, "--json", env=env).stdout
    stored = await rows(database_url, "SELECT key_hash FROM api_keys WHERE key_id = $1", key_id)
    assert api_key.encode() not in bytes(stored[0]["key_hash"])

    soon = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    expiring = _ok("clients", "add-key", client_id, "--expires-at", soon.isoformat(), env=env)
    assert f"(expires {soon.isoformat().replace('+00:00', 'Z')})" in expiring.stdout


async def test_revoke_and_remove_key_are_idempotent(client, admin, settings):
    env = _env(settings)
    made = await client.post(
        CLIENTS, json={"name": "gone", "roles": ["uploader"], "tenant": "acme"}, headers=admin
    )
    client_id, api_key = made.json()["client_id"], made.json()["api_key"]
    [key] = (await client.get(f"{CLIENTS}/{client_id}", headers=admin)).json()["keys"]

    first = _ok("clients", "remove-key", client_id, key["key_id"], env=env)
    assert first.stdout == f"revoked key {key['key_id']} of client {client_id}: it works no more\n"
    again = _ok("clients", "remove-key", client_id, key["key_id"], env=env)
    assert re.fullmatch(
        rf"key {key['key_id']} of client {client_id} was already revoked \S+Z; nothing was "
        r"changed\n",
        again.stdout,
    )
    assert not await _works(client, api_key)

    revoked = _ok("clients", "revoke", client_id, env=env)
    assert revoked.stdout == f"revoked client {client_id} (gone): none of its keys works any more\n"
    twice = _ok("clients", "revoke", client_id, env=env)
    assert re.fullmatch(
        rf"client {client_id} \(gone\) was already revoked \S+Z; nothing was changed\n",
        twice.stdout,
    )
    assert "state:     revoked " in _ok("clients", "show", client_id, env=env).stdout
    actions = [action for _, _, action, _ in await _events(settings.database_url, client_id)]
    assert actions == ["client.created", "client.key_revoked", "client.revoked"]


async def test_create_takes_an_expiry(database_url):
    env = external(database_url)
    soon = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    created = json.loads(
        _ok(
            "clients", "create", "--name", "temp", "--role", "uploader",
            "--expires-at", soon.isoformat(), env=env,
        ).stdout
    )  # fmt: skip
    [key] = json.loads(_ok("clients", "show", created["client_id"], "--json", env=env).stdout)[
        "keys"
    ]
    assert datetime.fromisoformat(key["expires_at"]) == soon
    [(_, _, action, payload)] = await _events(database_url, created["client_id"])
    assert (action, payload["expires_at"]) == ("client.created", soon.isoformat())


async def test_create_takes_a_tier_and_refuses_an_unknown_one(database_url):
    env = external(database_url)
    created = json.loads(
        _ok("clients", "create", "--name", "signup", "--role", "publisher", "--tier", "public",
            env=env).stdout
    )  # fmt: skip
    assert created["tier"] == "public"
    shown = json.loads(_ok("clients", "show", created["client_id"], "--json", env=env).stdout)
    assert shown["rate_limit"]["tier"] == "public"
    assert shown["rate_limit"]["limit_per_minute"] == 300  # a quarter of the default 1200
    before = await _state(database_url)
    refused = run("clients", "create", "--name", "x", "--role", "publisher", "--tier", "gold",
                  env=env)  # fmt: skip
    assert refused.returncode == 2
    assert "invalid choice: 'gold'" in refused.stderr
    assert await _state(database_url) == before


async def test_the_last_admin_stays(database_url):
    env = {**external(database_url), "REGISTRY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    [admin] = json.loads(_ok("clients", "list", "--json", env=env).stdout)["clients"]
    [key] = admin["keys"]
    before = await _state(database_url)

    revoke = run("clients", "revoke", admin["client_id"], env=env)
    remove = run("clients", "remove-key", admin["client_id"], key["key_id"], "--json", env=env)

    lockout = (
        ": this is the last enabled admin client with a live key; create or keep another admin "
        "first, so the service does not lock itself out (last_admin); nothing was changed\n"
    )
    assert revoke.returncode == remove.returncode == 1
    assert revoke.stderr.endswith(f"registry: client {admin['client_id']}{lockout}")
    assert remove.stderr.endswith(
        f"registry: client {admin['client_id']}, key {key['key_id']}{lockout}"
    )
    assert revoke.stdout == remove.stdout == ""
    assert await _state(database_url) == before


REFUSED = "; nothing was changed\n"
UNKNOWN_IDS = [
    (
        ["revoke", "cl_nope"],
        "client cl_nope: there is no API client with this id (client_not_found)" + REFUSED,
    ),
    (
        ["add-key", "cl_nope", "--json"],
        "client cl_nope: there is no API client with this id (client_not_found)" + REFUSED,
    ),
    (
        ["remove-key", "cl_nope", "key_0123456789abcdef"],
        "client cl_nope, key key_0123456789abcdef: there is no API client with this id "
        "(client_not_found)" + REFUSED,
    ),
    (
        ["remove-key", "{client}", "key_0123456789abcdef"],
        "client {client}, key key_0123456789abcdef: this client has no key with this id "
        "(key_not_found)" + REFUSED,
    ),
    (
        ["remove-key", "{client}", "'; DROP TABLE api_keys; --"],
        "key '; DROP TABLE api_keys; --: this client has no key with this id (key_not_found)"
        + REFUSED,
    ),
    (
        ["show", "cl_nope", "--json"],
        "client cl_nope: there is no API client with this id (client_not_found)\n",
    ),
]


async def test_unknown_ids_and_a_revoked_client_exit_1_and_change_nothing(database_url):
    env = external(database_url)
    created = _ok("clients", "create", "--name", "one", "--role", "uploader", env=env)
    client_id = json.loads(created.stdout)["client_id"]
    before = await _state(database_url)
    for args, message in UNKNOWN_IDS:
        done = run("clients", *(a.format(client=client_id) for a in args), env=env)

        assert (done.returncode, done.stdout) == (1, ""), args
        assert done.stderr.endswith(message.format(client=client_id)), done.stderr
    assert await _state(database_url) == before

    _ok("clients", "revoke", client_id, env=env)
    revoked = await _state(database_url)
    done = run("clients", "add-key", client_id, env=env)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.endswith(
        f"registry: client {client_id}: this client is revoked; create a new client instead "
        "(client_revoked); nothing was changed\n"
    )
    assert await _state(database_url) == revoked


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        ("2030-01-01T00:00:00", "needs a UTC offset (RFC 3339), such as 2030-01-01T00:00:00Z"),
        ("2030-01-01", "not an RFC 3339 date-time such as 2030-01-01T00:00:00Z"),
        ("next tuesday", "not an RFC 3339 date-time such as 2030-01-01T00:00:00Z"),
        ("", "not an RFC 3339 date-time such as 2030-01-01T00:00:00Z"),
        ("2020-01-01T00:00:00Z", "must be in the future"),
        ("9999-12-31T23:59:59Z", "must be at most 3650 days from now"),
    ],
)
@pytest.mark.parametrize("command", ["add-key", "create"])
async def test_a_bad_expiry_is_a_usage_error_and_changes_nothing(
    database_url, command, expires_at, message
):
    env = external(database_url)
    before = await _state(database_url)
    target = ["cl_0123456789abcdef"] if command == "add-key" else ["--name", "x", "--role", "a"]

    done = run("clients", command, *target, "--expires-at", expires_at, env=env)

    assert done.returncode == 2
    assert done.stderr.endswith(f": error: argument --expires-at: {message}\n"), done.stderr
    assert done.stdout == ""
    assert await _state(database_url) == before
