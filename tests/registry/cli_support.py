"""Running the `registry` command as a user would: a subprocess with only the given settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

import keys

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
    """Settings for commands on this test's database; one master key for all of them."""
    return {
        "REGISTRY_DATABASE_URL": database_url,
        "REGISTRY_MASTER_KEY": keys.MasterKey.generate().to_text(),
    }


async def rows(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
