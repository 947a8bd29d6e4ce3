"""What the HTTP rows share: one PostgreSQL, the service, its floor, clients, tokens, bodies.

The service is ``registry serve`` on a fresh database of an embedded PostgreSQL (pgserver),
its admin key from REGISTRY_BOOTSTRAP_ADMIN_KEY; clients, a consent template, two consents
with their tokens and the protected hash list are made through its API and CLI, as an
operator would. The floor (``bench.floor_server``) starts next to it on the same database,
serving the service's JWKS bytes and signing with the same C2PA identity (files both read).
Larger inputs (the 1,000,000-entry hash list, 100,000 signed outputs) are made on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import keys
from bench import fixtures
from bench.floor_server import READY
from bench.harness import (
    IMAGE_THREADS,
    ISSUER,
    REPO,
    Postgres,
    Process,
    Service,
    Stats,
    clean_env,
    free_port,
)
from bench.load import Request, Target
from keys.c2pa_identity import generate_dev_identity

if TYPE_CHECKING:
    from collections.abc import Iterator

USES = ["reference.generate", "edit.transform", "publish.public"]
TEXT = "I agree that my photo may be edited and published for the uses I select."
PROTECTED_ENTRIES = 1_000_000
OUTPUTS = 100_000
UNIQUE = "@@BENCH-UNIQUE@@"
"""The marker wrk replaces with a fresh id in each request (generation ids)."""
GATE_SCORES = {"sexual_content": 0.01, "minor_presence": 0.01}
GATE_PROMPT = "the two of them in a sunny park, watercolour"


class FloorProcess(Process):
    """``python -m bench.floor_server``: the HTTP floor, on the service's uvicorn settings."""

    def __init__(self, config: dict[str, Any], directory: Path) -> None:
        port = free_port()
        path = directory / f"floor-{port}.json"
        path.write_text(json.dumps({**config, "port": port}))
        workers = config.get("workers", 1)
        command = [sys.executable, "-m", "bench.floor_server", str(path)]
        super().__init__(
            f"floor-{workers}w", command, clean_env(), port, ready=READY, workers=workers
        )


class World:
    """The service and its floor on one database, the inputs they share, made on first use."""

    def __init__(self, postgres: Postgres) -> None:
        self.postgres = postgres
        self.dir = Path(tempfile.mkdtemp(prefix="bench-world-"))
        self.stack = contextlib.ExitStack()
        self.database_url = postgres.database()
        self.master_key = keys.MasterKey.generate().to_text()
        self.admin_key = "rk_" + secrets.token_urlsafe(32)[:43]
        self.c2pa_env = self._c2pa_files()
        self.bodies = self.dir / "bodies"
        self.bodies.mkdir()
        self._imported: Stats | None = None
        self._outputs = False

    # Start and stop.

    def __enter__(self) -> Self:
        try:
            self.service = self.stack.enter_context(self.new_service(workers=1))
            self._setup()
            self.floor = self.stack.enter_context(self.new_floor(workers=1))
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def new_service(self, *, workers: int) -> Service:
        return Service(
            self.database_url,
            master_key=self.master_key,
            admin_key=self.admin_key,
            c2pa=self.c2pa_env,
            workers=workers,
        )

    def new_floor(self, *, workers: int) -> FloorProcess:
        config = {
            "database_url": self.database_url,
            "issuer": ISSUER,
            "jwks_path": str(self.jwks_path),
            "c2pa_chain": self.c2pa_env["REGISTRY_C2PA_CERT_CHAIN"],
            "c2pa_key": self.c2pa_env["REGISTRY_C2PA_PRIVATE_KEY"],
            "c2pa_anchor": self.c2pa_env["REGISTRY_C2PA_ANCHOR"],
            "hashes_path": str(self.protected_npy),
            "image_threads": IMAGE_THREADS,
            "workers": workers,
        }
        return FloorProcess(config, self.dir)

    @contextlib.contextmanager
    def scaled(self) -> Iterator[tuple[Service, FloorProcess]]:
        """A second service and a second floor with 2 uvicorn workers, same database."""
        with self.new_service(workers=2) as service, self.new_floor(workers=2) as floor:
            yield service, floor

    def _c2pa_files(self) -> dict[str, str]:
        identity = generate_dev_identity("Bench Registry")
        assert isinstance(identity.signer, keys.LocalSigner)
        key = serialization.load_der_private_key(identity.signer.private_pkcs8_der(), None)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files = {"chain.pem": identity.chain_pem.encode(), "key.pem": pem}
        files["anchor.pem"] = (identity.anchor_pem or "").encode()
        for name, data in files.items():
            (self.dir / name).write_bytes(data)
        return {
            "REGISTRY_C2PA_CERT_CHAIN": str(self.dir / "chain.pem"),
            "REGISTRY_C2PA_PRIVATE_KEY": str(self.dir / "key.pem"),
            "REGISTRY_C2PA_ANCHOR": str(self.dir / "anchor.pem"),
        }

    # Clients, consents and tokens, through the service's API.

    def _setup(self) -> None:
        admin = {"Authorization": f"Bearer {self.admin_key}"}
        with httpx.Client(base_url=self.service.url, timeout=60) as http:

            def client(role: str) -> tuple[str, str]:
                response = http.post(
                    "/v1/admin/clients",
                    json={"name": f"bench {role}", "roles": [role], "tenant": "bench"},
                    headers=admin,
                )
                response.raise_for_status()
                made = response.json()
                return made["client_id"], made["api_key"]

            _, self.uploader_key = client("uploader")
            self.generator_id, self.generator_key = client("generator")
            _, self.publisher_key = client("publisher")
            http.post(
                "/v1/consent-templates",
                json={"id": "bench-v1", "title": "Bench", "text": TEXT, "uses": USES},
                headers=admin,
            ).raise_for_status()
            self.sources = [self._source(http, self.uploader_key) for _ in range(2)]
            self.jwks_path = self.dir / "jwks.json"
            self.jwks_path.write_bytes(http.get("/.well-known/jwks.json").content)
            http.post(
                "/v1/admin/hash-lists",
                json={"name": "bench-protected", "action": "block"},
                headers=admin,
            ).raise_for_status()
        self.protected_npy = self.dir / "protected.npy"

    def _source(self, http: httpx.Client, uploader: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {uploader}"}
        sha256 = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        form = fixtures.consent_form(
            Ed25519PrivateKey.generate(),
            asset_sha256=sha256,
            template_id="bench-v1",
            template_text=TEXT,
            permitted_uses=USES,
        )
        response = http.post("/v1/consents", json={"form": form}, headers=auth)
        response.raise_for_status()
        consent = response.json()
        http.post(
            f"/v1/consents/{consent['consent_id']}/grants",
            json={"client_id": self.generator_id},
            headers=auth,
        ).raise_for_status()
        response = http.post(
            "/v1/tokens",
            json={"consent_id": consent["consent_id"], "uses": USES, "ttl_seconds": 3600},
            headers={"Authorization": f"Bearer {self.generator_key}"},
        )
        response.raise_for_status()
        return {
            "type": "photo",
            "asset_id": consent["assets"][0]["asset_id"],
            "sha256": sha256,
            "consent_token": response.json()["token"],
        }

    # Requests, each sent to the service and to the floor alike.

    def both(self, request: Request) -> tuple[Target, Target]:
        return (
            Target("service", self.service.url, request),
            Target("floor", self.floor.url, request),
        )

    def body(self, name: str, data: bytes) -> Path:
        path = self.bodies / name
        path.write_bytes(data)
        return path

    def verify_token_request(self) -> Request:
        token = self.sources[0]["consent_token"]
        body = json.dumps({"token": token, "use": "reference.generate"}).encode()
        return Request(
            "/v1/tokens/verify",
            method="POST",
            body=self.body("verify-token.json", body),
            content_type="application/json",
            api_key=self.generator_key,
        )

    def consent_request(self, photo: bytes) -> Request:
        """A consent form and its photo; each request a fresh form (forms are single-use)."""
        person = Ed25519PrivateKey.generate()
        sha256 = hashlib.sha256(photo).hexdigest()

        def forms(count: int) -> list[str]:
            return [
                fixtures.consent_form(
                    person,
                    asset_sha256=sha256,
                    template_id="bench-v1",
                    template_text=TEXT,
                    permitted_uses=["reference.generate"],
                )
                for _ in range(count)
            ]

        content_type, body = fixtures.multipart(
            [
                ("form", None, None, UNIQUE.encode()),
                ("assets", "photo.jpg", "image/jpeg", photo),
            ]
        )
        return Request(
            "/v1/consents",
            method="POST",
            body=self.body("consent.bin", body),
            content_type=content_type,
            api_key=self.uploader_key,
            unique=UNIQUE,
            values=forms,
        )

    def sign_request(self, label: str, image: bytes) -> Request:
        metadata = json.dumps(
            {"generation_id": UNIQUE, "model": "bench-model", "consent_tokens": []}
        ).encode()
        content_type, body = fixtures.multipart(
            [
                ("file", "output.jpg", "image/jpeg", image),
                ("metadata", None, "application/json", metadata),
            ]
        )
        return Request(
            "/v1/provenance/sign",
            method="POST",
            body=self.body(f"sign-{label}.bin", body),
            content_type=content_type,
            api_key=self.generator_key,
            unique=UNIQUE,
        )

    def file_request(self, path: str, label: str, image: bytes) -> Request:
        content_type, body = fixtures.multipart([("file", "image.jpg", "image/jpeg", image)])
        return Request(
            path,
            method="POST",
            body=self.body(f"{path.rsplit('/', 1)[1]}-{label}.bin", body),
            content_type=content_type,
        )

    def gate_request(self, label: str, image: bytes) -> Request:
        decision = json.dumps(
            {
                "generation_id": UNIQUE,
                "prompt": GATE_PROMPT,
                "source_assets": self.sources,
                "user_id": "bench-user",
                "metadata": {"model": "bench-model", "generator_client_id": self.generator_id},
                "scores": GATE_SCORES,
            }
        ).encode()
        content_type, body = fixtures.multipart(
            [
                ("request", None, "application/json", decision),
                ("image", "output.jpg", "image/jpeg", image),
            ]
        )
        return Request(
            "/v1/moderation/check",
            method="POST",
            body=self.body(f"gate-{label}.bin", body),
            content_type=content_type,
            api_key=self.publisher_key,
            unique=UNIQUE,
        )

    # Large inputs, made once when a row needs them.

    def import_protected(self) -> Stats:
        """The 1,000,000-entry list, imported with ``registry hashes import`` (timed)."""
        if self._imported is None:
            hashes = protected_hashes()
            np.save(self.protected_npy, hashes)
            csv = self.dir / "protected.csv"
            with csv.open("w") as out:
                out.write("hash,label,source\n")
                out.writelines(f"{int(h):016x},entry-{i},bench\n" for i, h in enumerate(hashes))
            started = time.perf_counter()
            done = subprocess.run(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "registry.cli", "hashes", "import", "bench-protected", csv],
                env={**self.service.env, "REGISTRY_LOG_LEVEL": "WARNING"},
                cwd=REPO,
                check=False,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            self._imported = Stats.of([time.perf_counter() - started])
        return self._imported

    def insert_outputs(self) -> np.ndarray:
        """OUTPUTS signed-output rows with random pHashes (COPY); their hashes."""
        hashes = np.random.default_rng(7).integers(-(2**63), 2**63 - 1, OUTPUTS, dtype=np.int64)
        if not self._outputs:
            asyncio.run(self._copy_outputs(hashes))
            self._outputs = True
        return hashes.view(np.uint64)

    async def _copy_outputs(self, hashes: np.ndarray) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.database_url)
        try:
            records = [
                (
                    f"out_bench{i:012d}",
                    "bench",
                    self.generator_id,
                    f"bench-{i}",
                    "bench-model",
                    "image/jpeg",
                    640,
                    480,
                    secrets.token_hex(32),
                    int(value),
                    "a.b.c",
                )
                for i, value in enumerate(hashes)
            ]
            await conn.copy_records_to_table(
                "signed_outputs",
                records=records,
                columns=[
                    "output_id",
                    "tenant",
                    "client_id",
                    "generation_id",
                    "model",
                    "media_type",
                    "width",
                    "height",
                    "sha256",
                    "phash",
                    "assertion",
                ],
            )
        finally:
            await conn.close()


def protected_hashes() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 2**64, size=PROTECTED_ENTRIES, dtype=np.uint64)
