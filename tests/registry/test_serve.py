"""`registry serve` as an operator runs it: embedded PostgreSQL, real HTTP, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg

import keys
from registry.core import db

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
        return response.status, response.read()


async def _roles(pgdata: Path) -> tuple[set[str], set[str]]:
    """Who the service's connections are, and who owns its tables, asked as the superuser."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    assert info is not None
    conn = await asyncpg.connect(info.get_uri())
    try:
        users = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        owners = await conn.fetch(
            "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        )
    finally:
        await conn.close()
    return {r["usename"] for r in users}, {r["owner"] for r in owners}


def test_serve_on_embedded_postgres_then_sigterm_stops_everything():
    data_dir = Path(tempfile.mkdtemp(prefix="registry-serve-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update({"REGISTRY_DATA_DIR": str(data_dir), "REGISTRY_PORT": str(port)})
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/.well-known/jwks.json")
                break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "service did not come up"
                time.sleep(0.3)
        assert status == 200
        jwks = json.loads(body)
        assert {k["kid"] for k in jwks["keys"]} == {keys.thumbprint(k) for k in jwks["keys"]}
        postmaster = data_dir / "pg" / "postmaster.pid"
        assert postmaster.exists()
        # Migrated as the owner role the first start made; serving as the service role.
        assert asyncio.run(_roles(data_dir / "pg")) == ({db.EMBEDDED_SERVICE}, {db.EMBEDDED_OWNER})
        # Development master key: generated into the data dir, readable by the owner only.
        assert (data_dir / "master.key").stat().st_mode & 0o077 == 0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert "development setup" in log_path.read_text()
        # PostgreSQL removes postmaster.pid when it has shut down.
        deadline = time.monotonic() + 20
        while postmaster.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmaster.exists(), "embedded PostgreSQL still running after SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
