"""Issue 4 rows: C2PA verify and sign through the service, and lookup over 100,000 outputs.

Each row is set next to the raw library call on the same bytes, in the same run: c2pa-python
reading (with the same trust anchor) or signing (same certificate chain, same callback
signer, thumbnail off as in the service) the same file, and a bare numpy scan of the same
100,000 hashes. The service rows include HTTP, multipart parsing, Pillow decoding and
pHash, the database, and for sign the detached assertion, the record and its audit event.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import secrets

import asyncpg
import c2pa
import httpx
import numpy as np
from PIL import Image

from bench.harness import Row, Server, database_urls, timed, timed_async
from keys.c2pa_identity import generate_dev_identity
from registry.provenance import PhashIndex

N_SMALL = 60
N_LARGE = 20
N_LOOKUP = 300
OUTPUTS = 100_000
SIZES = {"0.3 MP": (640, 480), "4 MP": (2310, 1732)}
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _photo(size: tuple[int, int], seed: int) -> bytes:
    """A JPEG with smooth structure plus grain, so it compresses like a photo."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 4 * np.pi, width)
    y = np.linspace(0, 3 * np.pi, height)
    base = (np.sin(x)[None, :] + np.cos(y)[:, None]) * 60 + 128
    channels = [base + rng.normal(0, 12, (height, width)) + shift for shift in (0, 30, -30)]
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _raw_verify(data: bytes, anchor_pem: str) -> None:
    settings = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "trust": {"trust_anchors": anchor_pem},
    }
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(data), None, context) as reader,
    ):
        json.loads(reader.json())


class _RawSigner:
    """c2pa-python's Builder with our kind of manifest and a callback signer (no thumbnail)."""

    def __init__(self) -> None:
        self.identity = generate_dev_identity("Bench Raw Signer")

    def sign(self, data: bytes) -> bytes:
        manifest = {
            "claim_generator_info": [{"name": "bench", "version": "1"}],
            "title": "out.jpg",
            "format": "image/jpeg",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": TRAINED,
                                "softwareAgent": {"name": "bench-model"},
                            }
                        ]
                    },
                }
            ],
        }
        signer = c2pa.Signer.from_callback(
            self.identity.signer.sign, c2pa.C2paSigningAlg.ES256, self.identity.chain_pem, None
        )
        with c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}) as context:
            builder = c2pa.Builder(manifest, context)
            output = io.BytesIO()
            builder.sign(signer, "image/jpeg", io.BytesIO(data), output)
        signer.close()
        return output.getvalue()


async def _generator(client: httpx.AsyncClient, admin_key: str) -> dict[str, str]:
    response = await client.post(
        "/v1/admin/clients",
        json={"name": "bench generator", "roles": ["generator"], "tenant": "bench"},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


async def _c2pa_rows(server: Server) -> list[Row]:
    rows: list[Row] = []
    raw_signer = _RawSigner()
    counter = itertools.count()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        headers = await _generator(client, server.admin_key)
        anchor = (await client.get("/v1/keys/c2pa/anchor")).text

        async def sign(data: bytes) -> httpx.Response:
            metadata = json.dumps(
                {"generation_id": f"g{next(counter)}", "model": "bench-model", "consent_tokens": []}
            )
            response = await client.post(
                "/v1/provenance/sign",
                files={"file": ("o.jpg", data, "image/jpeg"), "metadata": (None, metadata)},
                headers=headers,
            )
            response.raise_for_status()
            return response

        for label, size in SIZES.items():
            n = N_SMALL if label == "0.3 MP" else N_LARGE
            photo = _photo(size, seed=len(rows))
            signed = (await sign(photo)).content

            async def verify(data: bytes = signed) -> None:
                response = await client.post(
                    "/v1/provenance/verify", files={"file": ("o.jpg", data, "image/jpeg")}
                )
                response.raise_for_status()

            ours_sign = await timed_async(lambda photo=photo: sign(photo), n, warmup=3)
            raw_sign = timed(lambda photo=photo: raw_signer.sign(photo), n, warmup=3)
            ours_verify = await timed_async(verify, n, warmup=3)
            raw_verify = timed(lambda signed=signed: _raw_verify(signed, anchor), n, warmup=3)
            kib = len(photo) // 1024
            rows += [
                Row(
                    f"POST /v1/provenance/sign, {label} JPEG ({kib} KiB)",
                    ours_sign,
                    raw_sign,
                    "c2pa Builder.sign, same file",
                ),
                Row(
                    f"POST /v1/provenance/verify, {label} signed JPEG",
                    ours_verify,
                    raw_verify,
                    "c2pa Reader + json, same file",
                ),
            ]
    return rows


async def _insert_outputs(database_url: str, count: int) -> np.ndarray:
    """``count`` recorded outputs with random pHashes, written with COPY; their hashes."""
    rng = np.random.default_rng(7)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=count, dtype=np.int64)
    conn = await asyncpg.connect(database_url)
    try:
        client_id = await conn.fetchval("SELECT client_id FROM api_clients LIMIT 1")
        records = [
            (
                f"out_bench{i:012d}",
                "bench",
                client_id,
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
    return hashes.view(np.uint64)


async def _lookup_row(server: Server, database_url: str) -> list[Row]:
    hashes = await _insert_outputs(database_url, OUTPUTS)
    probe = _photo(SIZES["0.3 MP"], seed=99)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def lookup() -> None:
            response = await client.post(
                "/v1/provenance/lookup", files={"file": ("q.jpg", probe, "image/jpeg")}
            )
            response.raise_for_status()

        ours = await timed_async(lookup, N_LOOKUP, warmup=5)
    query = np.uint64(0x0123456789ABCDEF)

    def scan() -> None:
        distances = np.bitwise_count(hashes ^ query)
        np.flatnonzero(distances <= 8)

    raw = timed(scan, N_LOOKUP)
    index = PhashIndex()
    conn = await asyncpg.connect(database_url)
    try:
        await index.refresh(conn)
    finally:
        await conn.close()
    nearest = timed(lambda: index.nearest(int(query), max_distance=8, limit=20), N_LOOKUP)
    return [
        Row(
            f"POST /v1/provenance/lookup, {OUTPUTS:,} outputs (0.3 MP probe)",
            ours,
            raw,
            f"numpy bitwise_count scan of {OUTPUTS:,}",
        ),
        Row(
            f"PhashIndex.nearest over {OUTPUTS:,} outputs",
            nearest,
            raw,
            f"numpy bitwise_count scan of {OUTPUTS:,}",
        ),
    ]


def run() -> list[Row]:
    c2pa_db, lookup_db = database_urls(2)
    with Server(c2pa_db) as server:
        rows = asyncio.run(_c2pa_rows(server))
    with Server(lookup_db) as server:
        rows += asyncio.run(_lookup_row(server, lookup_db))
    return rows
