"""Suspension: a consent's tokens read suspended online and as 2 in their status lists, offline
too, until the consent is resumed; and every refusal changes nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import zlib

import asyncpg
import pytest

from registry.core import audit
from tests.consent_http import helpers
from tests.consent_http.test_withdrawal import _bit, _claims
from tests.support import assert_problem

REASON = "dispute 2026-114: the subject says she never signed"


async def _post(world, consent_id, action, *, headers=None, **body):
    return await world.http.post(
        f"/v1/consents/{consent_id}/{action}", json=body, headers=headers or world.uploader.headers
    )


async def _state(database_url: str, consent_id: str) -> dict:
    """What a suspension changes: the record, its tokens' statuses, their lists' versions."""
    conn = await asyncpg.connect(database_url)
    try:
        record = await conn.fetchrow(
            "SELECT status, suspended_at, suspended_by, withdrawn_at FROM consent_records"
            " WHERE consent_id = $1",
            consent_id,
        )
        tokens = await conn.fetch(
            "SELECT t.jti, t.status, l.version FROM issued_tokens t"
            " JOIN status_lists l ON l.list_id = t.status_list_id WHERE t.consent_id = $1"
            " ORDER BY t.jti",
            consent_id,
        )
        return {"record": dict(record), "tokens": [dict(t) for t in tokens]}
    finally:
        await conn.close()


async def _events(pool, consent_id: str) -> list:
    async with pool.acquire() as conn:
        return await audit.list_events(conn, subject_type="consent", subject_id=consent_id)


async def test_suspension_fails_tokens_at_once_and_resumption_restores_them(
    world, settings, database_url, pool
):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    reference = _claims(issued["token"])["status"]["status_list"]
    path = reference["uri"].removeprefix(settings.public_issuer)
    cached = (await world.http.get(path)).text  # this process now holds the signed list
    assert _bit(cached, reference["idx"]) == 0
    version = (await _state(database_url, cid))["tokens"][0]["version"]

    response = await _post(world, cid, "suspend", reason=REASON)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "suspended"
    assert body["suspended_by"] == world.uploader.client_id
    assert (body["suspended_tokens"], body["revoked_tokens"]) == ([issued["jti"]], [])

    # Online at once: verification, the record, and no new token.
    checked = await world.verify(issued["token"])
    assert (checked["valid"], checked["reasons"]) == (False, ["suspended"])
    assert "asset_salt" not in checked["claims"]
    record = (await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)).json()
    assert record["status"] == "suspended"
    assert record["suspended_at"] == body["suspended_at"]
    assert_problem(await world.token(cid), 409, "consent_not_active")
    # The list's version moved, so the cached signed copy is rebuilt: it says 2 now.
    assert (await _state(database_url, cid))["tokens"][0]["version"] == version + 1
    assert _bit((await world.http.get(path)).text, reference["idx"]) == 2

    [event] = [e for e in await _events(pool, cid) if e.action == "consent.suspended"]
    assert event.payload["reason_sha256"] == hashlib.sha256(REASON.encode()).hexdigest()
    assert event.payload["suspended_tokens"] == [issued["jti"]]
    assert "dispute" not in json.dumps(event.payload)  # only the reason's hash

    response = await _post(world, cid, "resume")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["restored_tokens"]) == ("active", [issued["jti"]])
    assert (await world.verify(issued["token"]))["valid"] is True
    assert _bit((await world.http.get(path)).text, reference["idx"]) == 0
    record = (await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)).json()
    assert (record["status"], record["suspended_at"]) == ("active", None)
    assert (await world.token(cid)).status_code == 201
    [resumed] = [e for e in await _events(pool, cid) if e.action == "consent.resumed"]
    assert resumed.payload["restored_tokens"] == [issued["jti"]]
    assert "reason_sha256" not in resumed.payload


async def test_the_offline_verifier_reads_suspended_from_the_status_list(world, settings, tmp_path):
    consent, issued = await world.granted_token()
    path = _claims(issued["token"])["status"]["status_list"]["uri"].removeprefix(
        settings.public_issuer
    )
    jwks, status = tmp_path / "jwks.json", tmp_path / "status.jwt"
    jwks.write_bytes((await world.http.get("/.well-known/jwks.json")).content)

    async def offline() -> tuple[int, dict]:
        status.write_bytes((await world.http.get(path)).content)
        argv = ["token", issued["token"], "--jwks", str(jwks), "--status-list", str(status)]
        ran = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "verifier", *argv, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return ran.returncode, json.loads(ran.stdout)

    assert (await _post(world, consent["consent_id"], "suspend")).status_code == 200
    code, body = await offline()
    assert (code, body["result"], body["reasons"]) == (1, "suspended", ["suspended"])
    assert (await _post(world, consent["consent_id"], "resume")).status_code == 200
    code, body = await offline()
    assert (code, body["result"]) == (0, "valid")


async def test_an_admin_suspends_any_tenants_consent_and_withdrawal_ends_it(world, pool):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    response = await _post(world, cid, "suspend", headers=world.admin)
    assert response.status_code == 200, response.text
    # Withdrawn while suspended: revoked for good, and there is nothing left to resume.
    withdrawn = await _post(
        world, cid, "withdraw", withdrawal=helpers.withdrawal(world.signer, cid)
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["revoked_tokens"] == [issued["jti"]]
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]
    assert_problem(
        await _post(world, cid, "resume", headers=world.admin), 409, "consent_not_active"
    )
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]
    record = (await world.http.get(f"/v1/consents/{cid}", headers=world.uploader.headers)).json()
    assert (record["status"], record["suspended_at"]) == ("withdrawn", None)


async def test_tokens_of_a_one_bit_list_are_revoked_by_suspension_for_good(
    world, settings, database_url
):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    reference = _claims(issued["token"])["status"]["status_list"]
    list_id = reference["uri"].rsplit("/", 1)[1]
    # A list made before suspension existed was 1 bit wide: VALID or INVALID only.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE status_lists SET bits = 1, state = 'full' WHERE list_id = $1", list_id
        )
    finally:
        await conn.close()

    body = (await _post(world, cid, "suspend")).json()
    assert (body["suspended_tokens"], body["revoked_tokens"]) == ([], [issued["jti"]])
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]
    listed = await world.http.get(reference["uri"].removeprefix(settings.public_issuer))
    assert listed.status_code == 200, listed.text
    claim = _claims(listed.text)["status_list"]
    data = zlib.decompress(base64.urlsafe_b64decode(claim["lst"] + "=" * (-len(claim["lst"]) % 4)))
    assert (claim["bits"], (data[reference["idx"] // 8] >> (reference["idx"] % 8)) & 1) == (1, 1)
    assert (await _post(world, cid, "resume")).json()["restored_tokens"] == []
    assert (await world.verify(issued["token"]))["reasons"] == ["revoked"]
    # A new token goes to a 2-bit list, so the next suspension can be lifted.
    fresh = (await world.token(cid)).json()
    assert _claims(fresh["token"])["status"]["status_list"]["uri"] != reference["uri"]
    assert (await _post(world, cid, "suspend")).json()["suspended_tokens"] == [fresh["jti"]]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("suspend_withdrawn", 409, "consent_not_active"),
        ("suspend_erased", 409, "consent_not_active"),
        ("suspend_twice", 409, "consent_suspended"),
        ("resume_not_suspended", 409, "consent_not_suspended"),
        ("resume_erased", 409, "consent_not_active"),
        ("by_another_tenant", 404, "consent_not_found"),
        ("by_a_generator", 403, "forbidden"),
        ("unknown_consent", 404, "consent_not_found"),
        ("reason_too_long", 422, "reason_invalid"),
        ("reason_blank", 422, "reason_invalid"),
        ("unknown_field", 400, "unknown_field"),
    ],
)
async def test_bad_suspensions_change_nothing(
    world, make_client, database_url, pool, case, status, code
):
    consent, issued = await world.granted_token()
    cid = consent["consent_id"]
    if case == "suspend_withdrawn":
        await _post(world, cid, "withdraw", withdrawal=helpers.withdrawal(world.signer, cid))
    elif case in {"suspend_erased", "resume_erased"}:
        assert (await _post(world, cid, "erase")).status_code == 200
    elif case == "suspend_twice":
        assert (await _post(world, cid, "suspend", reason="first")).status_code == 200
    _, stranger = await make_client("uploader", tenant="othertenant")
    action = "resume" if case.startswith("resume") else "suspend"
    target, headers, body = cid, world.uploader.headers, {}
    if case == "by_another_tenant":
        headers = stranger
    elif case == "by_a_generator":
        headers = world.generator.headers
    elif case == "unknown_consent":
        target = "cns_nobody"
    elif case == "reason_too_long":
        body = {"reason": "x" * 1001}
    elif case == "reason_blank":
        body = {"reason": "   "}
    elif case == "unknown_field":
        body = {"why": "no"}
    before = (await _state(database_url, cid), await helpers.counts(database_url))
    events = len(await _events(pool, cid))

    assert_problem(await _post(world, target, action, headers=headers, **body), status, code)

    assert (await _state(database_url, cid), await helpers.counts(database_url)) == before
    assert len(await _events(pool, cid)) == events
    expected = {
        "suspend_twice": ["suspended"],
        "suspend_withdrawn": ["revoked"],
        "suspend_erased": ["revoked"],
        "resume_erased": ["revoked"],
    }.get(case, [])
    assert (await world.verify(issued["token"]))["reasons"] == expected
