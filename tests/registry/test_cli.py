"""The `registry` command, run as a user would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg

import keys
from tests.support import ADMIN_KEY

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    base = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


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
