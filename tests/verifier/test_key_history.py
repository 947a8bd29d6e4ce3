"""The key history offline (``verifier.key_history``, ``python -m verifier keys|signed`` and
``--keys``): real keys, real signatures, a history built as the registry builds it.

Keys A (retired), B (retired) and C (active) signed one after the other; every artifact
signed by a key inside its period verifies, one whose ``iat`` lies outside it does not, and
a history that was changed in any way is refused.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import jwt
import msgspec
import pytest

from keys import LocalSigner, b64url_decode, b64url_encode, sign_compact
from registry.consent import TokenAsset, build_claims
from registry.consent.receipts import RECEIPT_TYP
from registry.core.audit import CHECKPOINT_TYP
from registry.review import TAKEDOWN_TYP
from verifier.assertion import ASSERTION_TYP
from verifier.cli import main
from verifier.key_history import (
    KEY_HISTORY_TYP,
    PURPOSES,
    TYP_PURPOSES,
    KeyHistory,
    KeyHistoryMalformed,
    KeyHistorySignatureInvalid,
    KeyNotValidAtIat,
    SignedArtifactError,
    UnknownSigningKey,
    key_history_claims,
    verify_key_history,
    verify_signed,
)
from verifier.statuslist import (
    STATUS_LIST_TYP,
    StatusList,
    StatusListKeyNotValidError,
    status_list_claims,
    verify_status_list_token,
)
from verifier.tokens import CONSENT_TOKEN_TYP

ISSUER = "https://registry.example"
NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


class Ring:
    """Three keys that signed in turn: A for days -30..-20, B -20..-10, C since -10."""

    def __init__(self) -> None:
        self.a = LocalSigner.generate("EdDSA")
        self.b = LocalSigner.generate("ES256")
        self.c = LocalSigner.generate("EdDSA")
        self.periods = [
            (self.a, NOW - 30 * DAY, NOW - 20 * DAY),
            (self.b, NOW - 20 * DAY, NOW - 10 * DAY),
            (self.c, NOW - 10 * DAY, None),
        ]

    def claims(self, **changes):
        claims = key_history_claims(
            issuer=ISSUER, keys=[(s.public_jwk(), nb, na) for s, nb, na in self.periods]
        )
        claims.update(changes)
        return claims

    def history(self, signer=None, **changes) -> str:
        payload = msgspec.json.encode(self.claims(**changes))
        return sign_compact(payload, signer or self.c, typ=KEY_HISTORY_TYP)


@pytest.fixture(scope="module")
def ring():
    return Ring()


def artifact(signer, *, typ=RECEIPT_TYP, iat, **claims):
    body = {"iss": ISSUER, "iat": int(iat.timestamp()), "jti": "rcp_1", **claims}
    return sign_compact(msgspec.json.encode(body), signer, typ=typ)


def verified(ring) -> KeyHistory:
    return verify_key_history(ring.history(), now=NOW)


def test_claims_list_every_key_with_its_period_oldest_first(ring):
    claims = ring.claims()
    assert claims["iss"] == ISSUER
    assert claims["iat"] == int((NOW - 10 * DAY).timestamp())
    assert [k["jwk"]["kid"] for k in claims["keys"]] == [ring.a.kid, ring.b.kid, ring.c.kid]
    assert claims["keys"][0]["not_after"] == int((NOW - 20 * DAY).timestamp())
    assert claims["keys"][2]["not_after"] is None
    assert all(k["signs"] == list(PURPOSES) for k in claims["keys"])
    assert set(claims["keys"][0]["jwk"]) == {"kty", "crv", "x", "kid", "alg", "use"}


def test_the_typs_we_sign_are_the_registrys():
    assert TYP_PURPOSES == {
        CONSENT_TOKEN_TYP: "tokens",
        RECEIPT_TYP: "receipts",
        ASSERTION_TYP: "assertions",
        CHECKPOINT_TYP: "checkpoints",
        STATUS_LIST_TYP: "status_lists",
        TAKEDOWN_TYP: "notices",
    }


def test_a_history_verifies_and_resolves_each_key_in_its_period(ring):
    history = verified(ring)
    assert (history.issuer, history.signed_by) == (ISSUER, ring.c.kid)
    for signer, start, end in ring.periods:
        moment = (end or NOW) - DAY
        result = verify_signed(artifact(signer, iat=moment), history)
        assert (result.kid, result.purpose, result.claims["jti"]) == (
            signer.kid,
            "receipts",
            "rcp_1",
        )
        assert start < moment


@pytest.mark.parametrize(
    ("key", "moment"),
    [("a", NOW - 19 * DAY), ("a", NOW - 31 * DAY), ("b", NOW - 5 * DAY), ("c", NOW - 11 * DAY)],
    ids=["after-its-period", "before-its-period", "after-rotation", "before-activation"],
)
def test_an_iat_outside_the_keys_period_is_invalid(ring, key, moment):
    with pytest.raises(KeyNotValidAtIat) as info:
        verify_signed(artifact(getattr(ring, key), iat=moment), verified(ring))
    assert info.value.code == "key_not_valid_at_iat"
    assert "signed only from" in info.value.message


def test_the_leeway_applies_at_both_ends_of_a_period(ring):
    history = verified(ring)
    end = NOW - 20 * DAY
    verify_signed(artifact(ring.a, iat=end + timedelta(seconds=5)), history)
    with pytest.raises(KeyNotValidAtIat):
        verify_signed(artifact(ring.a, iat=end + timedelta(seconds=6)), history)
    verify_signed(artifact(ring.a, iat=end + timedelta(seconds=30)), history, leeway_seconds=30)


def test_an_unknown_kid_is_invalid(ring):
    stranger = LocalSigner.generate("EdDSA")
    with pytest.raises(UnknownSigningKey) as info:
        verify_signed(artifact(stranger, iat=NOW), verified(ring))
    assert info.value.code == "unknown_key"


def test_a_listed_kid_with_another_keys_signature_is_invalid(ring):
    forged = artifact(LocalSigner.generate("EdDSA"), iat=NOW)
    header = json.loads(b64url_decode(forged.split(".")[0]))
    header["kid"] = ring.c.kid
    token = b64url_encode(json.dumps(header).encode()) + "." + forged.split(".", 1)[1]
    with pytest.raises(SignedArtifactError) as info:
        verify_signed(token, verified(ring))
    assert info.value.code == "signature_invalid"


def _tamper(token: str, change) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    change(claims)
    return f"{header}.{b64url_encode(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["keys"][0].update(not_after=c["keys"][0]["not_after"] + 86400),
        lambda c: c["keys"].pop(0),
        lambda c: c.update(iss="https://evil.example"),
        lambda c: c["keys"][1].update(signs=[]),
    ],
    ids=["period-stretched", "key-dropped", "issuer-changed", "uses-changed"],
)
def test_a_tampered_history_is_refused(ring, change):
    with pytest.raises(KeyHistorySignatureInvalid) as info:
        verify_key_history(_tamper(ring.history(), change), now=NOW)
    assert info.value.code == "key_history_signature_invalid"


def test_a_history_signed_by_a_key_it_does_not_list_is_refused(ring):
    with pytest.raises(KeyHistorySignatureInvalid, match="not signed by a key it lists"):
        verify_key_history(ring.history(LocalSigner.generate("EdDSA")), now=NOW)


def test_a_history_signed_by_a_key_outside_its_period_is_refused(ring):
    # A, retired twenty days ago, cannot have signed a history issued ten days ago.
    with pytest.raises(KeyHistorySignatureInvalid, match="signed only from"):
        verify_key_history(ring.history(ring.a), now=NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iat": int((NOW + DAY).timestamp())}, "issued in the future"),
        ({"iat": int((NOW - 15 * DAY).timestamp())}, "starts signing after the history"),
        ({"keys": []}, "claims are not valid"),
        ({"iat": 1.5}, "claims are not valid"),
    ],
    ids=["future", "key-after-history", "no-keys", "float-iat"],
)
def test_inconsistent_histories_are_malformed(ring, changes, message):
    with pytest.raises(KeyHistoryMalformed, match=message):
        verify_key_history(ring.history(**changes), now=NOW)


def test_entries_must_be_public_keys_named_by_their_thumbprint(ring):
    claims = ring.claims()
    claims["keys"][0]["jwk"]["kid"] = ring.b.kid
    with pytest.raises(KeyHistoryMalformed, match="thumbprint"):
        verify_key_history(
            sign_compact(msgspec.json.encode(claims), ring.c, typ=KEY_HISTORY_TYP), now=NOW
        )
    claims = ring.claims()
    claims["keys"].append(dict(claims["keys"][0]))
    with pytest.raises(KeyHistoryMalformed, match="listed twice"):
        verify_key_history(
            sign_compact(msgspec.json.encode(claims), ring.c, typ=KEY_HISTORY_TYP), now=NOW
        )
    claims = ring.claims()
    claims["keys"][0]["not_after"] = None
    with pytest.raises(KeyHistoryMalformed, match="more than one key"):
        verify_key_history(
            sign_compact(msgspec.json.encode(claims), ring.c, typ=KEY_HISTORY_TYP), now=NOW
        )


def test_the_wrong_typ_is_refused(ring):
    token = sign_compact(msgspec.json.encode(ring.claims()), ring.c, typ="JWT")
    with pytest.raises(KeyHistorySignatureInvalid, match="typ"):
        verify_key_history(token, now=NOW)


def test_an_independent_jose_library_reads_the_history_and_what_it_lists(ring):
    token = ring.history()
    signer_kid = jwt.get_unverified_header(token)["kid"]
    unverified = jwt.decode(token, options={"verify_signature": False})
    by_kid = {entry["jwk"]["kid"]: entry for entry in unverified["keys"]}
    claims = jwt.decode(token, key=jwt.PyJWK(by_kid[signer_kid]["jwk"]).key, algorithms=["EdDSA"])
    assert claims == unverified
    old = artifact(ring.b, iat=NOW - 15 * DAY)
    entry = by_kid[jwt.get_unverified_header(old)["kid"]]
    decoded = jwt.decode(old, key=jwt.PyJWK(entry["jwk"]).key, algorithms=[entry["jwk"]["alg"]])
    assert entry["not_before"] <= decoded["iat"] <= entry["not_after"]


def test_status_lists_check_the_period_with_a_history(ring):
    def signed_list(signer, issued_at):
        claims = status_list_claims(
            uri=f"{ISSUER}/v1/status-lists/1",
            issuer=ISSUER,
            status_list=StatusList(16),
            issued_at=issued_at,
            ttl_seconds=300,
        )
        return sign_compact(msgspec.json.encode(claims), signer, typ=STATUS_LIST_TYP)

    history = verified(ring)
    good = verify_status_list_token(signed_list(ring.a, NOW - 25 * DAY), jwks=history)
    assert good.issued_at == int((NOW - 25 * DAY).timestamp())
    with pytest.raises(StatusListKeyNotValidError) as info:
        verify_status_list_token(signed_list(ring.a, NOW - 5 * DAY), jwks=history)
    assert info.value.code == "key_not_valid_at_iat"


# The command line.


def run(argv):
    out = io.StringIO()
    code = main(argv, stdout=out)
    return code, out.getvalue()


@pytest.fixture
def history_file(ring, tmp_path):
    path = tmp_path / "registry-keys.jwt"
    path.write_text(ring.history())
    return path


def test_keys_command_lists_the_periods(ring, history_file):
    code, out = run(["keys", str(history_file)])
    assert code == 0, out
    assert out.startswith("key history: valid\n")
    assert f"key {ring.c.kid} (EdDSA): signed " in out
    assert " to now - tokens, receipts" in out

    code, out = run(["keys", str(history_file), "--json"])
    document = json.loads(out)
    assert (document["result"], document["signed_by"]) == ("valid", ring.c.kid)
    assert [k["kid"] for k in document["keys"]] == [ring.a.kid, ring.b.kid, ring.c.kid]


def test_keys_command_refuses_a_tampered_history(ring, tmp_path):
    path = tmp_path / "tampered.jwt"
    path.write_text(_tamper(ring.history(), lambda c: c["keys"].pop(0)))
    code, out = run(["keys", str(path)])
    assert code == 1
    assert out.startswith("key history: REFUSED key_history_signature_invalid")


def test_signed_command_verifies_old_artifacts_and_says_why_not(ring, history_file, tmp_path):
    receipt = tmp_path / "receipt.jwt"
    receipt.write_text(artifact(ring.a, iat=NOW - 25 * DAY))
    code, out = run(["signed", str(receipt), "--keys", str(history_file), "--json"])
    outcome = json.loads(out)
    assert (code, outcome["result"], outcome["kid"]) == (0, "valid", ring.a.kid)
    assert outcome["period_checked"] is True

    backdated = artifact(ring.c, typ=CHECKPOINT_TYP, iat=NOW - 25 * DAY, tree_size=3)
    code, out = run(["signed", backdated, "--keys", str(history_file)])
    assert code == 1
    assert out.startswith("key_not_valid_at_iat\n")

    code, out = run(["signed", backdated, "--keys", str(history_file), "--typ", RECEIPT_TYP])
    assert (code, out.splitlines()[0]) == (1, "malformed")


def test_signed_command_with_a_jwks_checks_the_signature_only(ring, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ring.c.public_jwk()]}))
    code, out = run(["signed", artifact(ring.c, iat=NOW - 25 * DAY), "--jwks", str(jwks)])
    assert code == 0, out
    assert "a JWKS has no signing periods" in out
    code, out = run(["signed", artifact(ring.a, iat=NOW - 25 * DAY), "--jwks", str(jwks)])
    assert (code, out.splitlines()[0]) == (1, "unknown_key")


def test_a_refused_history_stops_every_command_with_64(ring, tmp_path, capsys):
    path = tmp_path / "tampered.jwt"
    path.write_text(_tamper(ring.history(), lambda c: c.update(iss="https://evil.example")))
    for argv in (
        ["signed", artifact(ring.c, iat=NOW), "--keys", str(path)],
        ["token", "a.b.c", "--keys", str(path)],
    ):
        code, out = run(argv)
        assert (code, out) == (64, "")
        assert "refused (key_history_signature_invalid)" in capsys.readouterr().err


def test_token_command_takes_the_history(ring, history_file):
    def consent_token(signer, moment):
        claims = build_claims(
            issuer=ISSUER,
            subject="subj-1",
            audience="cl_gen",
            consent_id="cns_1",
            assets=[TokenAsset(id="ast_1", sha256="a" * 64)],
            uses=["reference.generate"],
            status_idx=1,
            status_uri=f"{ISSUER}/v1/status-lists/1",
            now=moment,
            ttl=timedelta(days=400),
            not_after=moment + timedelta(days=400),
        )
        return sign_compact(msgspec.json.encode(claims), signer, typ=CONSENT_TOKEN_TYP)

    code, out = run(
        ["token", consent_token(ring.b, NOW - 15 * DAY), "--keys", str(history_file), "--json"]
    )
    assert (code, json.loads(out)["reasons"]) == (2, ["status_unknown"])
    code, out = run(
        ["token", consent_token(ring.b, NOW - 5 * DAY), "--keys", str(history_file), "--json"]
    )
    assert (code, json.loads(out)["result"]) == (1, "key_not_valid_at_iat")


def test_jwks_and_keys_are_alternatives(history_file, tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["token", "a.b.c", "--keys", str(history_file), "--jwks", str(history_file)])
    assert caught.value.code == 64
