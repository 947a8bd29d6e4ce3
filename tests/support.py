"""Helpers shared by tests that drive the service over HTTP."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PIL import Image

import keys
from registry.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ADMIN_KEY = "rk_" + "A" * 43
# The login role the service runs as in tests, a member of migration 0010's registry_service
# (tests/conftest.py makes it once per session).
SERVICE_ROLE = "registry_test_app"


def service_password(database_url: str) -> str:
    """The tests' service role's password on this server, derived from the admin's URL with
    the database left out: every test session against the server agrees on it, and nobody
    without the admin's URL knows it."""
    server = urlsplit(database_url)._replace(path="").geturl()
    return hashlib.sha256(b"registry test service role\0" + server.encode()).hexdigest()


def service_url(database_url: str) -> str:
    """``database_url`` (as the server's admin) as the tests' service role instead."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    login = f"{SERVICE_ROLE}:{service_password(database_url)}"
    return urlunsplit(parts._replace(netloc=f"{login}@{host}"))


def make_settings(database_url: str, data_dir: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "master_key": keys.MasterKey.generate().to_text(),
        "bootstrap_admin_key": ADMIN_KEY,
        "log_json": False,
        "checkpoint_interval": 3600.0,
        "key_refresh_interval": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"].endswith(code)
    assert body["title"]
    return body


def block_image(
    seed: int,
    *,
    size: tuple[int, int],
    grid: int = 6,
    fmt: str = "JPEG",
    quality: int | None = None,
) -> bytes:
    """A real image of ``grid`` x ``grid`` coloured blocks; content (and so its perceptual
    hash) differs per seed."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    pixels = image.load()
    assert pixels is not None
    blocks = [
        [tuple(rng.randrange(256) for _ in range(3)) for _ in range(grid)] for _ in range(grid)
    ]
    for x in range(size[0]):
        for y in range(size[1]):
            pixels[x, y] = blocks[x * grid // size[0]][y * grid // size[1]]
    out = io.BytesIO()
    if quality is None:
        image.save(out, fmt)
    else:
        image.save(out, fmt, quality=quality)
    return out.getvalue()


async def opened_decisions(database_url: str, master_key: str) -> list[Any]:
    """Every stored decision's case files (``registry.gate.vault.CaseFiles``), oldest first,
    opened as the service opens them: the request and evidence are sealed in the table."""
    from registry.consent.crypto import FieldCipher
    from registry.consent.records import DataKeys
    from registry.core import db
    from registry.gate.vault import DecisionVault

    vault = DecisionVault(DataKeys(FieldCipher(keys.MasterKey.from_text(master_key))))
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            ids = await conn.fetch("SELECT decision_id FROM moderation_decisions ORDER BY seq")
            return [await vault.case(conn, row["decision_id"]) for row in ids]
    finally:
        await pool.close()
