"""The HTTP floor: a minimal Litestar app doing each benchmarked endpoint's library work.

It runs on the same uvicorn settings as ``registry serve`` (its ``uvicorn.run`` call, in
``registry/cli/supervise.py`` when this was written: an app factory, the same worker count,
uvloop, httptools, ``log_config=None``, graceful shutdown 20 s, no proxy headers), reaches
the same PostgreSQL, and does the work an endpoint cannot avoid with the libraries alone, in
the cheapest correct way: one pooled connection per step that needs the database (asyncpg,
a reset that only rolls back a leaked transaction, no client-side per-query timer: the
server's statement_timeout bounds statements), blocking image work in a pool of threads as
large as the service's (IMAGE_THREADS), C2PA contexts and signers built once per thread.
No middleware, no access log, no metrics. What each route does is in its docstring; what
it leaves out, in docs/benchmarks.md.

Started as ``python -m bench.floor_server CONFIG.json`` (``bench.world`` writes the file).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import c2pa
import imagehash
import jwt
import msgspec
import numpy as np
import pdqhash
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, ValidationException
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from moderation import compile_rules, default_policy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

CONFIG_ENV = "BENCH_FLOOR_CONFIG"
READY = "floor ready"
"""Written to stderr by each worker once it serves (bench.harness.Process waits for it)."""
MAX_BODY = 26_214_400  # REGISTRY_MAX_UPLOAD_BYTES's default, as the service sets it
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
HASH_DRAFT = (256, 256)
LOOKUP_DISTANCE = 8
LOOKUP_LIMIT = 20

# The API-key lookup by hash, as the service's guard does it (one indexed join).
KEY_SQL = (
    "SELECT c.client_id, c.tenant, c.roles FROM api_keys k JOIN api_clients c USING (client_id)"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND c.disabled_at IS NULL"
    " AND (k.expires_at IS NULL OR k.expires_at > now())"
)
STATUS_SQL = "SELECT status FROM issued_tokens WHERE status_list_id = $1 AND status_idx = $2"
PDQ_SQL = (
    "SELECT e.entry_id, e.list_id, e.hash FROM hash_list_entries e JOIN hash_lists l"
    " USING (list_id) WHERE l.signal = 'pdq' AND l.enabled AND e.enabled ORDER BY e.entry_id"
)
MATCHED_SQL = (
    "SELECT e.entry_id, l.name, e.label, e.source, e.reviewed, e.crop FROM hash_list_entries e"
    " JOIN hash_lists l USING (list_id) WHERE e.entry_id = ANY($1::bigint[])"
)


class Config(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str
    issuer: str
    jwks_path: str
    c2pa_chain: str
    c2pa_key: str
    c2pa_anchor: str
    hashes_path: str
    """A .npy of the protected hash list's 64-bit hashes (uint64), loaded on first use."""
    image_threads: int
    port: int
    workers: int = 1


class VerifyBody(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    use: str | None = None


class Source(msgspec.Struct, kw_only=True, frozen=True):
    type: str
    asset_id: str
    sha256: str | None = None
    consent_token: str | None = None


class GateMetadata(msgspec.Struct, kw_only=True, frozen=True):
    generator_client_id: str
    model: str | None = None


class GateBody(msgspec.Struct, kw_only=True, frozen=True):
    generation_id: str
    prompt: str
    source_assets: list[Source]
    metadata: GateMetadata
    scores: dict[str, float]
    user_id: str | None = None


class HashLookupBody(msgspec.Struct, kw_only=True, frozen=True):
    signal: str
    hash: str


class SignBody(msgspec.Struct, kw_only=True, frozen=True):
    generation_id: str
    model: str
    consent_tokens: list[str]


async def _no_reset(_: asyncpg.Connection) -> None:
    """asyncpg still rolls back a leaked transaction before calling this (Pool._reset)."""


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body (python-multipart's parser)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValidationException("multipart/form-data with a boundary expected")
    parts: dict[str, bytes] = {}
    state: dict[str, Any] = {"field": b"", "value": b"", "name": None, "data": []}

    def header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def header_end() -> None:
        if state["field"].lower() == b"content-disposition":
            state["name"] = parse_options_header(state["value"])[1].get(b"name", b"").decode()
        state["field"], state["value"] = b"", b""

    def part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def part_end() -> None:
        parts[state["name"]] = b"".join(state["data"])
        state["name"], state["data"] = None, []

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_part_data": part_data,
            "on_part_end": part_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return parts


def _phash_int(value: imagehash.ImageHash) -> int:
    return int(str(value), 16)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class ImageWork:
    """The blocking library work of the image endpoints (run in threads; also in-process).

    The C2PA identity is the service's (same chain, same ES256 key, a callback signer as the
    service uses); C2PA Contexts and Signers are built once per thread and reused.
    """

    def __init__(self, *, chain_pem: str, key: ec.EllipticCurvePrivateKey, anchor_pem: str) -> None:
        self.chain_pem = chain_pem
        self.anchor_pem = anchor_pem
        self.c2pa_key = key
        self.local = threading.local()
        self.protected: np.ndarray | None = None
        self.review_distance = default_policy().hashes.review_distance

    def read_context(self) -> Any:
        context = getattr(self.local, "read", None)
        if context is None:
            context = c2pa.Context.from_dict(
                {
                    "verify": {
                        "remote_manifest_fetch": False,
                        "ocsp_fetch": False,
                        "verify_trust": True,
                    },
                    "trust": {"trust_anchors": self.anchor_pem},
                }
            )
            self.local.read = context
        return context

    def signing(self) -> tuple[Any, Any]:
        found = getattr(self.local, "signing", None)
        if found is None:
            signer = c2pa.Signer.from_callback(
                self._sign_es256, c2pa.C2paSigningAlg.ES256, self.chain_pem, None
            )
            context = c2pa.Context.from_dict(
                {
                    "builder": {"thumbnail": {"enabled": False}},
                    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                }
            )
            found = (signer, context)
            self.local.signing = found
        return found

    def _sign_es256(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.c2pa_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def decode(self, data: bytes) -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", HASH_DRAFT)
        image.load()
        return image

    def sign_work(self, data: bytes, generation_id: str) -> tuple[bytes, str, str, int]:
        sha256 = hashlib.sha256(data).hexdigest()
        phash = _phash_int(imagehash.phash(self.decode(data)))
        manifest = {
            "claim_generator_info": [{"name": "bench-floor", "version": "1"}],
            "title": f"{generation_id}.jpg",
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
                },
                {
                    "label": "org.consent-registry.consent",
                    "data": {"generation_id": generation_id, "consents": []},
                },
            ],
        }
        signer, context = self.signing()
        output = io.BytesIO()
        with c2pa.Builder(manifest, context) as builder:
            builder.sign(signer, "image/jpeg", io.BytesIO(data), output)
        signed = output.getvalue()
        return signed, sha256, hashlib.sha256(signed).hexdigest(), phash

    def consent_work(self, data: bytes) -> tuple[str, str, str]:
        image = self.decode(data)
        phash, dhash = imagehash.phash(image), imagehash.dhash(image)
        return hashlib.sha256(data).hexdigest(), str(phash), str(dhash)

    def inspect_work(self, data: bytes) -> tuple[str, int]:
        return hashlib.sha256(data).hexdigest(), _phash_int(imagehash.phash(self.decode(data)))

    def read_work(self, data: bytes) -> tuple[str, int, dict[str, Any] | None]:
        sha256, phash = self.inspect_work(data)
        try:
            with c2pa.Reader("image/jpeg", io.BytesIO(data), None, self.read_context()) as r:
                store = json.loads(r.json())
        except c2pa.C2paError.ManifestNotFound:
            store = None
        return sha256, phash, store

    def gate_work(self, data: bytes) -> dict[str, Any]:
        """sha256, decode, pHash of the 8 flips/rotations (one 32x32 grey copy), PDQ of the 8
        (four pdqhash dihedral runs on the <= 512 px copy), C2PA read, 1M-entry pHash scan."""
        sha256 = hashlib.sha256(data).hexdigest()
        image = self.decode(data)
        small = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
        queries = [_phash_int(imagehash.phash(small))] + [
            _phash_int(imagehash.phash(small.transpose(transpose)))
            for transpose in (
                Image.Transpose.ROTATE_90,
                Image.Transpose.ROTATE_180,
                Image.Transpose.ROTATE_270,
                Image.Transpose.FLIP_TOP_BOTTOM,
                Image.Transpose.FLIP_LEFT_RIGHT,
                Image.Transpose.TRANSPOSE,
                Image.Transpose.TRANSVERSE,
            )
        ]
        rgb = image.convert("RGB")
        if max(rgb.size) > 512:
            scale = 512 / max(rgb.size)
            rgb = rgb.resize(
                (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BOX
            )
        pixels = np.asarray(rgb)
        pdq = [
            pdqhash.compute_dihedral(view)[0]
            for view in (pixels, pixels[:, ::-1], pixels[::-1], pixels[::-1, ::-1])
        ]
        try:
            with c2pa.Reader("image/jpeg", io.BytesIO(data), None, self.read_context()) as r:
                provenance = json.loads(r.json()).get("validation_state")
        except c2pa.C2paError.ManifestNotFound:
            provenance = "absent"
        protected = self.protected
        if protected is None:
            msg = "the protected list is not loaded"
            raise RuntimeError(msg)
        best = np.full(len(protected), 255, dtype=np.uint8)
        scratch = np.empty(len(protected), dtype=np.uint64)
        distances = np.empty(len(protected), dtype=np.uint8)
        for query in queries:
            np.bitwise_xor(protected, np.uint64(query), out=scratch)
            np.bitwise_count(scratch, out=distances)
            np.minimum(best, distances, out=best)
        near = np.flatnonzero(best <= self.review_distance)
        return {
            "sha256": sha256,
            "phash": f"{queries[0]:016x}",
            "variants": [f"{q:016x}" for q in queries[1:]],
            "pdq": np.packbits(pdq[0][0].astype(np.uint8)).tobytes().hex(),
            "provenance": provenance,
            "matches": [{"index": int(i), "distance": int(best[i])} for i in near[:20]],
        }


class Floor:
    """The process's state: pool, keys, C2PA identity, image threads, policy, hash lists."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool: asyncpg.Pool | None = None
        self.jwks_bytes = Path(config.jwks_path).read_bytes()
        self.public_keys: dict[str, Any] = {
            k["kid"]: jwt.PyJWK(k).key for k in json.loads(self.jwks_bytes)["keys"]
        }
        key = serialization.load_pem_private_key(Path(config.c2pa_key).read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.images = ImageWork(
            chain_pem=Path(config.c2pa_chain).read_text("ascii"),
            key=key,
            anchor_pem=Path(config.c2pa_anchor).read_text("ascii"),
        )
        # The detached assertion's key: same algorithm as the service's token keys.
        self.assertion_key = Ed25519PrivateKey.generate()
        self.executor = ThreadPoolExecutor(config.image_threads, thread_name_prefix="floor-image")
        self.policy = default_policy()
        self.prompt_rules = compile_rules(self.policy.prompt_rules)
        self.outputs: tuple[np.ndarray, np.ndarray] | None = None
        self.list_lock = asyncio.Lock()
        self.pdq: PdqColumns | None = None
        self.pdq_distance = self.policy.hashes.bands("pdq")[1]

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.config.database_url,
            min_size=2,
            max_size=10,
            reset=_no_reset,
            server_settings={"statement_timeout": "10000", "lock_timeout": "3000"},
        )
        async with self.pool.acquire() as conn:
            await conn.execute(
                "CREATE SCHEMA IF NOT EXISTS bench_floor;"
                " CREATE TABLE IF NOT EXISTS bench_floor.outputs (output_id text PRIMARY KEY,"
                " client_id text NOT NULL, generation_id text NOT NULL, sha256 text NOT NULL,"
                " phash bigint NOT NULL, assertion text NOT NULL);"
                " CREATE TABLE IF NOT EXISTS bench_floor.consents (consent_id text PRIMARY KEY,"
                " client_id text NOT NULL, form_sha256 text NOT NULL UNIQUE,"
                " asset_sha256 text NOT NULL, phash text NOT NULL, dhash text NOT NULL,"
                " sealed bytea NOT NULL, receipt text NOT NULL);"
                " CREATE TABLE IF NOT EXISTS bench_floor.decisions (decision_id text PRIMARY KEY,"
                " client_id text NOT NULL, generation_id text NOT NULL, status text NOT NULL,"
                " image_sha256 text NOT NULL, evidence jsonb NOT NULL)"
            )

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        self.executor.shutdown(wait=False)

    def acquire(self) -> Any:
        assert self.pool is not None
        return self.pool.acquire()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # Library work shared by the routes.

    async def client(self, conn: asyncpg.Connection, authorization: str | None) -> asyncpg.Record:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise NotAuthorizedException("bearer key required")
        row = await conn.fetchrow(KEY_SQL, hashlib.sha256(key.strip().encode()).digest())
        if row is None:
            raise NotAuthorizedException("unknown key")
        return row

    async def check_token(
        self, conn: asyncpg.Connection, token: str, audience: str
    ) -> tuple[dict[str, Any], bool]:
        """pyjwt.decode with the JWKS key the token names, then its live status."""
        kid = jwt.get_unverified_header(token)["kid"]
        claims: dict[str, Any] = jwt.decode(
            token,
            self.public_keys[kid],
            algorithms=["EdDSA", "ES256"],
            audience=audience,
            issuer=self.config.issuer,
        )
        entry = claims["status"]["status_list"]
        status = await conn.fetchval(STATUS_SQL, entry["uri"].rsplit("/", 1)[1], entry["idx"])
        return claims, status == 0

    def evaluate(
        self, body: GateBody, facts: dict[str, Any], consents: list[tuple[dict[str, Any], bool]]
    ) -> list[str]:
        """The policy: prompt rules, score bands, required scores, hash bands, consent."""
        reasons = [f"prompt_{rule}" for rule in self.prompt_rules.check(body.prompt).matched]
        for rule in self.policy.scores:
            score = body.scores.get(rule.category)
            if score is None:
                if rule.required:
                    reasons.append("score_missing")
            elif score >= rule.block:
                reasons.append(f"score_{rule.category}_block")
            elif score >= rule.review:
                reasons.append(f"score_{rule.category}_review")
        reasons += ["hash_match" for _ in facts["matches"]]
        reasons += ["consent_invalid" for _, live in consents if not live]
        if facts["provenance"] not in {"absent", "Valid", "Trusted"}:
            reasons.append("provenance_invalid")
        return reasons

    async def protected_list(self) -> None:
        if self.images.protected is None:
            async with self.list_lock:
                if self.images.protected is None:
                    self.images.protected = await self.run(np.load, self.config.hashes_path)

    async def output_index(self, conn: asyncpg.Connection) -> tuple[np.ndarray, np.ndarray]:
        if self.outputs is None:
            rows = await conn.fetch("SELECT id, phash FROM signed_outputs")
            ids = np.array([r["id"] for r in rows], dtype=np.int64)
            phashes = np.array([r["phash"] for r in rows], dtype=np.int64).view(np.uint64)
            self.outputs = (ids, phashes)
        return self.outputs

    async def pdq_columns(self, conn: asyncpg.Connection) -> PdqColumns:
        if self.pdq is None:
            async with self.list_lock:
                if self.pdq is None:
                    rows = await conn.fetch(PDQ_SQL)
                    self.pdq = await self.run(PdqColumns.of, rows)
        return self.pdq


class PdqColumns:
    """Every enabled PDQ entry: ids, list ids, and the hash as four 64-bit word columns."""

    def __init__(self, entry_id: np.ndarray, list_id: np.ndarray, words: np.ndarray) -> None:
        self.entry_id, self.list_id = entry_id, list_id
        self.columns = [np.ascontiguousarray(words[:, k]) for k in range(words.shape[1])]

    @classmethod
    def of(cls, rows: list[asyncpg.Record]) -> PdqColumns:
        raw = b"".join(r["hash"] for r in rows)
        words = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(rows), 4)
        return cls(
            np.array([r["entry_id"] for r in rows], dtype=np.int64),
            np.array([r["list_id"] for r in rows], dtype=np.int64),
            words,
        )

    def nearest(self, value: bytes, max_distance: int) -> list[tuple[int, int]]:
        """(entry id, distance) of each list's closest entry within ``max_distance``:
        XOR and bitwise_count over whole columns."""
        query = np.frombuffer(value, dtype=">u8").astype(np.uint64)
        distance = np.bitwise_count(self.columns[0] ^ query[0])
        for k in range(1, len(self.columns)):
            distance += np.bitwise_count(self.columns[k] ^ query[k])
        near = np.flatnonzero(distance <= max_distance)
        best: dict[int, tuple[int, int]] = {}
        for row in near[np.argsort(distance[near], kind="stable")].tolist():
            best.setdefault(int(self.list_id[row]), (int(self.entry_id[row]), int(distance[row])))
        return list(best.values())


def _floor(request: Request[Any, Any, Any]) -> Floor:
    floor: Floor = request.app.state.floor
    return floor


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Nothing: the framework's own cost."""
    return {"status": "ok"}


@get("/.well-known/jwks.json")
async def jwks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The same JWKS bytes, with the service's media type and Cache-Control."""
    return Response(
        _floor(request).jwks_bytes,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@post("/v1/tokens/verify", status_code=200)
async def verify_token(request: Request[Any, Any, Any], data: VerifyBody) -> dict[str, Any]:
    """API-key lookup, pyjwt.decode (same key, audience, issuer), live status: one connection."""
    floor = _floor(request)
    async with floor.acquire() as conn:
        caller = await floor.client(conn, request.headers.get("authorization"))
        claims, live = await floor.check_token(conn, data.token, caller["client_id"])
    valid = live and (data.use is None or data.use in claims["uses"])
    return {"valid": valid, "reasons": [] if valid else ["revoked"], "claims": claims}


@post("/v1/consents", status_code=201)
async def submit_consent(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Key lookup and the template row on one connection; the form's EdDSA signature
    (pyjwt, with the key its header carries); sha256 + Pillow decode (draft) + pHash + dHash
    of the photo; the form sealed (AES-GCM, a fresh data key); a receipt (EdDSA JWS); one
    INSERT (the form's hash unique, so a replay fails)."""
    floor = _floor(request)
    parts = parse_multipart(request.headers["content-type"], await request.body())
    form = parts["form"].decode()
    signer = jwt.PyJWK(jwt.get_unverified_header(form)["jwk"]).key
    payload = json.loads(jwt.api_jws.decode(form, signer, algorithms=["EdDSA"]))
    async with floor.acquire() as conn:
        caller = await floor.client(conn, request.headers.get("authorization"))
        template = await conn.fetchrow(
            "SELECT sha256, uses FROM consent_templates WHERE template_id = $1",
            payload["template"]["id"],
        )
    if template is None or template["sha256"] != payload["template"]["sha256"]:
        raise ValidationException("unknown template")
    sha256, phash, dhash = await floor.run(floor.images.consent_work, parts["assets"])
    if sha256 not in {asset["sha256"] for asset in payload["assets"]}:
        raise ValidationException("the photo is not in the form")
    data_key = AESGCM.generate_key(bit_length=256)
    sealed = AESGCM(data_key).encrypt(secrets.token_bytes(12), form.encode(), None)
    consent_id = "con_" + secrets.token_urlsafe(16)
    receipt = jwt.encode(
        {"iss": floor.config.issuer, "sub": consent_id, "iat": int(time.time()), "sha256": sha256},
        floor.assertion_key,
        algorithm="EdDSA",
    )
    async with floor.acquire() as conn:
        await conn.execute(
            "INSERT INTO bench_floor.consents VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            consent_id,
            caller["client_id"],
            hashlib.sha256(form.encode()).hexdigest(),
            sha256,
            phash,
            dhash,
            sealed,
            receipt,
        )
    return {
        "consent_id": consent_id,
        "status": "active",
        "assets": [{"sha256": sha256, "phash": phash}],
        "receipt": receipt,
    }


@post("/v1/provenance/sign", status_code=200)
async def sign(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Key lookup; decode + pHash + sha256 + c2pa Builder.sign (same identity, callback
    signer, no thumbnail) + sha256 of the result; the detached assertion (EdDSA JWS); one
    INSERT of the output."""
    floor = _floor(request)
    parts = parse_multipart(request.headers["content-type"], await request.body())
    metadata = msgspec.json.decode(parts["metadata"], type=SignBody)
    async with floor.acquire() as conn:
        caller = await floor.client(conn, request.headers.get("authorization"))
    signed, _, signed_sha256, phash = await floor.run(
        floor.images.sign_work, parts["file"], metadata.generation_id
    )
    output_id = "out_" + secrets.token_urlsafe(16)
    assertion = jwt.encode(
        {
            "iss": floor.config.issuer,
            "jti": output_id,
            "iat": int(time.time()),
            "sha256": signed_sha256,
            "phash": f"{phash:016x}",
            "generation_id": metadata.generation_id,
        },
        floor.assertion_key,
        algorithm="EdDSA",
        headers={"typ": "provenance+jwt"},
    )
    async with floor.acquire() as conn:
        await conn.execute(
            "INSERT INTO bench_floor.outputs VALUES ($1, $2, $3, $4, $5, $6)",
            output_id,
            caller["client_id"],
            metadata.generation_id,
            signed_sha256,
            _signed64(phash),
            assertion,
        )
    return Response(
        signed,
        media_type="image/jpeg",
        headers={"Provenance-Assertion": assertion, "Provenance-Output-Id": output_id},
    )


@post("/v1/provenance/verify", status_code=200)
async def verify(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Decode + pHash + sha256 + c2pa Reader (same trust anchor) + json; one SELECT of the
    signed output by sha256."""
    floor = _floor(request)
    parts = parse_multipart(request.headers["content-type"], await request.body())
    sha256, phash, store = await floor.run(floor.images.read_work, parts["file"])
    async with floor.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT output_id, generation_id, model, created_at FROM signed_outputs"
            " WHERE sha256 = $1 LIMIT 1",
            sha256,
        )
    return {
        "state": (store or {}).get("validation_state", "absent"),
        "active_manifest": (store or {}).get("active_manifest"),
        "phash": f"{phash:016x}",
        "registry": dict(row) if row is not None else None,
    }


@post("/v1/provenance/lookup", status_code=200)
async def lookup(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Decode + pHash + sha256; numpy scan of every output's pHash (loaded once); one
    SELECT of the matches."""
    floor = _floor(request)
    parts = parse_multipart(request.headers["content-type"], await request.body())
    sha256, phash = await floor.run(floor.images.inspect_work, parts["file"])
    async with floor.acquire() as conn:
        ids, phashes = await floor.output_index(conn)
        distances = np.bitwise_count(phashes ^ np.uint64(phash))
        near = np.flatnonzero(distances <= LOOKUP_DISTANCE)
        near = near[np.argsort(distances[near], kind="stable")][:LOOKUP_LIMIT]
        rows = await conn.fetch(
            "SELECT id, output_id, generation_id, assertion FROM signed_outputs"
            " WHERE id = ANY($1::bigint[])",
            [int(ids[i]) for i in near],
        )
    return {"sha256": sha256, "phash": f"{phash:016x}", "matches": [dict(r) for r in rows]}


@post("/v1/hashes/lookup", status_code=200)
async def hash_lookup(request: Request[Any, Any, Any], data: HashLookupBody) -> dict[str, Any]:
    """Key lookup; the hex hash to bytes; a numpy scan of every enabled PDQ entry (whole
    columns, loaded once) in a thread, within the policy's review distance; one SELECT of the
    matched entries with their lists: all on one connection."""
    floor = _floor(request)
    if data.signal != "pdq" or len(data.hash) != 64:  # 256 bits in hex
        raise ValidationException("a PDQ hash, 64 hex digits")
    value = bytes.fromhex(data.hash)
    async with floor.acquire() as conn:
        await floor.client(conn, request.headers.get("authorization"))
        table = await floor.pdq_columns(conn)
        nearest = await floor.run(table.nearest, value, floor.pdq_distance)
        distances = dict(nearest)
        rows = await conn.fetch(MATCHED_SQL, list(distances)) if distances else []
    matches = [{**dict(r), "distance": distances[r["entry_id"]]} for r in rows]
    return {"matches": sorted(matches, key=lambda m: (m["distance"], m["name"]))}


@post("/v1/moderation/check", status_code=200)
async def gate(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Key lookup and both tokens (pyjwt + live status) on one connection; the image work in
    a thread (gate_work); the policy (evaluate); one INSERT of the decision with its
    evidence."""
    floor = _floor(request)
    parts = parse_multipart(request.headers["content-type"], await request.body())
    body = msgspec.json.decode(parts["request"], type=GateBody)
    await floor.protected_list()
    async with floor.acquire() as conn:
        caller = await floor.client(conn, request.headers.get("authorization"))
        consents = [
            await floor.check_token(conn, s.consent_token, body.metadata.generator_client_id)
            for s in body.source_assets
            if s.consent_token is not None
        ]
    facts = await floor.run(floor.images.gate_work, parts["image"])
    reasons = floor.evaluate(body, facts, consents)
    status = "allowed" if not reasons else "review"
    decision_id = "dec_" + secrets.token_urlsafe(16)
    evidence = msgspec.json.encode(
        {"image": facts, "scores": body.scores, "consents": [c["jti"] for c, _ in consents]}
    ).decode()
    async with floor.acquire() as conn:
        await conn.execute(
            "INSERT INTO bench_floor.decisions VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            decision_id,
            caller["client_id"],
            body.generation_id,
            status,
            facts["sha256"],
            evidence,
        )
    return {
        "generation_id": body.generation_id,
        "decision_id": decision_id,
        "safety_status": status,
        "scores": body.scores,
        "reasons": reasons,
    }


def create_app(config: Config) -> Litestar:
    floor = Floor(config)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await floor.start()
        app.state.floor = floor
        print(READY, file=sys.stderr, flush=True)
        try:
            yield
        finally:
            await floor.stop()

    return Litestar(
        route_handlers=[
            healthz,
            jwks,
            verify_token,
            submit_consent,
            sign,
            verify,
            lookup,
            hash_lookup,
            gate,
        ],
        lifespan=[lifespan],
        request_max_body_size=MAX_BODY,
        openapi_config=None,
        debug=False,
        logging_config=None,
    )


def app_from_env() -> Litestar:
    """Factory for uvicorn, as the service's ``registry.app:app_from_env``."""
    config = msgspec.json.decode(Path(os.environ[CONFIG_ENV]).read_bytes(), type=Config)
    return create_app(config)


def main() -> None:
    path = Path(sys.argv[1]).resolve()
    config = msgspec.json.decode(path.read_bytes(), type=Config)
    os.environ[CONFIG_ENV] = str(path)
    # The same uvicorn settings as `registry serve` (registry/cli/supervise.py, serve).
    uvicorn.run(
        "bench.floor_server:app_from_env",
        factory=True,
        host="127.0.0.1",
        port=config.port,
        workers=config.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=20,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
