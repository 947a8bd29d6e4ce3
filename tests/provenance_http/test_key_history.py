"""Signatures that outlive key rotation, end to end: a signed output's detached assertion, a
consent receipt, an audit checkpoint and a status list, all signed by one key; then three
rotations, after which that key has left the JWKS. Each still verifies offline with nothing
but the published key history (``GET /.well-known/registry-keys.json``), with our verifier
and with an independent JOSE library (PyJWT); a backdated artifact, a stranger's key and a
tampered history are refused.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import jwt
import pytest

from keys import LocalSigner, sign_compact
from verifier.cli import main
from verifier.key_history import KEY_HISTORY_MEDIA_TYPE

HISTORY_PATH = "/.well-known/registry-keys.json"


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, stdout=out)
    return code, out.getvalue()


async def rotate_three_times_and_retire(http, admin, database_url) -> None:
    for _ in range(3):
        response = await http.post("/v1/admin/keys/rotate", headers=admin)
        assert response.status_code == 200, response.text
    # Past their publication: the retiring keys leave the JWKS at the next reload.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE signing_keys SET retire_after = now() - interval '1 second'"
            " WHERE state = 'retiring'"
        )
    finally:
        await conn.close()
    # The service reloads its keys every 0.2 s in the tests (REGISTRY_KEY_REFRESH_INTERVAL).
    for _ in range(100):
        jwks = (await http.get("/.well-known/jwks.json")).json()
        if len(jwks["keys"]) == 2:  # the active key and the next one
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the retired keys are still in the JWKS: {jwks}")


@pytest.fixture
async def published(world, signed, admin, database_url, tmp_path):
    """Artifacts signed by the first key, then rotated away; every file a third party keeps."""
    response, token, consent = signed
    http = world.http
    checkpoint = await http.post("/v1/audit/checkpoint", headers=admin)
    assert checkpoint.status_code == 201, checkpoint.text
    status_uri = claims_of(token["token"])["status"]["status_list"]["uri"]
    status_list = (await http.get(urlsplit(status_uri).path)).text
    artifacts = {
        "assertion": response.headers["provenance-assertion"],
        "receipt": consent["receipt"],
        "checkpoint": checkpoint.json()["checkpoint"],
        "status_list": status_list,
        "token": token["token"],
    }
    signing_kids = {jwt.get_unverified_header(value)["kid"] for value in artifacts.values()}
    assert len(signing_kids) == 1

    await rotate_three_times_and_retire(http, admin, database_url)

    history = await http.get(HISTORY_PATH)
    assert history.status_code == 200, history.text
    files = {
        "history": history.content,
        "jwks": (await http.get("/.well-known/jwks.json")).content,
        "anchor": (await http.get("/v1/keys/c2pa/anchor")).content,
        "output": response.content,
        **{name: value.encode() for name, value in artifacts.items()},
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(content)
    return {
        "kid": signing_kids.pop(),
        "artifacts": artifacts,
        "paths": paths,
        "history": history,
        "token": token,
    }


async def test_the_history_keeps_the_rotated_key_the_jwks_drops_it(published, database_url):
    kid = published["kid"]
    jwks_kids = {k["kid"] for k in json.loads(published["paths"]["jwks"].read_text())["keys"]}
    assert kid not in jwks_kids
    history = claims_of(published["history"].text)
    entries = {entry["jwk"]["kid"]: entry for entry in history["keys"]}
    assert len(entries) == 4  # the first key and the three it was rotated to
    assert entries[kid]["not_after"] is not None
    assert entries[kid]["signs"] == [
        "tokens",
        "receipts",
        "assertions",
        "checkpoints",
        "status_lists",
        "notices",
    ]
    open_keys = [k for k, entry in entries.items() if entry["not_after"] is None]
    assert open_keys == [jwt.get_unverified_header(published["history"].text)["kid"]]
    assert open_keys[0] in jwks_kids
    # Rotation erased the private parts and deleted nothing.
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kid, state, private_key_enc FROM signing_keys")
    finally:
        await conn.close()
    assert len(rows) == 5
    assert all(r["private_key_enc"] is None for r in rows if r["state"] == "retired")
    assert {r["kid"] for r in rows if r["state"] == "retired"} == set(entries) - set(open_keys)


async def test_the_history_is_cacheable(world, published):
    history = published["history"]
    assert history.headers["content-type"].startswith(KEY_HISTORY_MEDIA_TYPE)
    assert history.headers["cache-control"] == "public, max-age=300"
    etag = history.headers["etag"]
    again = await world.http.get(HISTORY_PATH, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert not again.content
    other = await world.http.get(HISTORY_PATH, headers={"If-None-Match": '"other"'})
    assert (other.status_code, other.text) == (200, history.text)


async def test_everything_signed_before_three_rotations_verifies_with_our_verifier(published):
    paths = published["paths"]
    keys = str(paths["history"])

    code, out = run(["keys", keys])
    assert code == 0, out

    for name in ("receipt", "checkpoint", "status_list", "assertion"):
        code, out = run(["signed", str(paths[name]), "--keys", keys, "--json"])
        outcome = json.loads(out)
        assert (code, outcome["result"], outcome["kid"]) == (0, "valid", published["kid"]), name
        assert outcome["period_checked"] is True

    image = [
        "verify",
        str(paths["output"]),
        "--trust",
        str(paths["anchor"]),
        "--assertion",
        str(paths["assertion"]),
        "--status-list",
        str(paths["status_list"]),
        "--json",
    ]
    code, out = run([*image, "--keys", keys])
    outcome = json.loads(out)
    assert (code, outcome["verdict"], outcome["reasons"]) == (0, "verified", []), out
    assert outcome["assertion"]["status"] == "valid"

    # With only today's JWKS the same files no longer verify: the reason for the history.
    code, out = run([*image, "--jwks", str(paths["jwks"])])
    outcome = json.loads(out)
    assert code == 1
    assert outcome["assertion"]["code"] == "assertion_signature_invalid"
    assert "unknown_key" in outcome["assertion"]["detail"]

    token = published["token"]
    code, out = run(
        [
            "token",
            str(paths["token"]),
            "--keys",
            keys,
            "--status-list",
            str(paths["status_list"]),
            "--audience",
            claims_of(token["token"])["aud"],
            "--json",
        ]
    )
    assert (code, json.loads(out)["result"]) == (0, "valid"), out


async def test_everything_signed_before_three_rotations_verifies_with_pyjwt(published):
    """Only PyJWT and the history: its signature under the key it names, then each artifact
    under the key its kid names, with its iat inside that key's period."""
    document = published["history"].text
    unverified = jwt.decode(document, options={"verify_signature": False})
    entries = {entry["jwk"]["kid"]: entry for entry in unverified["keys"]}
    signer = entries[jwt.get_unverified_header(document)["kid"]]
    history = jwt.decode(
        document, key=jwt.PyJWK(signer["jwk"]).key, algorithms=[signer["jwk"]["alg"]]
    )
    entries = {entry["jwk"]["kid"]: entry for entry in history["keys"]}

    for name, token in published["artifacts"].items():
        header = jwt.get_unverified_header(token)
        entry = entries[header["kid"]]
        claims = jwt.decode(
            token,
            key=jwt.PyJWK(entry["jwk"]).key,
            algorithms=[entry["jwk"]["alg"]],
            options={"verify_aud": False},
        )
        assert entry["not_before"] <= claims["iat"] <= entry["not_after"], name


async def test_a_backdated_artifact_an_unknown_key_and_a_tampered_history(
    world, published, tmp_path, capsys
):
    paths = published["paths"]
    keys = str(paths["history"])
    # The active key, signing with an iat from before it was activated: outside its period.
    # (Signing is a pure computation: no event loop of the service's is involved.)
    ring = world.http.app.state.services.keyring
    backdated = ring.sign_jws(
        {**claims_of(published["artifacts"]["receipt"]), "iat": 1_000_000_000},
        typ="consent-receipt+jwt",
    )
    code, out = run(["signed", backdated, "--keys", keys, "--json"])
    outcome = json.loads(out)
    assert (code, outcome["result"]) == (1, "key_not_valid_at_iat")
    assert "signed only from" in outcome["detail"]

    stranger = sign_compact(
        json.dumps({"iss": "x", "iat": int(datetime.now(UTC).timestamp())}).encode(),
        LocalSigner.generate("EdDSA"),
        typ="audit-checkpoint+jwt",
    )
    code, out = run(["signed", stranger, "--keys", keys])
    assert (code, out.splitlines()[0]) == (1, "unknown_key")

    header, payload, signature = paths["history"].read_text().split(".")
    claims = claims_of(f"{header}.{payload}.{signature}")
    claims["keys"] = [e for e in claims["keys"] if e["jwk"]["kid"] != published["kid"]]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    tampered = tmp_path / "tampered-history.jwt"
    tampered.write_text(f"{header}.{forged}.{signature}")
    code, out = run(["signed", str(paths["receipt"]), "--keys", str(tampered)])
    assert (code, out) == (64, "")
    assert "refused (key_history_signature_invalid)" in capsys.readouterr().err
    code, out = run(["keys", str(tampered)])
    assert code == 1
    assert "REFUSED key_history_signature_invalid" in out
