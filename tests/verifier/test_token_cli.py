"""``python -m verifier token``: one consent token checked offline, with real keys, real
signed tokens (the registry's own claim builder) and real signed status lists.

Exit status: 0 valid, 1 invalid, 2 indeterminate (no fresh status list), 64 usage.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from keys import LocalSigner, b64url_encode, sign_compact
from registry.consent import TokenAsset, build_claims
from verifier.cli import main
from verifier.statuslist import INVALID, SUSPENDED, StatusList, status_list_claims

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://registry.example"
LIST_URI = "https://registry.example/v1/status-lists/1"
AUDIENCE = "cl_generator"
IDX = 7


@pytest.fixture(scope="module")
def signer():
    return LocalSigner.generate("EdDSA")


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory, signer):
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [signer.public_jwk()]}))
    return path


def token(signer, *, now=None, ttl=timedelta(minutes=15), typ="consent+jwt", **changes):
    """A consent token as the registry issues it, issued at ``now`` (default: now)."""
    moment = now or datetime.now(UTC)
    claims = build_claims(
        issuer=ISSUER,
        subject="subj-pseudo-1",
        audience=AUDIENCE,
        consent_id="cns_1",
        assets=[TokenAsset(id="ast_1", sha256="a" * 64)],
        uses=["reference.generate"],
        status_idx=IDX,
        status_uri=LIST_URI,
        now=moment,
        ttl=ttl,
        not_after=moment + timedelta(days=30),
    )
    claims.update(changes)
    return sign_compact(msgspec.json.encode(claims), signer, typ=typ)


def status_list(signer, tmp_path, *, status=0, age=0, name="status.jwt"):
    """A signed status list with ``status`` at IDX, issued ``age`` seconds ago (ttl 300 s,
    acceptable for an hour: older than 300 s it is stale though not expired)."""
    statuses = StatusList(64, bits=2)
    statuses.set(IDX, status)
    claims = status_list_claims(
        uri=LIST_URI,
        issuer=ISSUER,
        status_list=statuses,
        issued_at=datetime.now(UTC) - timedelta(seconds=age),
        ttl_seconds=300,
        lifetime_seconds=3600,
    )
    path = tmp_path / name
    path.write_text(sign_compact(msgspec.json.encode(claims), signer, typ="statuslist+jwt"))
    return path


def run(value, jwks_file, *extra):
    out = io.StringIO()
    code = main(["token", value, "--jwks", str(jwks_file), *extra], stdout=out)
    return code, out.getvalue()


def run_json(value, jwks_file, *extra):
    code, output = run(value, jwks_file, "--json", *extra)
    return code, json.loads(output)


def test_valid_token_on_a_fresh_list_exits_0(signer, jwks_file, tmp_path):
    issued = token(signer)
    listed = status_list(signer, tmp_path)

    code, output = run(issued, jwks_file, "--status-list", str(listed))

    assert code == 0, output
    assert output.splitlines()[0] == "valid"
    assert "  consent: cns_1" in output
    code, body = run_json(issued, jwks_file, "--status-list", str(listed))
    assert code == 0
    assert set(body) == {"result", "reasons", "claims"}
    assert (body["result"], body["reasons"]) == ("valid", [])
    assert body["claims"]["cid"] == "cns_1"
    assert body["claims"]["status"]["status_list"] == {"idx": IDX, "uri": LIST_URI}


PHOTO = b"\xff\xd8 the consented photo, byte for byte"


def photo_token(signer, *, legacy=False):
    """A token binding PHOTO: as the registry issues it now, or as it did before format 2."""
    moment = datetime.now(UTC)
    claims = build_claims(
        issuer=ISSUER,
        subject="subj-pseudo-1",
        audience=AUDIENCE,
        consent_id="cns_1",
        assets=[TokenAsset(id="ast_1", sha256=hashlib.sha256(PHOTO).hexdigest())],
        uses=["reference.generate"],
        status_idx=IDX,
        status_uri=LIST_URI,
        now=moment,
        ttl=timedelta(minutes=15),
        not_after=moment + timedelta(days=30),
    )
    if legacy:
        del claims["ver"], claims["asset_salt"]
        claims["assets"] = [{"id": "ast_1", "sha256": hashlib.sha256(PHOTO).hexdigest()}]
    return sign_compact(msgspec.json.encode(claims), signer, typ="consent+jwt")


@pytest.mark.parametrize("legacy", [False, True], ids=["format-2", "format-1"])
def test_photo_is_tested_against_the_token(signer, jwks_file, tmp_path, legacy):
    issued = photo_token(signer, legacy=legacy)
    listed = status_list(signer, tmp_path)
    photo, other = tmp_path / "photo.jpg", tmp_path / "other.jpg"
    photo.write_bytes(PHOTO)
    other.write_bytes(PHOTO + b" re-saved")

    code, body = run_json(issued, jwks_file, "--status-list", str(listed), "--photo", str(photo))
    assert (code, body["result"]) == (0, "valid")
    code, body = run_json(issued, jwks_file, "--status-list", str(listed), "--photo", str(other))
    assert (code, body["result"], body["reasons"]) == (1, "asset_mismatch", ["asset_mismatch"])
    code, output = run(issued, jwks_file, "--status-list", str(listed), "--photo", str(other))
    assert (code, output.splitlines()[0]) == (1, "asset_mismatch")


def test_an_unreadable_photo_is_a_usage_error(signer, jwks_file, tmp_path):
    code, _ = run(token(signer), jwks_file, "--photo", str(tmp_path / "missing.jpg"))
    assert code == 64


def test_token_read_from_a_file(signer, jwks_file, tmp_path):
    path = tmp_path / "token.jwt"
    path.write_text(token(signer) + "\n")

    code, body = run_json(str(path), jwks_file, "--status-list", str(status_list(signer, tmp_path)))

    assert (code, body["result"]) == (0, "valid")


def test_expired_token_exits_1(signer, jwks_file, tmp_path):
    old = token(signer, now=datetime.now(UTC) - timedelta(hours=1))

    code, body = run_json(old, jwks_file, "--status-list", str(status_list(signer, tmp_path)))

    assert code == 1
    assert (body["result"], body["reasons"]) == ("expired", ["expired"])
    assert body["claims"]["jti"]


def test_the_leeway_decides_a_token_that_just_expired(signer, jwks_file, tmp_path):
    # Expired three seconds ago: within the default 5 s of clock skew, not within 0 or 2.
    just = token(signer, now=datetime.now(UTC) - timedelta(seconds=63), ttl=timedelta(seconds=60))
    listed = str(status_list(signer, tmp_path))

    assert run_json(just, jwks_file, "--status-list", listed)[1]["result"] == "valid"
    for leeway in ("0", "2"):
        code, body = run_json(just, jwks_file, "--status-list", listed, "--leeway", leeway)
        assert (code, body["reasons"]) == (1, ["expired"])
    assert run_json(just, jwks_file, "--status-list", listed, "--leeway", "60")[0] == 0


def test_not_yet_valid_token_exits_1(signer, jwks_file, tmp_path):
    ahead = int((datetime.now(UTC) + timedelta(minutes=1)).timestamp())
    early = token(signer, nbf=ahead)

    code, body = run_json(early, jwks_file, "--status-list", str(status_list(signer, tmp_path)))

    assert code == 1
    assert (body["result"], body["reasons"]) == ("not_yet_valid", ["not_yet_valid"])


@pytest.mark.parametrize(("status", "reason"), [(INVALID, "revoked"), (SUSPENDED, "suspended")])
def test_revoked_or_suspended_on_the_list_exits_1(signer, jwks_file, tmp_path, status, reason):
    listed = status_list(signer, tmp_path, status=status)

    code, output = run(token(signer), jwks_file, "--status-list", str(listed))

    assert code == 1
    assert output.splitlines()[0] == reason


def test_stale_list_exits_2_with_status_stale(signer, jwks_file, tmp_path):
    stale = status_list(signer, tmp_path, age=400)

    code, output = run(token(signer), jwks_file, "--status-list", str(stale))

    assert code == 2, output
    assert output.splitlines()[0] == "status_stale"
    assert "is stale: fetch it again" in output
    code, body = run_json(token(signer), jwks_file, "--status-list", str(stale))
    assert (code, body["result"], body["reasons"]) == (2, "status_stale", ["status_stale"])


def test_a_stale_list_that_says_revoked_is_still_stale(signer, jwks_file, tmp_path):
    stale = status_list(signer, tmp_path, status=INVALID, age=400)

    code, body = run_json(token(signer), jwks_file, "--status-list", str(stale))

    assert (code, body["reasons"]) == (2, ["status_stale"])


def test_no_status_list_exits_2_with_status_unknown(signer, jwks_file):
    code, body = run_json(token(signer), jwks_file)

    assert code == 2
    assert (body["result"], body["reasons"]) == ("status_unknown", ["status_unknown"])


def test_list_for_another_uri_or_signed_by_a_stranger_is_unknown(signer, jwks_file, tmp_path):
    stranger = status_list(LocalSigner.generate("EdDSA"), tmp_path, name="forged.jwt")

    code, output = run(token(signer), jwks_file, "--status-list", str(stranger))

    assert code == 2
    assert output.splitlines()[0] == "status_unknown"
    assert "status_list_signature" in output


def test_an_invalid_reason_decides_over_an_indeterminate_one(signer, jwks_file, tmp_path):
    old = token(signer, now=datetime.now(UTC) - timedelta(hours=1))
    stale = status_list(signer, tmp_path, age=400)

    code, body = run_json(old, jwks_file, "--status-list", str(stale))

    assert code == 1
    assert (body["result"], body["reasons"]) == ("expired", ["expired", "status_stale"])


def test_tampered_signature_exits_1(signer, jwks_file, tmp_path):
    header, payload, signature = token(signer).split(".")
    position = len(signature) // 2
    flipped = signature[:position] + ("A" if signature[position] != "A" else "B")
    tampered = f"{header}.{payload}.{flipped}{signature[position + 1 :]}"

    code, body = run_json(tampered, jwks_file, "--status-list", str(status_list(signer, tmp_path)))

    assert code == 1
    assert (body["result"], body["reasons"], body["claims"]) == ("signature", ["signature"], None)


def test_claims_changed_under_our_signature_exit_1(signer, jwks_file):
    header, _, signature = token(signer).split(".")
    forged = {"iss": ISSUER, "exp": 4_102_444_800}
    tampered = f"{header}.{b64url_encode(json.dumps(forged).encode())}.{signature}"

    code, body = run_json(tampered, jwks_file)

    assert (code, body["reasons"]) == (1, ["signature"])


def test_token_signed_by_a_key_outside_the_jwks_exits_1(jwks_file):
    code, body = run_json(token(LocalSigner.generate("EdDSA")), jwks_file)

    assert (code, body["result"]) == (1, "signature")


def test_another_typ_is_malformed(signer, jwks_file):
    code, body = run_json(token(signer, typ="JWT"), jwks_file)

    assert (code, body["result"]) == (1, "malformed")


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 70_000, "\x00\x1b[2J"],
    ids=["word", "three-dots", "alg-none", "huge", "controls"],
)
def test_garbage_token_exits_1_malformed_without_a_traceback(jwks_file, garbage):
    code, body = run_json(garbage, jwks_file)

    assert code == 1
    assert body["result"] in {"malformed", "signature"}
    assert body["claims"] is None


def test_garbage_token_from_the_command_line(jwks_file, tmp_path):
    garbage = tmp_path / "garbage.jwt"
    garbage.write_bytes(b"\xff\xfe not a token \x00")
    for value in ("garbage", str(garbage)):
        result = subprocess.run(
            [sys.executable, "-m", "verifier", "token", value, "--jwks", str(jwks_file)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert result.stdout.splitlines()[0] == "malformed"
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--audience", "cl_someone_else"], "audience"),
        (["--issuer", "https://elsewhere.example"], "issuer"),
        (["--use", "ai.training"], "use_not_permitted"),
    ],
)
def test_audience_issuer_and_use_are_checked_when_given(signer, jwks_file, tmp_path, extra, reason):
    listed = ["--status-list", str(status_list(signer, tmp_path))]

    code, body = run_json(token(signer), jwks_file, *listed, *extra)

    assert (code, body["result"], body["reasons"]) == (1, reason, [reason])


def test_matching_audience_issuer_and_use_pass(signer, jwks_file, tmp_path):
    code, body = run_json(
        token(signer),
        jwks_file,
        "--status-list",
        str(status_list(signer, tmp_path)),
        "--audience",
        AUDIENCE,
        "--issuer",
        ISSUER,
        "--use",
        "reference.generate",
    )

    assert (code, body["result"]) == (0, "valid")


def test_unknown_option_exits_64(signer, jwks_file, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["token", token(signer), "--jwks", str(jwks_file), "--audiance", AUDIENCE])

    assert caught.value.code == 64
    assert "unrecognized arguments: --audiance" in capsys.readouterr().err
