"""Issue 4 rows: C2PA sign and verify, and lookup over 100,000 outputs.

Over HTTP each row is set against the floor (``bench.floor_server``): the same multipart
body, the same C2PA identity and trust anchor. In-process, the service's image functions
(``registry.provenance.images``: checks, decode, hashes, C2PA) are set against the floor's
library calls on the same bytes (``ImageWork``: decode, pHash, SHA-256, c2pa-python), and
``PhashIndex.nearest`` against a bare numpy scan of the same hashes.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import keys
from bench import fixtures
from bench.context import HttpTable, InProcessTable
from bench.floor_server import ImageWork
from bench.harness import Row, timed
from bench.load import HttpRow, check, compare, probe
from bench.world import OUTPUTS
from keys.c2pa_identity import generate_dev_identity
from registry.provenance import PhashIndex
from registry.provenance.images import Upload, sign_image, verify_image
from verifier import GenerationFacts, ImageLimits, TrustSettings

if TYPE_CHECKING:
    from bench.context import Bench, Table
    from bench.world import World

SIZES = {"0.3 MP": (640, 480), "4 MP": (2310, 1732)}
N_IMAGE = {"0.3 MP": 40, "4 MP": 10}
N_LOOKUP = 300


def _is_jpeg(body: bytes) -> bool:
    return body.startswith(b"\xff\xd8")


def _c2pa_rows(bench: Bench, world: World) -> list[HttpRow]:
    rows = []
    for label, size in SIZES.items():
        photo = fixtures.smooth_photo(size, seed=size[0])
        kib = len(photo) // 1024
        sign = world.sign_request(label, photo)
        for target in world.both(sign):
            check(target.base_url, sign, _is_jpeg)
        rows.append(
            compare(
                f"POST /v1/provenance/sign, {label} JPEG ({kib} KiB)",
                "key lookup; sha256 + Pillow decode (draft) + pHash + c2pa Builder.sign "
                "(same identity, callback signer, no thumbnail) + sha256 of the output; "
                "the detached EdDSA assertion; one INSERT",
                *world.both(sign),
                bench.settings,
            )
        )
        status, signed = probe(world.service.url, sign)
        if status != 200 or not _is_jpeg(signed):
            msg = f"signing the verify input failed: {status}"
            raise RuntimeError(msg)
        verify = world.file_request("/v1/provenance/verify", label, signed)
        check(world.service.url, verify, lambda body: json.loads(body)["state"] == "trusted")
        check(world.floor.url, verify, lambda body: json.loads(body)["state"] == "Trusted")
        rows.append(
            compare(
                f"POST /v1/provenance/verify, {label} signed JPEG",
                "sha256 + Pillow decode (draft) + pHash + c2pa Reader (same trust anchor) "
                "+ json; one SELECT of the output by sha256",
                *world.both(verify),
                bench.settings,
            )
        )
    return rows


def _lookup_row(bench: Bench, world: World) -> HttpRow:
    world.insert_outputs()
    probe_image = fixtures.smooth_photo(SIZES["0.3 MP"], seed=99)
    lookup = world.file_request("/v1/provenance/lookup", "0.3 MP", probe_image)
    for target in world.both(lookup):
        check(target.base_url, lookup, lambda body: "matches" in json.loads(body))
    return compare(
        f"POST /v1/provenance/lookup, {OUTPUTS:,} outputs (0.3 MP probe)",
        f"sha256 + Pillow decode (draft) + pHash; numpy scan of the {OUTPUTS:,} pHashes "
        "(loaded once); one SELECT of the matches",
        *world.both(lookup),
        bench.settings,
    )


def _image_rows() -> list[Row]:
    """Our image functions against the floor's library calls, one call at a time."""
    identity = generate_dev_identity("Bench In-process")
    assert isinstance(identity.signer, keys.LocalSigner)
    key = serialization.load_der_private_key(identity.signer.private_pkcs8_der(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    anchor = identity.anchor_pem or ""
    floor = ImageWork(chain_pem=identity.chain_pem, key=key, anchor_pem=anchor)
    trust = TrustSettings.from_pem(anchor)
    limits = ImageLimits(max_bytes=26_214_400, max_pixels=40_000_000)
    facts = GenerationFacts(generation_id="bench-1", model="bench-model")
    rows = []
    for label, size in SIZES.items():
        photo = fixtures.smooth_photo(size, seed=size[0])
        upload = Upload(data=photo, content_type="image/jpeg", filename="o.jpg")
        signed = Upload(data=floor.sign_work(photo, "bench-1")[0], content_type="image/jpeg")
        n = N_IMAGE[label]
        rows += [
            Row(
                f"provenance sign_image, {label}",
                timed(
                    functools.partial(sign_image, upload, limits, facts, identity, thumbnail=False),
                    n,
                    3,
                ),
                timed(functools.partial(floor.sign_work, photo, "bench-1"), n, 3),
                "sha256 + decode + pHash + c2pa sign + sha256",
            ),
            Row(
                f"provenance verify_image, {label}",
                timed(functools.partial(verify_image, signed, limits, trust), n, 3),
                timed(functools.partial(floor.read_work, signed.data), n, 3),
                "sha256 + decode + pHash + c2pa read + json",
            ),
        ]
    return rows


async def _index_row(database_url: str, hashes: np.ndarray) -> Row:
    query = np.uint64(0x0123456789ABCDEF)

    def scan() -> None:
        distances = np.bitwise_count(hashes ^ query)
        np.flatnonzero(distances <= 8)

    index = PhashIndex()
    conn = await asyncpg.connect(database_url)
    try:
        await index.refresh(conn)
    finally:
        await conn.close()
    return Row(
        f"PhashIndex.nearest over {OUTPUTS:,} outputs",
        timed(lambda: index.nearest(int(query), max_distance=8, limit=20), N_LOOKUP),
        timed(scan, N_LOOKUP),
        f"numpy bitwise_count scan of {OUTPUTS:,}",
    )


def run(bench: Bench) -> list[Table]:
    tables: list[Table] = []
    rows = _image_rows()
    if bench.http:
        world = bench.world()
        tables.append(
            HttpTable(
                "Provenance (issue 4)", [*_c2pa_rows(bench, world), _lookup_row(bench, world)]
            )
        )
        rows.append(asyncio.run(_index_row(world.database_url, world.insert_outputs())))
    else:
        tables.append(bench.skipped("Provenance (issue 4), HTTP rows"))
    tables.append(InProcessTable("Provenance (issue 4)", rows))
    return tables
