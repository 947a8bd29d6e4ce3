"""Issue 5 rows: the publish gate through a real server, next to the library floor.

A real registry process (uvicorn, embedded PostgreSQL) decides on a 0.3 MP and a 4 MP JPEG,
each request with two consent tokens (verified online: signature, audience, live status
from the database) and a protected hash list of 1,000,000 entries. The floor, measured in
the same run on the same bytes, is the library work the same decision cannot avoid: SHA-256,
Pillow decode (draft, as the gate does), imagehash pHash and its four flip/rotation
variants, pyjwt verifying both tokens, a c2pa-python read, and one numpy scan of the
1,000,000 hashes per variant. The import row puts ``registry hashes import`` (CSV parse,
COPY, merge into the unique index) next to a bare asyncpg COPY of the same rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import c2pa
import httpx
import imagehash
import jwt
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

import keys
from bench import fixtures
from bench.harness import REPO, Row, Server, Stats, database_urls, load, timed

ENTRIES = 1_000_000
CONCURRENCY = 4
RUNS = {"0.3 MP": ((640, 480), 300), "4 MP": ((2000, 2000), 60)}
USES = ["reference.generate", "edit.transform", "publish.public"]
TEXT = "I agree that my photo may be edited and published for the uses I select."
SCORES = {"sexual_content": 0.01, "minor_presence": 0.01}


def _write_list(path: Path, hashes: np.ndarray) -> None:
    with path.open("w") as out:
        out.write("hash,label,source\n")
        out.writelines(f"{int(h):016x},entry-{i},bench\n" for i, h in enumerate(hashes))


def _import(server: Server, path: Path) -> Stats:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "registry.cli", "hashes", "import", "bench-protected", str(path)],
        env={**server.env, "REGISTRY_LOG_LEVEL": "WARNING"},
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return Stats.of([time.perf_counter() - started])


async def _raw_copy(database_url: str, hashes: np.ndarray) -> Stats:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE raw_copy (hash bigint, label text, source text)")
        records = [
            (int(h) - (1 << 64) if int(h) >= 1 << 63 else int(h), f"entry-{i}", "bench")
            for i, h in enumerate(hashes)
        ]
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "raw_copy", records=records, columns=("hash", "label", "source")
        )
        return Stats.of([time.perf_counter() - started])
    finally:
        await conn.close()


class _Floor:
    """The library calls one gate decision needs, on the same bytes and tokens."""

    def __init__(
        self, tokens: list[str], key: keys.PublicKey, audience: str, hashes: np.ndarray
    ) -> None:
        self.tokens = tokens
        self.key = key
        self.audience = audience
        self.hashes = hashes
        self.scratch = np.empty(len(hashes), dtype=np.uint64)
        self.distances = np.empty(len(hashes), dtype=np.uint8)

    def decide(self, data: bytes) -> None:
        hashlib.sha256(data).hexdigest()
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (256, 256))
        image.load()
        small = image.convert("L").resize((64, 64), Image.Resampling.LANCZOS)
        queries = [imagehash.phash(image)] + [
            imagehash.phash(small.transpose(transpose))
            for transpose in (
                Image.Transpose.FLIP_LEFT_RIGHT,
                Image.Transpose.ROTATE_90,
                Image.Transpose.ROTATE_180,
                Image.Transpose.ROTATE_270,
            )
        ]
        for token in self.tokens:
            jwt.decode(token, self.key, algorithms=["EdDSA"], audience=self.audience)
        try:
            with c2pa.Reader("image/jpeg", io.BytesIO(data)) as reader:
                reader.json()
        except c2pa.C2paError:
            pass  # no manifest: the gate's usual case for a fresh output
        best = np.full(len(self.hashes), 255, dtype=np.uint8)
        for query in queries:
            value = np.uint64(int(str(query), 16))
            np.bitwise_xor(self.hashes, value, out=self.scratch)
            np.bitwise_count(self.scratch, out=self.distances)
            np.minimum(best, self.distances, out=best)
        np.flatnonzero(best <= 10)


async def _setup(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, dict, list]:
    async def client(role: str) -> tuple[str, dict[str, str]]:
        made = (
            await http.post(
                "/v1/admin/clients",
                json={"name": role, "roles": [role], "tenant": "bench"},
                headers=admin,
            )
        ).json()
        return made["client_id"], {"Authorization": f"Bearer {made['api_key']}"}

    _, uploader = await client("uploader")
    generator_id, generator = await client("generator")
    _, publisher = await client("publisher")
    await http.post(
        "/v1/consent-templates",
        json={"id": "bench-gate-v1", "title": "Bench", "text": TEXT, "uses": USES},
        headers=admin,
    )
    sources = []
    for _ in range(2):
        sha256 = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        form = fixtures.consent_form(
            Ed25519PrivateKey.generate(),
            asset_sha256=sha256,
            template_id="bench-gate-v1",
            template_text=TEXT,
            permitted_uses=USES,
        )
        consent = (await http.post("/v1/consents", json={"form": form}, headers=uploader)).json()
        await http.post(
            f"/v1/consents/{consent['consent_id']}/grants",
            json={"client_id": generator_id},
            headers=uploader,
        )
        token = (
            await http.post(
                "/v1/tokens",
                json={"consent_id": consent["consent_id"], "uses": USES, "ttl_seconds": 3600},
                headers=generator,
            )
        ).json()["token"]
        sources.append(
            {
                "type": "photo",
                "asset_id": consent["assets"][0]["asset_id"],
                "sha256": sha256,
                "consent_token": token,
            }
        )
    response = await http.post(
        "/v1/admin/hash-lists", json={"name": "bench-protected", "action": "block"}, headers=admin
    )
    response.raise_for_status()
    return generator_id, publisher, sources


async def _gate_rows(server: Server, hashes: np.ndarray, list_file: Path) -> list[Row]:
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        generator_id, publisher, sources = await _setup(http, admin)
        import_ours = await asyncio.to_thread(_import, server, list_file)
        ids = itertools.count()
        rows = []
        jwks = (await http.get("/.well-known/jwks.json")).json()
        tokens = [s["consent_token"] for s in sources]
        kid = jwt.get_unverified_header(tokens[0])["kid"]
        public = keys.load_public_jwk(next(k for k in jwks["keys"] if k["kid"] == kid))
        floor = _Floor(tokens, public, generator_id, hashes)
        for label, (size, count) in RUNS.items():
            image = fixtures.photo(size, seed=size[0])

            async def decide(image: bytes = image) -> None:
                body = {
                    "generation_id": f"bench-{next(ids)}",
                    "prompt": "the two of them in a sunny park, watercolour",
                    "source_assets": sources,
                    "user_id": "bench-user",
                    "metadata": {"model": "bench-model", "generator_client_id": generator_id},
                    "scores": SCORES,
                }
                response = await http.post(
                    "/v1/moderation/check",
                    files={
                        "request": (None, json.dumps(body), "application/json"),
                        "image": ("output.jpg", image, "image/jpeg"),
                    },
                    headers=publisher,
                )
                decision = response.json()
                if decision.get("safety_status") != "allowed":
                    raise RuntimeError(response.text)

            raw = timed(lambda image=image: floor.decide(image), count, warmup=3)
            # One at a time: latency next to the floor; then concurrent: throughput.
            for concurrency in (1, CONCURRENCY):
                ours = await load(decide, count, concurrency)
                rows.append(
                    Row(
                        f"POST /v1/moderation/check, {label}, 2 tokens, 1M list (c={concurrency})",
                        ours,
                        raw,
                        "sha256+decode+5 pHash+2 pyjwt+c2pa read+numpy scan",
                    )
                )
    import_raw = await _raw_copy(server.env["REGISTRY_DATABASE_URL"], hashes)
    rows.append(
        Row(
            "registry hashes import, 1,000,000 CSV lines",
            import_ours,
            import_raw,
            "asyncpg COPY of the same rows, no index",
        )
    )
    return rows


def run() -> list[Row]:
    hashes = np.random.default_rng(5).integers(0, 2**64, size=ENTRIES, dtype=np.uint64)
    [database_url] = database_urls(1)
    with tempfile.TemporaryDirectory() as tmp:
        list_file = Path(tmp) / "protected.csv"
        _write_list(list_file, hashes)
        env = {"REGISTRY_IMAGE_WORK_THREADS": str(max(2, os.cpu_count() or 2))}
        with Server(database_url, env=env) as server:
            return asyncio.run(_gate_rows(server, hashes, list_file))


if __name__ == "__main__":
    from bench.harness import print_table

    print_table("Publish gate (issue 5)", run())
