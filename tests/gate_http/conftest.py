"""Fixtures for the publish gate over HTTP: the consent world of the consent tests, real
consent tokens bound to reference photos, real images, a gate caller and row counts."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from registry.app import create_app
from tests.consent_http import conftest as consent_fixtures
from tests.moderation.support import encode_jpeg, make_image
from tests.support import make_settings

if TYPE_CHECKING:
    from tests.consent_http.conftest import World

PUBLISH_USES = ["reference.generate", "edit.transform", "publish.public"]
PERMITTED = ["reference.generate", "edit.transform", "publish.public", "likeness.stylize"]
PROHIBITED = ["content.explicit", "ai.training"]
CLEAN_SCORES = {
    "sexual_content": 0.01,
    "minor_presence": 0.01,
    "nonconsensual_transformation": 0.01,
}
REPO_ROOT = Path(__file__).resolve().parents[2]
# The consent tests' world (a template, an uploader, a generator, a publisher, a person's key).
world = consent_fixtures.world
TABLES = (
    "moderation_decisions",
    "moderation_decision_consents",
    "review_tickets",
    "audit_events",
    "hash_list_entries",
)


@dataclass
class Source:
    """A reference photo of a real person, with a consent granted to the generator."""

    consent_id: str
    asset_id: str
    sha256: str
    token: str
    jti: str

    def asset(self, **changes: Any) -> dict[str, Any]:
        value = {
            "type": "photo",
            "asset_id": self.asset_id,
            "sha256": self.sha256,
            "consent_token": self.token,
        }
        value.update(changes)
        return value


async def consented_source(
    world: World,
    *,
    uses: list[str] | None = None,
    permitted: list[str] | None = None,
    prohibited: list[str] | None = None,
    signer_role: str = "subject",
) -> Source:
    sha256 = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    consent = await world.consent(
        asset_hashes=[sha256],
        permitted_uses=permitted or PERMITTED,
        prohibited_uses=prohibited or PROHIBITED,
        signer_role=signer_role,
    )
    assert (await world.grant(consent["consent_id"])).status_code == 201
    issued = await world.token(consent["consent_id"], uses=uses or PUBLISH_USES)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return Source(
        consent_id=consent["consent_id"],
        asset_id=consent["assets"][0]["asset_id"],
        sha256=sha256,
        token=body["token"],
        jti=body["jti"],
    )


def output(seed: int = 1, size: tuple[int, int] = (640, 480)) -> bytes:
    """A generated output: a real JPEG without a manifest (it is signed after the gate)."""
    return encode_jpeg(make_image(seed, size))


def variant(data: bytes, change: str) -> bytes:
    """The image flipped, recoloured or cropped by a few percent, re-encoded."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if change == "flipped":
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif change == "recoloured":
        r, g, b = image.split()
        image = Image.merge("RGB", (r.point(lambda v: min(255, v + 25)), g, b))
    elif change == "cropped":
        width, height = image.size
        image = image.crop((width * 2 // 100, height * 2 // 100, width, height))
    else:
        raise AssertionError(change)
    return encode_jpeg(image)


def check_request(
    generation_id: str = "gen-1",
    *,
    sources: list[dict[str, Any]] | None = None,
    generator: str | None = None,
    scores: dict[str, Any] | None = CLEAN_SCORES,
    prompt: str = "put her in a sunny park, watercolour style",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "generation_id": generation_id,
        "prompt": prompt,
        "source_assets": sources or [],
        "user_id": "user-42",
        "metadata": {"model": "example-diffusion-2", "timestamp": "2026-03-01T12:00:00Z"},
    }
    if generator is not None:
        body["metadata"]["generator_client_id"] = generator
    if scores is not None:
        body["scores"] = scores
    body.update(extra)
    return body


async def post_check(
    http: Any, headers: dict[str, str], body: dict[str, Any], image: bytes | None
) -> Any:
    """POST /v1/moderation/check: multipart with the image, or JSON (image_url) without."""
    if image is None:
        return await http.post("/v1/moderation/check", json=body, headers=headers)
    return await http.post(
        "/v1/moderation/check",
        files={
            "request": (None, json.dumps(body), "application/json"),
            "image": ("output.jpg", image, "image/jpeg"),
        },
        headers=headers,
    )


@pytest.fixture
def gate(world):
    """Call the gate as the world's publisher, for the world's generator."""

    async def call(
        image: bytes | None,
        *,
        headers: dict[str, str] | None = None,
        http: Any = None,
        **request: Any,
    ) -> Any:
        request.setdefault("generator", world.generator.client_id)
        return await post_check(
            http or world.http,
            world.publisher.headers if headers is None else headers,
            check_request(**request),
            image,
        )

    return call


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - constants
            for table in TABLES
        }
    finally:
        await conn.close()


async def rows(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.fixture
def app_with(settings, tmp_path):
    """The service on this test's database with some settings changed."""

    def build(**overrides: Any) -> AsyncTestClient:
        changed = make_settings(
            settings.database_url,
            tmp_path / f"changed-{secrets.token_hex(4)}",
            master_key=settings.master_key,
            **overrides,
        )
        return AsyncTestClient(app=create_app(changed))

    return build


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, *args: Any) -> None:
        del args

    def _answer(self) -> None:
        self.server.requests.append(self.path)
        status, headers, body = self.server.routes.get(self.path, (404, {}, b""))
        if callable(body):
            body = body()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()


class LocalServer(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 answering fixed routes, recording every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.routes: dict[str, tuple[int, dict[str, str], Any]] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def local_server():
    server = LocalServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
