"""The client tests' parts: the real service as `registry serve`, callers made through its admin
API, real images, and small real socket servers that answer what a broken network or proxy
would (an HTML 502, a 503 with Retry-After, a hang-up, silence) and count what reaches them.

Everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from PIL import Image, ImageFilter, ImageOps

from tests.faults.support import Service, free_port, service_env
from tests.moderation.support import encode_jpeg, make_image
from tests.support import ADMIN_KEY, bearer, service_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TEMPLATE_ID = "likeness-v1"
TEMPLATE_TEXT = "I agree that my photo may be used for the uses I select until I withdraw."
TEMPLATE_USES = [
    "reference.generate",
    "likeness.stylize",
    "publish.public",
    "content.suggestive",
    "content.explicit",
    "ai.training",
]
PERMITTED = ["reference.generate", "likeness.stylize", "publish.public"]
PROHIBITED = ["content.suggestive", "content.explicit", "ai.training"]
TOKEN_USES = ["reference.generate", "publish.public"]
# The shipped policy needs both scores for every image; these are far below every threshold.
CLEAN_SCORES = {"sexual_content": 0.02, "minor_presence": 0.0, "nonconsensual_transformation": 0.01}
MODEL = "example-diffusion-2"
# A PDQ hash as an exchange hands it out (README, hash lists).
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
DEADLINE_SECONDS = 10.0


# The service.


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


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


@contextlib.contextmanager
def registry_service(server_url: str, template: str, data_dir: Path) -> Iterator[Service]:
    """`registry serve` on a fresh copy of the migrated template, as an operator runs it (the
    service as its own role, migrations as the owner), until the block ends."""
    name = f"registry_client_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(server_url, template, name))
    owner_url = _with_database(server_url, name)
    env = service_env(
        service_url(owner_url),
        data_dir,
        free_port(),
        database_owner_url=owner_url,
        # The async flow's gate fetches its image from a local server (image_url).
        image_fetch_allowed_hosts="127.0.0.1",
        log_level="WARNING",
    )
    service = Service(env, data_dir / "serve.log")
    try:
        service.wait_ready()
        _admin(service.base_url, "/v1/consent-templates", TEMPLATE_BODY)
        yield service
    finally:
        try:
            service.stop()
        finally:
            asyncio.run(_drop_database(server_url, name))


TEMPLATE_BODY = {
    "id": TEMPLATE_ID,
    "title": "Reference photos for image generation",
    "text": TEMPLATE_TEXT,
    "uses": TEMPLATE_USES,
}


def _admin(base_url: str, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """An admin request with plain httpx: set-up outside the client under test."""
    response = httpx.post(
        base_url + path,
        json=body,
        headers=bearer(ADMIN_KEY),
        timeout=DEADLINE_SECONDS,
        **kwargs,
    )
    assert response.status_code in {200, 201}, response.text
    return response.json()


@dataclass
class Callers:
    """One uploader, generator and publisher, each in a tenant of its own making (the
    generator and the publisher share one, as README's walkthrough sets them up)."""

    base_url: str
    uploader: str
    generator: str
    generator_id: str
    publisher: str
    publisher_id: str
    tenant: str = field(default="")


def make_callers(base_url: str) -> Callers:
    suffix = uuid.uuid4().hex[:8]

    def client(role: str, tenant: str) -> dict[str, Any]:
        body = {"name": f"{role} {suffix}", "roles": [role], "tenant": tenant}
        created: dict[str, Any] = _admin(base_url, "/v1/admin/clients", body)
        return created

    uploader = client("uploader", f"photoapp-{suffix}")
    generator = client("generator", f"studio-{suffix}")
    publisher = client("publisher", f"studio-{suffix}")
    return Callers(
        base_url=base_url,
        uploader=uploader["api_key"],
        generator=generator["api_key"],
        generator_id=generator["client_id"],
        publisher=publisher["api_key"],
        publisher_id=publisher["client_id"],
        tenant=f"studio-{suffix}",
    )


def protect_hash(base_url: str, list_name: str, label: str) -> None:
    """An admin's PDQ hash list holding ``PDQ`` with ``label``, as README's exchange upload."""
    _admin(
        base_url,
        "/v1/admin/hash-lists",
        {"name": list_name, "signal": "pdq", "action": "block"},
    )
    csv = f"signal_type,signal_str,collab,category,tags\npdq,{PDQ},hotline,POSITIVE_CLASS,{label}\n"
    _admin(
        base_url,
        f"/v1/admin/hash-lists/{list_name}/entries",
        files={"file": ("dataset.csv", csv.encode(), "text/csv")},
    )


# Images.


def photo(seed: int) -> bytes:
    """A stand-in reference photo (a real JPEG; its content differs per seed)."""
    return encode_jpeg(make_image(seed).filter(ImageFilter.GaussianBlur(2)))


def generated_from(reference: bytes) -> bytes:
    """An output made from the reference photo, as README's walkthrough makes one: it still
    looks like the photo, which the consent token covers."""
    image = Image.open(io.BytesIO(reference))
    out = io.BytesIO()
    ImageOps.posterize(image, 3).filter(ImageFilter.SMOOTH_MORE).save(out, "JPEG", quality=90)
    return out.getvalue()


def reencoded(data: bytes) -> bytes:
    """The same pixels without any metadata: a copy whose manifest was stripped."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token with these claims and no valid signature (the client reads its exp
    without verifying; the service would refuse it)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return part({"alg": "EdDSA", "typ": "consent+jwt"}) + "." + part(claims) + ".c2lnbmF0dXJl"


def expired_token(seconds_ago: float = 60) -> str:
    now = time.time()
    return unsigned_jwt(
        {"jti": "tok_expired", "iat": now - 900, "nbf": now - 900, "exp": now - seconds_ago}
    )


# Local servers that are not the registry.


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        del args

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        reply = self.server.record(self.command, self.path, dict(self.headers.items()))
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()


class ScriptedServer(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that answers its script in order (the last reply
    again once the script is used up) and records every request it received."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *replies: Reply) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.replies = list(replies)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append((method, path, headers))
            index = min(len(self.requests), len(self.replies)) - 1
            return self.replies[index]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HangUpHandler(socketserver.BaseRequestHandler):
    server: HangUpServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
        self.request.settimeout(DEADLINE_SECONDS)
        with contextlib.suppress(OSError):
            self.request.recv(65536)
        # Closed without a byte of answer: "Server disconnected without sending a response".
        self.request.close()


class HangUpServer(socketserver.ThreadingTCPServer):
    """A TCP server on 127.0.0.1 that accepts, reads the request and hangs up, counting the
    connections it accepted."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HangUpHandler)
        self.connections = 0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=DEADLINE_SECONDS)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
