"""The real service and a real headless Chromium, for the browser tests.

The service is ``registry serve`` in a subprocess on a free port of 127.0.0.1, with its own
freshly migrated database; the browser is Debian's Chromium (``/usr/bin/chromium``) driven by
Playwright, started with the flags this machine needs (no sandbox as root, no background
networking: the network is closed and Chromium would otherwise keep trying to reach Google).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

import keys
from tests.support import ADMIN_KEY, service_url

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}
SHOTS = Path(
    os.environ.get("REGISTRY_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "registry-screenshots")
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return (
            f"Debian's chromium is not installed ({CHROMIUM} is missing); `make test` installs "
            "it with apt-get when run as root, or run `apt-get install chromium`"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _in_thread(coroutine_function: Any, *args: Any) -> Any:
    """Run a coroutine to completion on its own loop, away from the tests' loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_function(*args)).result()


async def _create_database(server_url: str, template: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()


async def _drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class Service:
    url: str
    database_url: str
    master_key: str
    log: Path


def start_service(
    server_url: str, template: str, data_dir: Path, *, extra_env: dict[str, str] | None = None
) -> tuple[Service, Any]:
    """``registry serve`` on a new database; returns the service and a function that stops it."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"registry_web_{uuid.uuid4().hex[:10]}"
    _in_thread(_create_database, server_url, template, name)
    database_url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    port = _free_port()
    master_key = keys.MasterKey.generate().to_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        {
            # As an operator runs it: the service as its own role, migrations as the owner.
            "REGISTRY_DATABASE_URL": service_url(database_url),
            "REGISTRY_DATABASE_OWNER_URL": database_url,
            "REGISTRY_DATA_DIR": str(data_dir),
            "REGISTRY_PORT": str(port),
            "REGISTRY_MASTER_KEY": master_key,
            "REGISTRY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "REGISTRY_LOG_JSON": "false",
            "REGISTRY_CHECKPOINT_INTERVAL": "1",
            **(extra_env or {}),
        }
    )
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the service did not start:\n" + log_path.read_text())
        time.sleep(0.2)

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _in_thread(_drop_database, server_url, name)

    return Service(url=url, database_url=database_url, master_key=master_key, log=log_path), stop


# What the region classifier below answers for every image: one box, no scores (so that the
# gate decides on the scores each test supplies), at a place inside any test picture.
REGION = {"label": "FACE_FEMALE", "confidence": 0.87, "box": [12, 16, 96, 72]}


class RegionClassifier:
    """A classifier service on 127.0.0.1 (the HTTP contract of ``moderation.classifiers``)
    that explains every image with :data:`REGION`."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        body = json.dumps({"scores": {}, "regions": [REGION], "model": "regions-1"}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                del args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/classify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def shot(page: Any, name: str) -> Path:
    """A full-page screenshot in REGISTRY_SCREENSHOT_DIR (default: /tmp/registry-screenshots)."""
    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the browser writes
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
