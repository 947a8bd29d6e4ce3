"""Helpers shared by tests that drive the service over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keys
from registry.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ADMIN_KEY = "rk_" + "A" * 43


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
