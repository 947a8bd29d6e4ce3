"""The service shell over HTTP: JWKS, clients, roles, tenants, errors, audit, rotation."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest

import keys
from tests.support import ADMIN_KEY, assert_problem, bearer


async def _count(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - test constant
    finally:
        await conn.close()


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_jwks_is_valid_and_cacheable(client):
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=" in response.headers["cache-control"]
    jwks = response.json()
    assert len(jwks["keys"]) == 2  # active and next
    for jwk in jwks["keys"]:
        assert jwk["kid"] == keys.thumbprint(jwk)
        assert jwk["use"] == "sig"
        assert jwk["alg"] == "EdDSA"
        assert "d" not in jwk
        keys.load_public_jwk(jwk)


async def test_request_id_is_echoed_or_made(client):
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) >= 8
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abcd-1234-efgh"})
    assert echoed.headers["x-request-id"] == "abcd-1234-efgh"
    junk = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert junk.headers["x-request-id"] != "<script>"


async def test_metrics_are_exposed(client):
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "registry_requests_total" in response.text


async def test_admin_creates_client_and_key_works(client, admin, database_url):
    response = await client.post(
        "/v1/admin/clients",
        json={"name": "Gen One", "roles": ["generator"], "tenant": "acme"},
        headers=admin,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["roles"] == ["generator"]
    assert body["api_key"].startswith("rk_")
    # The key is stored hashed: its text is nowhere in the table.
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_clients")
        assert body["api_key"].encode() not in b"".join(str(dict(r)).encode() for r in rows)
        events = await conn.fetch(
            "SELECT action, subject_id FROM audit_events WHERE action = 'client.created'"
        )
    finally:
        await conn.close()
    assert ("client.created", body["client_id"]) in [(e["action"], e["subject_id"]) for e in events]
    # The new key authenticates, but has no admin rights.
    denied = await client.post(
        "/v1/admin/clients",
        json={"name": "x", "roles": ["admin"], "tenant": "acme"},
        headers=bearer(body["api_key"]),
    )
    assert_problem(denied, 403, "forbidden")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer rk_" + "B" * 43},  # well-formed, unknown
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": "Bearer rk_' OR 1=1 --"},
    ],
)
async def test_missing_or_wrong_key_is_401_and_writes_nothing(client, headers, database_url):
    before = (await _count(database_url, "api_clients"), await _count(database_url, "audit_events"))
    response = await client.post(
        "/v1/admin/clients",
        json={"name": "x", "roles": ["admin"], "tenant": "t"},
        headers=headers,
    )
    assert_problem(response, 401, "unauthenticated")
    after = (await _count(database_url, "api_clients"), await _count(database_url, "audit_events"))
    assert after == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"name": "a", "roles": ["admin"], "tenant": "t", "extra": 1}', 400, "unknown_field"),
        (b'{"name": "a", "name": "b", "roles": ["admin"], "tenant": "t"}', 400, "duplicate_key"),
        (b'{"name": 5, "roles": ["admin"], "tenant": "t"}', 400, "invalid_type"),
        (b'{"name": "a", "roles": ["admin"], "tenant": "t", "tenant": "u"}', 400, "duplicate_key"),
        (b'{"roles": ["admin"], "tenant": "t"}', 400, "missing_field"),
        (
            b'{"name": "a", "roles": ' + b"[" * 50 + b"]" * 50 + b', "tenant": "t"}',
            400,
            "too_deep",
        ),
        (b'{"name": "a", "roles": ["admin"]', 400, "malformed_json"),
        (b'{"name": "a", "roles": ["emperor"], "tenant": "t"}', 422, "invalid_request"),
        (b'{"name": "a", "roles": [], "tenant": "t"}', 422, "invalid_request"),
        (b'{"name": "a", "roles": ["admin"], "tenant": "UPPER CASE"}', 422, "invalid_request"),
        (b'{"name": "", "roles": ["admin"], "tenant": "t"}', 422, "invalid_request"),
    ],
)
async def test_bad_bodies_are_4xx_and_write_nothing(
    client, admin, database_url, body, status, code
):
    before = await _count(database_url, "api_clients")
    response = await client.post(
        "/v1/admin/clients",
        content=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_problem(response, status, code)
    assert await _count(database_url, "api_clients") == before


async def test_wrong_content_type_and_oversized_body(client, admin, database_url):
    before = await _count(database_url, "api_clients")
    response = await client.post(
        "/v1/admin/clients", content=b"name=a", headers={**admin, "Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_media_type")
    big = b'{"name": "' + b"a" * 2_000_000 + b'", "roles": ["admin"], "tenant": "t"}'
    response = await client.post(
        "/v1/admin/clients", content=big, headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 413, "body_too_large")
    assert await _count(database_url, "api_clients") == before


async def test_unknown_route_and_method_are_problems(client):
    assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")
    assert_problem(await client.delete("/healthz"), 405, "method_not_allowed")


async def test_rotation_publishes_before_signing(client, admin, database_url):
    before = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    response = await client.post("/v1/admin/keys/rotate", headers=admin)
    assert response.status_code == 200
    rotation = response.json()
    # The key that now signs was already published before the rotation.
    assert rotation["activated_kid"] in before
    assert rotation["retiring_kid"] in before
    after = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert after == before | {rotation["next_kid"]}
    conn = await asyncpg.connect(database_url)
    try:
        action = await conn.fetchval(
            "SELECT action FROM audit_events WHERE subject_id = $1", rotation["activated_kid"]
        )
    finally:
        await conn.close()
    assert action == "keys.rotated"


async def test_concurrent_rotations_one_wins(client, admin, database_url):
    results = await asyncio.gather(
        *(client.post("/v1/admin/keys/rotate", headers=admin) for _ in range(2))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses in ([200, 409], [200, 200])
    for r in results:
        if r.status_code == 409:
            assert_problem(r, 409, "rotation_in_progress")
    conn = await asyncpg.connect(database_url)
    try:
        states = [r["state"] for r in await conn.fetch("SELECT state FROM signing_keys")]
        rotations = await conn.fetchval(
            "SELECT count(*) FROM audit_events WHERE action = 'keys.rotated'"
        )
    finally:
        await conn.close()
    assert states.count("active") == 1
    assert states.count("next") == 1
    assert rotations == statuses.count(200)


async def test_rotation_needs_admin(client, make_client):
    _, generator = await make_client("generator")
    assert_problem(await client.post("/v1/admin/keys/rotate", headers=generator), 403, "forbidden")


async def test_checkpoint_signed_on_demand_and_public(client, admin, make_client):
    # Signed at start (issue 13: no longer a 404 for the first interval), then on demand.
    started = (await client.get("/v1/audit/checkpoint")).json()
    assert started["tree_size"] == 1
    assert (await client.post("/v1/audit/checkpoint", headers=admin)).status_code == 200
    await make_client("uploader")
    signed = await client.post("/v1/audit/checkpoint", headers=admin)
    assert signed.status_code == 201
    public = (await client.get("/v1/audit/checkpoint")).json()
    jwks = (await client.get("/.well-known/jwks.json")).json()
    by_kid = {k["kid"]: keys.load_public_jwk(k) for k in jwks["keys"]}
    verified = keys.verify_compact(
        public["checkpoint"],
        resolve_key=lambda h: by_kid.get(h.get("kid")),
        typ="audit-checkpoint+jwt",
    )
    claims = msgspec.json.decode(verified.payload)
    assert claims["tree_size"] == public["tree_size"] == 2
    assert claims["head"] == public["head_hash"]
    assert claims["root"] == public["root_hash"]


async def test_audit_events_admin_only(client, admin, make_client):
    _, reviewer = await make_client("reviewer")
    assert_problem(await client.get("/v1/audit/events", headers=reviewer), 403, "forbidden")
    listed = (await client.get("/v1/audit/events?limit=10", headers=admin)).json()
    assert [e["action"] for e in listed["events"]][:2] == ["client.created", "client.created"]
    assert_problem(
        await client.get("/v1/audit/events?limit=0", headers=admin), 400, "invalid_parameter"
    )


async def test_rate_limit_returns_429_with_retry_after(service_database_url, tmp_path):
    from litestar.testing import AsyncTestClient

    from registry.app import create_app
    from tests.support import make_settings

    settings = make_settings(service_database_url, tmp_path, rate_limit_per_minute=6)
    async with AsyncTestClient(app=create_app(settings)) as limited:
        statuses = []
        for _ in range(15):
            r = await limited.get("/v1/audit/events", headers=bearer(ADMIN_KEY))
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert_problem(r, 429, "rate_limited")
                assert int(r.headers["retry-after"]) >= 1
                break
    assert statuses[0] == 200
    assert statuses[-1] == 429


async def test_c2pa_chain_and_anchor_are_published(client, settings, database_url):
    from cryptography import x509

    chain = await client.get("/v1/keys/c2pa")
    anchor = await client.get("/v1/keys/c2pa/anchor")
    assert chain.status_code == anchor.status_code == 200
    assert chain.headers["content-type"].startswith("application/pem-certificate-chain")
    leaf = x509.load_pem_x509_certificates(chain.content)[0]
    root = x509.load_pem_x509_certificate(anchor.content)
    leaf.verify_directly_issued_by(root)
    assert b"PRIVATE KEY" not in chain.content + anchor.content
    # Stored encrypted: no PEM private key text in the database.
    conn = await asyncpg.connect(database_url)
    try:
        sealed = await conn.fetchval("SELECT bundle_enc FROM c2pa_identity")
    finally:
        await conn.close()
    assert b"PRIVATE KEY" not in bytes(sealed)


async def test_c2pa_identity_is_shared_across_processes(settings):
    """A second service process on the same database signs with the same certificate."""
    from litestar.testing import AsyncTestClient

    from registry.app import create_app

    async with (
        AsyncTestClient(app=create_app(settings)) as first,
        AsyncTestClient(app=create_app(settings)) as second,
    ):
        a = (await first.get("/v1/keys/c2pa")).content
        b = (await second.get("/v1/keys/c2pa")).content
    assert a == b
