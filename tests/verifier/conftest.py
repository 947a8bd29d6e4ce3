"""Fixtures for the verifier tests: real identities, real images, real SDK calls.

Tests (unlike the library) may import ``c2pa``: they use it to build files our code must
handle (remote-only manifests, hostile manifests) and to check our output independently.
"""

from __future__ import annotations

import http.server
import io
import threading
from pathlib import Path

import c2pa
import pytest
from PIL import Image

from keys.c2pa_identity import generate_dev_identity
from verifier import ConsentRef, DecisionRef, GenerationFacts, IngredientRef, TrustSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "c2pa"
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


@pytest.fixture(scope="session")
def identity():
    return generate_dev_identity("Registry Test Signer")


@pytest.fixture(scope="session")
def stranger_identity():
    """A well-formed identity whose root no test configures as an anchor."""
    return generate_dev_identity("Stranger Signer", organization="Someone Else")


@pytest.fixture(scope="session")
def trust(identity):
    return TrustSettings.from_pem(identity.anchor_pem)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def make_image():
    def make(media_type="image/jpeg", size=(64, 48), color=(200, 40, 40)):
        image = Image.new("RGB", size, color)
        # Structure, so perceptual hashes of different images differ.
        for x in range(size[0]):
            for y in range(size[1] // 2):
                if (x // 8 + y // 8) % 2:
                    image.putpixel((x, y), (color[2], color[0], color[1]))
        buffer = io.BytesIO()
        image.save(buffer, PILLOW_FORMATS[media_type])
        return buffer.getvalue()

    return make


@pytest.fixture(scope="session")
def facts():
    return GenerationFacts(
        generation_id="gen-0001",
        model="example-diffusion-2",
        ingredients=(
            IngredientRef(
                title="reference.jpg",
                consent_id="cns_1",
                asset_id="ast_1",
                status_list_uri="https://registry.example/status/1",
            ),
        ),
        consent_refs=(
            ConsentRef(
                jti="tok-1", status_list_uri="https://registry.example/status/1", status_idx=7
            ),
        ),
        decision=DecisionRef(id="dec-9", outcome="allowed", policy_version="2024-06-01"),
    )


@pytest.fixture(scope="session")
def raw_sign():
    """Sign an arbitrary manifest with the SDK directly, with an identity's key as callback."""

    def sign(data, media_type, manifest, identity, *, remote_url=None, embed=True, thumbnail=False):
        signer = c2pa.Signer.from_callback(
            identity.signer.sign, c2pa.C2paSigningAlg.ES256, identity.chain_pem, None
        )
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": thumbnail}}})
        builder = c2pa.Builder(manifest, context)
        if not embed:
            builder.set_no_embed()
        if remote_url is not None:
            builder.set_remote_url(remote_url)
        output = io.BytesIO()
        manifest_bytes = builder.sign(signer, media_type, io.BytesIO(data), output)
        signer.close()
        context.close()
        return output.getvalue(), manifest_bytes

    return sign


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.routes: dict[str, bytes] = {}
        self.errors: dict[str, int] = {}
        """Paths answered with this HTTP status and no body."""
        self.redirects: dict[str, str] = {}
        """Paths answered with a 302 to this location."""
        self.hanging: set[str] = set()
        """Paths never answered: the connection is held until the test ends."""
        self.released = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path in self.server.hanging:
            self.server.released.wait(60)
            return
        if self.path in self.server.errors:
            self._empty(self.server.errors[self.path])
            return
        if self.path in self.server.redirects:
            self._empty(302, Location=self.server.redirects[self.path])
            return
        body = self.server.routes.get(self.path)
        if body is None:
            self._empty(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 that records every request path it receives; it can
    also answer an error status, redirect, or hold a request without answering."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()
    thread.join()
