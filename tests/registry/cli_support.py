"""Running the `registry` command as a user would: a subprocess with only the given settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

import keys
from tests.support import service_url

REPO = Path(__file__).resolve().parents[2]


def run(
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 60,
):
    base = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k not in unset}
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


def external(database_url: str) -> dict[str, str]:
    """Settings for commands on this test's database, as an operator sets them up: the service
    as its own role, migrations as the admin (``database_url``); one master key for all."""
    return {
        "REGISTRY_DATABASE_URL": service_url(database_url),
        "REGISTRY_DATABASE_OWNER_URL": database_url,
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
    }


async def rows(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
