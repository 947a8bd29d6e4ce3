"""The `registry` command, run as a user would run it."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from importlib import metadata
from pathlib import Path

import asyncpg
import pytest

import keys
from tests.registry.cli_support import external, run
from tests.support import ADMIN_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_malformed_database_url_exits_2_with_message():
    result = run("migrate", env={"REGISTRY_DATABASE_URL": "mysql://nope"})
    assert result.returncode == 2
    assert "REGISTRY_DATABASE_URL" in result.stderr


def test_malformed_master_key_exits_2_without_echoing_it(database_url):
    secret = "not-a-key-but-secret-ish-value"
    result = run(
        "keys", "rotate", env={"REGISTRY_DATABASE_URL": database_url, "REGISTRY_MASTER_KEY": secret}
    )
    assert result.returncode == 2
    assert "REGISTRY_MASTER_KEY" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_external_database_requires_master_key(database_url):
    result = run("keys", "rotate", env={"REGISTRY_DATABASE_URL": database_url})
    assert result.returncode == 2
    assert "REGISTRY_MASTER_KEY is required" in result.stderr


def test_database_down_exits_2_with_clear_message():
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/registry"
    result = run(
        "keys",
        "rotate",
        env={
            "REGISTRY_DATABASE_URL": url,
            "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
            "REGISTRY_DB_CONNECT_ATTEMPTS": "2",
        },
    )
    assert result.returncode == 2
    assert "cannot connect to the database after 2 attempt(s)" in result.stderr


def test_wrong_master_key_for_existing_keys_exits_2(database_url):
    env = {
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
    }
    assert run("keys", "rotate", env=env).returncode == 0
    env["REGISTRY_MASTER_KEY"] = keys.MasterKey.generate().to_text()
    result = run("keys", "rotate", env=env)
    assert result.returncode == 2
    assert "key_decryption_failed" in result.stderr


def test_clients_create_prints_key_once_and_audit_verify(database_url):
    env = {
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
    }
    created = run(
        "clients",
        "create",
        "--name",
        "gen",
        "--role",
        "generator",
        "--role",
        "publisher",
        "--tenant",
        "acme",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert '"api_key": "rk_' in created.stdout
    assert run("keys", "rotate", env=env).returncode == 0
    assert run("audit", "checkpoint", env=env).returncode == 0
    verified = run("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "audit chain OK: 2 event(s), consistent with checkpoint at 2" in verified.stdout


async def test_audit_verify_names_the_tampered_event(database_url):
    env = {
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
        "REGISTRY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
    }
    for name in ("a", "b", "c"):
        assert (
            run("clients", "create", "--name", name, "--role", "uploader", env=env).returncode == 0
        )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    finally:
        await conn.close()
    result = run("audit", "verify", env=env)
    assert result.returncode == 1
    assert "BROKEN at event 2" in result.stdout
    as_json = run("audit", "verify", "--json", env=env)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    # size: the events that verify, here those before the tampered one.
    assert (report["ok"], report["size"], report["first_bad_seq"]) == (False, 1, 2)
    assert report["problem"] == "event 2 does not match its hash (edited or reordered)"


def test_bad_role_exits_2():
    result = run(
        "clients",
        "create",
        "--name",
        "x",
        "--role",
        "emperor",
        env={
            "REGISTRY_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
            "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
            "REGISTRY_DB_CONNECT_ATTEMPTS": "1",
        },
    )
    assert result.returncode == 2


def test_openapi_document_is_committed_and_current():
    result = run("openapi", "--check")
    assert result.returncode == 0, result.stderr


def test_new_keys_are_well_formed():
    master = run("keys", "new-master-key")
    assert master.returncode == 0
    keys.MasterKey.from_text(master.stdout.strip())
    api = run("clients", "new-key")
    assert api.stdout.strip().startswith("rk_")
    keys.MasterKey.from_text(
        json.loads(run("keys", "new-master-key", "--json").stdout)["master_key"]
    )
    assert json.loads(run("clients", "new-key", "--json").stdout)["api_key"].startswith("rk_")


def test_version_is_the_installed_package_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"registry {metadata.version('consent-registry')}\n"


def test_json_output_of_clients_keys_and_audit(database_url):
    env = external(database_url)
    created = run(
        "clients",
        "create",
        "--name",
        "gen",
        "--role",
        "generator",
        "--tenant",
        "acme",
        "--json",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert set(client) == {"client_id", "name", "roles", "tenant", "tier", "api_key"}
    assert (client["name"], client["roles"], client["tenant"], client["tier"]) == (
        "gen",
        ["generator"],
        "acme",
        "verified",
    )
    assert client["api_key"].startswith("rk_")
    rotated = run("keys", "rotate", "--json", env=env)
    assert rotated.returncode == 0, rotated.stderr
    rotation = json.loads(rotated.stdout)
    assert set(rotation) == {"activated_kid", "retiring_kid", "next_kid", "retire_after"}
    checkpoint = run("audit", "checkpoint", "--json", env=env)
    assert json.loads(checkpoint.stdout)["tree_size"] == 2
    verified = run("audit", "verify", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout) == {
        "ok": True,
        "size": 2,
        "first_bad_seq": None,
        "problem": None,
        "checkpoint_size": 2,
    }


# Commands that start (or reach) a database, each refusing bad settings before it does.
DATABASE_COMMANDS = [
    ("audit", "verify"),
    ("keys", "rotate"),
    ("clients", "create", "--name", "x", "--role", "uploader"),
    ("hashes", "create-list", "x", "--action", "block"),
    ("migrate",),
    ("serve",),
]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_a_bad_bootstrap_key_stops_every_command_before_the_database(command, tmp_path):
    data = tmp_path / "data"
    result = run(
        *command,
        env={"REGISTRY_DATA_DIR": str(data), "REGISTRY_BOOTSTRAP_ADMIN_KEY": "nonsense"},
    )
    assert result.returncode == 2
    assert "registry: configuration error: REGISTRY_BOOTSTRAP_ADMIN_KEY must look like" in (
        result.stderr
    )
    assert "nonsense" not in result.stderr
    assert result.stdout == ""
    # No embedded PostgreSQL was started and no development key was written.
    assert not data.exists()


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"REGISTRY_PORT": "abc"}, "REGISTRY_PORT"),
        ({"REGISTRY_CONSENT_SIGNER_ANCHORS": __file__}, "REGISTRY_CONSENT_SIGNER_ANCHORS"),
        ({"REGISTRY_TRUST_ANCHORS": __file__}, "REGISTRY_TRUST_ANCHORS"),
        ({"REGISTRY_WEBHOOK_HOSTS": "http://hooks.example/x"}, "REGISTRY_WEBHOOK_HOSTS"),
        (
            {
                "REGISTRY_CLASSIFIER_URL": "ftp://127.0.0.1/",
                "REGISTRY_CLASSIFIER_ALLOWED_HOSTS": "127.0.0.1",
            },
            "REGISTRY_CLASSIFIER_",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_settings_stop_a_command_before_the_database(env, setting, tmp_path):
    data = tmp_path / "data"
    result = run("audit", "verify", env={"REGISTRY_DATA_DIR": str(data), **env})
    assert result.returncode == 2
    assert result.stderr.startswith("registry: configuration error: ")
    assert setting in result.stderr
    assert not data.exists()


@pytest.fixture
def embedded_data_dir():
    # Under /tmp like conftest.py's server, not in pytest's basetemp: run as root, pgserver
    # opens every parent directory to its own user, and pytest makes its basetemp private.
    path = Path(tempfile.mkdtemp(prefix="registry-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_embedded_start_leaves_stderr_to_the_service(embedded_data_dir):
    result = run(
        "audit",
        "verify",
        env={"REGISTRY_DATA_DIR": str(embedded_data_dir)},
        # Unset, platformdirs warns that pgserver's lock falls back to /tmp.
        unset=("XDG_RUNTIME_DIR",),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "audit chain OK: 0 event(s), no checkpoint yet\n"
    assert (embedded_data_dir / "pg" / "PG_VERSION").is_file()
    assert "pgserver" not in result.stderr
    assert "XDG_RUNTIME_DIR" not in result.stderr
    # What is left is the service's own log (migrations, development-setup warnings).
    for line in result.stderr.splitlines():
        assert json.loads(line)["logger"].startswith("registry."), line


def test_a_failed_embedded_start_shows_pgserver_errors_not_a_traceback(embedded_data_dir):
    pgdata = embedded_data_dir / "pg"
    pgdata.mkdir()
    # Initialised, it claims, but without postgresql.conf: the server cannot start.
    (pgdata / "PG_VERSION").write_text("15\n")
    result = run(
        "audit",
        "verify",
        env={"REGISTRY_DATA_DIR": str(embedded_data_dir), "REGISTRY_LOG_JSON": "false"},
        unset=("XDG_RUNTIME_DIR",),
        timeout=120,
    )
    assert result.returncode == 2
    assert "ERROR pgserver Failed to start server" in result.stderr
    assert "could not access the server configuration file" in result.stderr
    assert (
        "registry: database error: the embedded PostgreSQL did not start; "
        f"its log is {pgdata / 'log'}"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert "INFO pgserver" not in result.stderr
    assert "XDG_RUNTIME_DIR" not in result.stderr
