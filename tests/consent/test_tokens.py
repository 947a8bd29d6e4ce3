"""Consent tokens: claims, signing with the key ring's signer, and verification reasons."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random

import msgspec
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from jwcrypto import jwt as jwcrypto_jwt

from keys import LocalSigner, b64url_decode, b64url_encode, sign_compact
from registry.consent import (
    CONSENT_TOKEN_TYP,
    ConsentError,
    Reason,
    TokenAsset,
    build_claims,
    verify_token,
)
from verifier.statuslist import INVALID, SUSPENDED, VALID

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ISSUER = "https://registry.example"
CLIENT = "gen-client-1"
STATUS_URI = "https://registry.example/v1/status-lists/3"
SHA_A = "a" * 64
SHA_B = "b" * 64
PHASH_A = "f0e1d2c3b4a59687"


@pytest.fixture(scope="module")
def ring():
    """Two registry keys, as the key ring would publish them."""
    return {
        signer.kid: signer
        for signer in (LocalSigner.generate("EdDSA"), LocalSigner.generate("ES256"))
    }


@pytest.fixture(scope="module")
def ed_signer(ring):
    return next(s for s in ring.values() if s.alg == "EdDSA")


@pytest.fixture(scope="module")
def es_signer(ring):
    return next(s for s in ring.values() if s.alg == "ES256")


class Lookups:
    def __init__(self, ring, statuses=None):
        self.ring = ring
        self.statuses = statuses or {}
        self.kids: list[str] = []

    def key(self, kid):
        self.kids.append(kid)
        signer = self.ring.get(kid)
        return signer.public_key() if signer else None

    def status(self, uri, idx):
        if uri != STATUS_URI:
            return None
        return self.statuses.get(idx, VALID)


def _claims(**changes):
    claims = build_claims(
        issuer=ISSUER,
        subject="subj-pseudo-1",
        audience=CLIENT,
        consent_id="cns_1",
        assets=[TokenAsset(id="ast_1", sha256=SHA_A), TokenAsset(id="ast_2", sha256=SHA_B)],
        uses=["reference.generate", "likeness.stylize"],
        status_idx=4242,
        status_uri=STATUS_URI,
        now=NOW,
        ttl=dt.timedelta(minutes=15),
        not_after=NOW + dt.timedelta(days=30),
    )
    claims.update(changes)
    return claims


def _legacy_claims(**changes):
    """Claims as tokens were issued before format 2 (no ``ver``, hashes in clear): such a
    token, signed with a registry key, stays valid until it expires."""
    claims = _claims(**changes)
    del claims["ver"], claims["asset_salt"]
    claims["assets"] = [
        {"id": "ast_1", "sha256": SHA_A, "phash": PHASH_A},
        {"id": "ast_2", "sha256": SHA_B},
    ]
    return claims


def _commit(salt_b64, sha256_hex):
    """The commitment as docs/third-parties.md spells it, computed here independently."""
    salt = base64.urlsafe_b64decode(salt_b64 + "==")
    digest = hashlib.sha256(salt + bytes.fromhex(sha256_hex)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _sign(signer, claims, **extra_headers):
    return sign_compact(
        msgspec.json.encode(claims),
        signer,
        typ=CONSENT_TOKEN_TYP,
        extra_headers=extra_headers or None,
    )


def _raw(header, claims, signer):
    """A token with exactly this header, signed over its bytes by ``signer``."""
    encoded = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(claims).encode())
    )
    return encoded + "." + b64url_encode(signer.sign(encoded.encode()))


def _verify(token, lookups, *, now=NOW, audiences=(CLIENT,), leeway_seconds=5, **kwargs):
    return verify_token(
        token,
        resolve_key=lookups.key,
        issuer=ISSUER,
        audiences=audiences,
        status_of=lookups.status,
        now=now,
        leeway_seconds=leeway_seconds,
        **kwargs,
    )


# Claims.


def test_build_claims():
    claims = _claims()
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": ISSUER,
        "sub": "subj-pseudo-1",
        "aud": CLIENT,
        "iat": iat,
        "nbf": iat,
        "exp": iat + 900,
        "jti": claims["jti"],
        "cid": "cns_1",
        "ver": 2,
        "asset_salt": claims["asset_salt"],
        "assets": [
            {"id": "ast_1", "commit": _commit(claims["asset_salt"], SHA_A)},
            {"id": "ast_2", "commit": _commit(claims["asset_salt"], SHA_B)},
        ],
        "uses": ["reference.generate", "likeness.stylize"],
        "status": {"status_list": {"idx": 4242, "uri": STATUS_URI}},
    }
    assert len(b64url_decode(claims["jti"])) == 16
    assert len({_claims()["jti"] for _ in range(50)}) == 50


def test_new_tokens_carry_no_photo_hash():
    claims = _claims()
    text = json.dumps(claims)
    assert SHA_A not in text
    assert SHA_B not in text
    assert "sha256" not in text
    assert "phash" not in text
    assert len(b64url_decode(claims["asset_salt"])) == 16
    # A fresh salt per token: the same photo commits differently in every token.
    assert len({_claims()["asset_salt"] for _ in range(50)}) == 50
    assert len({_claims()["assets"][0]["commit"] for _ in range(50)}) == 50


def test_exp_never_passes_the_consent_end():
    not_after = NOW + dt.timedelta(minutes=3, seconds=30.9)
    claims = build_claims(
        issuer=ISSUER,
        subject="s",
        audience=CLIENT,
        consent_id="c",
        assets=[TokenAsset(id="a", sha256=SHA_A)],
        uses=["commercial"],
        status_idx=0,
        status_uri=STATUS_URI,
        now=NOW,
        ttl=dt.timedelta(hours=1),
        not_after=not_after,
    )
    assert claims["exp"] == int(NOW.timestamp()) + 210


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ttl": dt.timedelta(0)}, "ttl_invalid"),
        ({"ttl": dt.timedelta(seconds=-5)}, "ttl_invalid"),
        ({"not_after": NOW}, "validity_expired"),
        ({"not_after": NOW - dt.timedelta(days=1)}, "validity_expired"),
        ({"not_after": NOW + dt.timedelta(milliseconds=500)}, "validity_expired"),
        ({"uses": []}, "uses_empty"),
        ({"uses": ["content.extreme"]}, "use_unknown"),
        ({"uses": ["commercial", "commercial"]}, "uses_duplicate"),
        ({"assets": []}, "asset_invalid"),
        ({"assets": [TokenAsset(id="a", sha256="A" * 64)]}, "asset_invalid"),
    ],
)
def test_build_claims_refuses(change, code):
    arguments = {
        "issuer": ISSUER,
        "subject": "s",
        "audience": CLIENT,
        "consent_id": "c",
        "assets": [TokenAsset(id="a", sha256=SHA_A)],
        "uses": ["commercial"],
        "status_idx": 0,
        "status_uri": STATUS_URI,
        "now": NOW,
        "ttl": dt.timedelta(minutes=15),
        "not_after": NOW + dt.timedelta(days=1),
    } | change
    with pytest.raises(ConsentError) as excinfo:
        build_claims(**arguments)
    assert excinfo.value.code == code


# Verification.


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_valid_token(ring, alg):
    signer = next(s for s in ring.values() if s.alg == alg)
    claims = _claims()
    result = _verify(
        _sign(signer, claims), Lookups(ring), use="likeness.stylize", asset_sha256=SHA_B
    )
    assert result.valid
    assert result.reasons == ()
    # As signed, for the caller; typed, for the registry (one struct, verifier.tokens).
    assert result.payload == claims
    assert result.claims is not None
    assert (result.claims.jti, result.claims.cid, result.claims.uses) == (
        claims["jti"],
        claims["cid"],
        claims["uses"],
    )


def test_result_serialises_with_stable_codes(ring, ed_signer):
    token = _sign(ed_signer, _claims(aud="someone-else"))
    encoded = json.loads(msgspec.json.encode(_verify(token, Lookups(ring))))
    assert encoded["valid"] is False
    assert encoded["reasons"] == ["audience"]


def test_the_reason_codes_are_stable():
    # The contract with callers (HTTP, the offline verifier's --json) and with stored gate
    # evidence, which decodes them back into Reason: so spelled out, never derived. A code may
    # be added (here, then in moderation.CONSENT_REASONS), never renamed or removed.
    assert {reason.value for reason in Reason} == {
        "malformed",
        "signature",
        "issuer",
        "expired",
        "not_yet_valid",
        "audience",
        "revoked",
        "suspended",
        "status_unknown",
        "asset_mismatch",
        "use_not_permitted",
    }


def test_alg_none(ring, ed_signer):
    token = _raw(
        {"alg": "none", "typ": CONSENT_TOKEN_TYP, "kid": ed_signer.kid}, _claims(), ed_signer
    )
    unsigned = token.rsplit(".", 1)[0] + "."
    result = _verify(unsigned, Lookups(ring))
    assert (result.valid, result.reasons, result.claims) == (False, (Reason.SIGNATURE,), None)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_our_public_key(h, ring, ed_signer, es_signer, alg):
    for signer in (ed_signer, es_signer):
        for secret in h.public_key_bytes(signer):
            header = {"alg": alg, "typ": CONSENT_TOKEN_TYP, "kid": signer.kid}
            token = h.make_hs256(header, json.dumps(_claims()).encode(), secret)
            result = _verify(token, Lookups(ring))
            assert (result.reasons, result.claims) == ((Reason.SIGNATURE,), None)


def test_hmac_token_is_rejected_before_any_key_lookup(h, ring, ed_signer):
    lookups = Lookups(ring)
    header = {"alg": "HS256", "typ": CONSENT_TOKEN_TYP, "kid": ed_signer.kid}
    _verify(h.make_hs256(header, b"{}", b"secret"), lookups)
    assert lookups.kids == []


def test_signed_with_another_key_under_our_kid(ring, ed_signer):
    stranger = LocalSigner.generate("EdDSA")
    token = _raw(
        {"alg": "EdDSA", "typ": CONSENT_TOKEN_TYP, "kid": ed_signer.kid}, _claims(), stranger
    )
    assert _verify(token, Lookups(ring)).reasons == (Reason.SIGNATURE,)


def test_alg_of_the_other_key_type(ring, ed_signer, es_signer):
    # Our kid for the Ed25519 key, but ES256 in the header: never verify across types.
    token = _raw(
        {"alg": "ES256", "typ": CONSENT_TOKEN_TYP, "kid": ed_signer.kid}, _claims(), es_signer
    )
    assert _verify(token, Lookups(ring)).reasons == (Reason.SIGNATURE,)


def test_a_key_we_do_not_pin(h, ring, rsa_key):
    signer = h.RawSigner(rsa_key, "RS256")
    token = _raw({"alg": "RS256", "typ": CONSENT_TOKEN_TYP, "kid": "rsa-1"}, _claims(), signer)
    lookups = Lookups(ring)
    assert _verify(token, lookups).reasons == (Reason.SIGNATURE,)
    assert lookups.kids == []


def test_header_jwk_jku_x5u_are_never_used(ring, ed_signer):
    stranger = LocalSigner.generate("EdDSA")
    header = {
        "alg": "EdDSA",
        "typ": CONSENT_TOKEN_TYP,
        "kid": ed_signer.kid,
        "jwk": stranger.public_jwk(),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
    }
    assert _verify(_raw(header, _claims(), stranger), Lookups(ring)).reasons == (Reason.SIGNATURE,)
    # With our signature the stray headers change nothing.
    assert _verify(_raw(header, _claims(), ed_signer), Lookups(ring)).valid


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        ("../../x", Reason.SIGNATURE),
        ("k" * 10_000, Reason.SIGNATURE),
        ("", Reason.SIGNATURE),
        ("a/b", Reason.SIGNATURE),
        ("ключ", Reason.SIGNATURE),
        # Not even a string: the header itself is malformed.
        (5, Reason.MALFORMED),
        (None, Reason.MALFORMED),
    ],
)
def test_bad_kid_fails_without_lookup(ring, ed_signer, kid, reason):
    lookups = Lookups(ring)
    token = _raw({"alg": "EdDSA", "typ": CONSENT_TOKEN_TYP, "kid": kid}, _claims(), ed_signer)
    result = _verify(token, lookups)
    assert (result.reasons, result.claims) == ((reason,), None)
    assert lookups.kids == []


def test_unknown_kid(ring, ed_signer):
    token = _raw(
        {"alg": "EdDSA", "typ": CONSENT_TOKEN_TYP, "kid": "retired-key"}, _claims(), ed_signer
    )
    assert _verify(token, Lookups(ring)).reasons == (Reason.SIGNATURE,)


@pytest.mark.parametrize(
    "extra", [{"crit": ["exp"]}, {"crit": ["b64"], "b64": False}, {"crit": []}, {"zip": "DEF"}]
)
def test_headers_that_change_the_reading_are_malformed(ring, ed_signer, extra):
    header = {"alg": "EdDSA", "typ": CONSENT_TOKEN_TYP, "kid": ed_signer.kid, **extra}
    result = _verify(_raw(header, _claims(), ed_signer), Lookups(ring))
    assert (result.reasons, result.claims) == ((Reason.MALFORMED,), None)


@pytest.mark.parametrize("typ", [None, "JWT", "consent-form+jws", "statuslist+jwt"])
def test_wrong_typ(ring, ed_signer, typ):
    header = {"alg": "EdDSA", "kid": ed_signer.kid} | ({"typ": typ} if typ else {})
    assert _verify(_raw(header, _claims(), ed_signer), Lookups(ring)).reasons == (Reason.MALFORMED,)


def test_typ_with_media_type_prefix(ring, ed_signer):
    header = {"alg": "EdDSA", "kid": ed_signer.kid, "typ": "application/Consent+JWT"}
    assert _verify(_raw(header, _claims(), ed_signer), Lookups(ring)).valid


@pytest.mark.parametrize("part", [0, 1, 2])
def test_flipped_character(ring, ed_signer, h, part):
    token = _sign(ed_signer, _claims())
    segments = token.split(".")
    position = sum(len(s) + 1 for s in segments[:part]) + len(segments[part]) // 2
    result = _verify(h.flip(token, position), Lookups(ring))
    assert not result.valid
    assert result.claims is None
    assert result.reasons in {(Reason.SIGNATURE,), (Reason.MALFORMED,)}


def test_flipped_payload_or_signature_character_fails_the_signature(ring, ed_signer, h):
    token = _sign(ed_signer, _claims())
    payload_start = token.index(".") + 1
    signature_start = token.rindex(".") + 1
    for position in (payload_start + 5, signature_start + 5):
        assert _verify(h.flip(token, position), Lookups(ring)).reasons == (Reason.SIGNATURE,)


@pytest.mark.parametrize(
    "claim", ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cid", "assets", "uses", "status"]
)
def test_missing_claim(ring, ed_signer, claim):
    claims = _claims()
    del claims[claim]
    result = _verify(_sign(ed_signer, claims), Lookups(ring))
    assert (result.reasons, result.claims) == ((Reason.MALFORMED,), None)


@pytest.mark.parametrize(
    "change",
    [
        {"uses": "reference.generate"},
        {"exp": "tomorrow"},
        {"exp": True},
        {"cid": 7},
        {"assets": [{"id": "a"}]},
        {"status": {"status_list": {"idx": -1, "uri": STATUS_URI}}},
        {"status": {"status_list": {"idx": "1", "uri": STATUS_URI}}},
        {"status": {}},
        {"aud": [CLIENT, 5]},
    ],
)
def test_ill_typed_claim(ring, ed_signer, change):
    result = _verify(_sign(ed_signer, _claims(**change)), Lookups(ring))
    assert (result.reasons, result.claims) == ((Reason.MALFORMED,), None)


def test_another_audience(ring, ed_signer):
    token = _sign(ed_signer, _claims())
    result = _verify(token, Lookups(ring), audiences=("gen-client-2",))
    assert result.reasons == (Reason.AUDIENCE,)
    assert result.claims is not None
    # A named audience next to the caller's own id.
    assert _verify(token, Lookups(ring), audiences=("gen-client-2", CLIENT)).valid


def test_audience_as_array(ring, ed_signer):
    token = _sign(ed_signer, _claims(aud=["other", CLIENT]))
    assert _verify(token, Lookups(ring)).valid


def test_another_issuer(ring, ed_signer):
    token = _sign(ed_signer, _claims(iss="https://elsewhere.example"))
    assert _verify(token, Lookups(ring)).reasons == (Reason.ISSUER,)


def test_expired_and_use_not_permitted_together(ring, ed_signer):
    token = _sign(ed_signer, _claims())
    later = NOW + dt.timedelta(minutes=16)
    result = _verify(token, Lookups(ring), now=later, use="content.explicit")
    assert result.reasons == (Reason.EXPIRED, Reason.USE_NOT_PERMITTED)
    assert result.claims is not None


def test_expiry_leeway(ring, ed_signer):
    token = _sign(ed_signer, _claims())
    exp = NOW + dt.timedelta(minutes=15)
    assert _verify(token, Lookups(ring), now=exp + dt.timedelta(seconds=4)).valid
    assert _verify(token, Lookups(ring), now=exp + dt.timedelta(seconds=5)).reasons == (
        Reason.EXPIRED,
    )
    assert _verify(token, Lookups(ring), now=exp, leeway_seconds=0).reasons == (Reason.EXPIRED,)
    later = exp + dt.timedelta(seconds=59)
    assert _verify(token, Lookups(ring), now=later, leeway_seconds=60).valid


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_the_leeway_applies_alike_to_nbf_and_iat(ring, ed_signer, claim):
    ahead = int(NOW.timestamp()) + 5
    token = _sign(ed_signer, _claims(**{claim: ahead}))
    assert _verify(token, Lookups(ring)).valid
    assert _verify(token, Lookups(ring), leeway_seconds=4).reasons == (Reason.NOT_YET_VALID,)


def test_not_yet_valid(ring, ed_signer):
    token = _sign(ed_signer, _claims())
    assert _verify(token, Lookups(ring), now=NOW - dt.timedelta(seconds=4)).valid
    result = _verify(token, Lookups(ring), now=NOW - dt.timedelta(minutes=5))
    assert result.reasons == (Reason.NOT_YET_VALID,)
    iat_ahead = _sign(ed_signer, _claims(nbf=int(NOW.timestamp()), iat=int(NOW.timestamp()) + 600))
    assert _verify(iat_ahead, Lookups(ring)).reasons == (Reason.NOT_YET_VALID,)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(INVALID, Reason.REVOKED), (SUSPENDED, Reason.SUSPENDED), (3, Reason.STATUS_UNKNOWN)],
)
def test_status(ring, ed_signer, status, reason):
    token = _sign(ed_signer, _claims())
    assert _verify(token, Lookups(ring, {4242: status})).reasons == (reason,)
    assert _verify(token, Lookups(ring, {4241: status})).valid


def test_status_list_we_do_not_know(ring, ed_signer):
    claims = _claims(status={"status_list": {"idx": 1, "uri": "https://attacker.example/list"}})
    assert _verify(_sign(ed_signer, claims), Lookups(ring)).reasons == (Reason.STATUS_UNKNOWN,)


def test_asset_binding_by_commitment(ring, ed_signer):
    token = _sign(ed_signer, _claims())
    assert _verify(token, Lookups(ring), asset_sha256=SHA_A).valid
    assert _verify(token, Lookups(ring), asset_sha256=SHA_B).valid
    assert _verify(token, Lookups(ring), asset_sha256="c" * 64).reasons == (Reason.ASSET_MISMATCH,)


def test_a_commitment_under_another_salt_does_not_bind(ring, ed_signer):
    claims = _claims()
    other = _claims()["asset_salt"]
    # The commitment of the right photo, but under a salt the token does not carry.
    claims["assets"] = [{"id": "ast_1", "commit": _commit(other, SHA_A)}]
    token = _sign(ed_signer, claims)
    assert _verify(token, Lookups(ring), asset_sha256=SHA_A).reasons == (Reason.ASSET_MISMATCH,)


def test_a_token_issued_before_format_2_still_verifies_and_binds(ring, ed_signer):
    token = _sign(ed_signer, _legacy_claims())
    result = _verify(token, Lookups(ring), asset_sha256=SHA_A)
    assert result.valid
    assert result.claims is not None
    assert result.claims.ver == 1
    assert _verify(token, Lookups(ring), asset_sha256=SHA_B).valid
    assert _verify(token, Lookups(ring), asset_sha256="c" * 64).reasons == (Reason.ASSET_MISMATCH,)
    expired = _verify(token, Lookups(ring), now=NOW + dt.timedelta(hours=1))
    assert expired.reasons == (Reason.EXPIRED,)


@pytest.mark.parametrize(
    "change",
    [
        # Format 2 with a hash in clear, or without its salt or a commitment.
        lambda c: c["assets"][0].update(sha256=SHA_A),
        lambda c: c["assets"][0].update(phash=PHASH_A),
        lambda c: c.pop("asset_salt"),
        lambda c: c.update(asset_salt="c2hvcnQ"),
        lambda c: c.update(asset_salt="not base64url!"),
        lambda c: c["assets"][0].pop("commit"),
        lambda c: c["assets"][0].update(commit="c2hvcnQ"),
        lambda c: c["assets"][0].update(commit="é" * 43),
        # A format we do not know, and format 1 with a salt or a commitment.
        lambda c: c.update(ver=3),
        lambda c: c.update(ver="2"),
        lambda c: (c.pop("ver"), c.pop("asset_salt")),
    ],
)
def test_a_token_mixing_formats_is_malformed(ring, ed_signer, change):
    claims = _claims()
    change(claims)
    result = _verify(_sign(ed_signer, claims), Lookups(ring), asset_sha256=SHA_A)
    assert (result.reasons, result.claims) == ((Reason.MALFORMED,), None)


def test_a_legacy_token_with_a_commitment_is_malformed(ring, ed_signer):
    claims = _legacy_claims()
    claims["assets"][0]["commit"] = _claims()["assets"][0]["commit"]
    result = _verify(_sign(ed_signer, claims), Lookups(ring))
    assert (result.reasons, result.claims) == ((Reason.MALFORMED,), None)


@pytest.mark.parametrize("legacy", [False, True], ids=["format-2", "format-1"])
@pytest.mark.parametrize("status", [INVALID, SUSPENDED])
def test_a_revoked_token_is_shown_without_what_binds_its_assets(ring, ed_signer, legacy, status):
    claims = _legacy_claims() if legacy else _claims()
    token = _sign(ed_signer, claims)
    result = _verify(token, Lookups(ring, {4242: status}), asset_sha256=SHA_A)
    assert not result.valid
    assert result.payload is not None
    assert result.payload["assets"] == [{"id": "ast_1"}, {"id": "ast_2"}]
    assert "asset_salt" not in result.payload
    shown = json.dumps(result.payload)
    commits = [a["commit"] for a in claims["assets"] if "commit" in a]
    for secret in (SHA_A, SHA_B, PHASH_A, *commits):
        assert secret not in shown
    # The rest is as signed; a valid token is shown whole.
    assert result.payload["jti"] == claims["jti"]
    assert _verify(token, Lookups(ring)).payload == claims


@pytest.mark.parametrize("arguments", [{"asset_sha256": "A" * 64}, {"asset_sha256": "abc"}])
def test_bad_asset_arguments_are_the_callers_error(ring, ed_signer, arguments):
    with pytest.raises(ConsentError) as excinfo:
        _verify(_sign(ed_signer, _claims()), Lookups(ring), **arguments)
    assert excinfo.value.code == "asset_invalid"


def test_every_reason_at_once(ring, ed_signer):
    token = _sign(ed_signer, _claims(iss="https://elsewhere.example"))
    result = _verify(
        token,
        Lookups(ring, {4242: INVALID}),
        now=NOW + dt.timedelta(hours=1),
        audiences=("other",),
        use="commercial",
        asset_sha256="c" * 64,
    )
    assert result.reasons == (
        Reason.ISSUER,
        Reason.EXPIRED,
        Reason.AUDIENCE,
        Reason.REVOKED,
        Reason.ASSET_MISMATCH,
        Reason.USE_NOT_PERMITTED,
    )
    assert [str(reason) for reason in result.reasons] == [
        "issuer",
        "expired",
        "audience",
        "revoked",
        "asset_mismatch",
        "use_not_permitted",
    ]


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b",
        "\ud800.\udc00.x",
        "x" * 70_000,
        None,
        b"a.b.c",
        "é" * 10,
        "=.=.=",
    ],
)
def test_garbage_never_raises(ring, token):
    result = _verify(token, Lookups(ring))
    assert (result.valid, result.reasons, result.claims) == (False, (Reason.MALFORMED,), None)


def test_mutated_tokens_never_raise(ring, ed_signer):
    rng = random.Random(11)
    token = _sign(ed_signer, _claims())
    alphabet = "ABCxyz019-_.=+/ \x00é{}\"'"
    for _ in range(2000):
        chars = list(token)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars))
            if rng.random() < 0.5:
                chars[position] = rng.choice(alphabet)
            else:
                del chars[position]
        result = _verify("".join(chars), Lookups(ring))
        assert result.valid is False or "".join(chars) == token
        if not result.valid and Reason.SIGNATURE in result.reasons:
            assert result.claims is None


def test_deeply_nested_header_never_raises(ring):
    header = b64url_encode(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    result = _verify(f"{header}.e30.AA", Lookups(ring))
    assert result.reasons == (Reason.MALFORMED,)


# Independent verification: jwcrypto, given only the JWKS document.


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_token_verifies_with_jwcrypto_and_the_jwks_only(ring, alg):
    signer = next(s for s in ring.values() if s.alg == alg)
    claims = _claims()
    token = _sign(signer, claims)
    jwks_json = json.dumps({"keys": [s.public_jwk() for s in ring.values()]})
    keyset = jwcrypto_jwk.JWKSet.from_json(jwks_json)
    verified = jwcrypto_jwt.JWT(
        jwt=token, key=keyset, algs=["EdDSA", "ES256"], expected_type="JWS", check_claims=False
    )
    assert json.loads(verified.claims) == claims
    assert json.loads(verified.header) == {"alg": alg, "kid": signer.kid, "typ": CONSENT_TOKEN_TYP}


def test_jwcrypto_rejects_a_tampered_token(ring, ed_signer, h):
    token = _sign(ed_signer, _claims())
    tampered = h.flip(token, token.rindex(".") + 5)
    key = jwcrypto_jwk.JWK(**ed_signer.public_jwk())
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature):
        jwcrypto_jwt.JWT(
            jwt=tampered, key=key, algs=["EdDSA"], expected_type="JWS", check_claims=False
        )
    keyset = jwcrypto_jwk.JWKSet.from_json(
        json.dumps({"keys": [s.public_jwk() for s in ring.values()]})
    )
    # Against a key set jwcrypto reports that no key verified it.
    with pytest.raises(jwcrypto_jwt.JWTMissingKey):
        jwcrypto_jwt.JWT(
            jwt=tampered, key=keyset, algs=["EdDSA"], expected_type="JWS", check_claims=False
        )
