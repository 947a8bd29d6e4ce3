"""Detached provenance assertions: sign, verify against a JWKS only, bind to the image."""

from __future__ import annotations

import json

import msgspec
import pytest

from keys.jwk import b64url_decode, b64url_encode
from keys.jws import sign_compact
from keys.signer import LocalSigner
from verifier import (
    AssertionImageMismatch,
    AssertionMalformed,
    AssertionSignatureInvalid,
    ProvenanceClaims,
    sign_assertion,
    verify_assertion,
)
from verifier.report import ConsentRef, DecisionRef

SHA = "cd" * 32


@pytest.fixture(scope="module")
def token_signer():
    return LocalSigner.generate("EdDSA")


@pytest.fixture(scope="module")
def jwks(token_signer):
    return {"keys": [token_signer.public_jwk()]}


@pytest.fixture(scope="module")
def claims():
    return ProvenanceClaims.build(
        iss="https://registry.example",
        jti="out-1",
        sha256=SHA,
        phash="0123456789abcdef",
        generation_id="gen-1",
        consents=[
            ConsentRef(jti="tok-1", status_list_uri="https://registry.example/sl/1", status_idx=3)
        ],
        decision=DecisionRef(id="dec-1", outcome="allowed", policy_version="p1"),
        iat=1_700_000_000,
    )


def reseal(token, signer, *, header=None, payload=None):
    """Re-sign a token with changed header or payload, as an attacker holding ``signer``."""
    parts = token.split(".")
    header = header if header is not None else json.loads(b64url_decode(parts[0]))
    body = payload if payload is not None else b64url_decode(parts[1])
    signing_input = (
        b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(body)
    ).encode()
    return signing_input.decode() + "." + b64url_encode(signer.sign(signing_input))


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_assertion_round_trips(claims, alg):
    signer = LocalSigner.generate(alg)
    token = sign_assertion(claims, signer)

    verified = verify_assertion(token, {"keys": [signer.public_jwk()]}, sha256=SHA)

    assert verified == claims
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": alg, "kid": signer.kid, "typ": "provenance+jwt"}
    assert verified.consent_refs() == (
        ConsentRef(jti="tok-1", status_list_uri="https://registry.example/sl/1", status_idx=3),
    )
    assert verified.decision_ref() == DecisionRef(
        id="dec-1", outcome="allowed", policy_version="p1"
    )


def test_null_decision_is_allowed(token_signer, jwks):
    claims = ProvenanceClaims.build(
        iss="https://r.example",
        jti="o",
        sha256=SHA,
        phash="0" * 16,
        generation_id="g",
        consents=[],
        decision=None,
    )

    verified = verify_assertion(sign_assertion(claims, token_signer), jwks, sha256=None)

    assert verified.decision is None
    assert verified.decision_ref() is None


def test_assertion_about_another_image_is_refused(claims, token_signer, jwks):
    token = sign_assertion(claims, token_signer)

    with pytest.raises(AssertionImageMismatch) as caught:
        verify_assertion(token, jwks, sha256="ef" * 32)

    assert caught.value.code == "assertion_image_mismatch"


def test_key_not_in_the_jwks_is_refused_even_if_the_header_carries_it(claims, token_signer):
    intruder = LocalSigner.generate("EdDSA")
    token = sign_assertion(claims, intruder)
    with_jwk = reseal(
        token,
        intruder,
        header={
            "alg": "EdDSA",
            "kid": intruder.kid,
            "typ": "provenance+jwt",
            "jwk": intruder.public_jwk(),
        },
    )

    for candidate in (token, with_jwk):
        with pytest.raises(AssertionSignatureInvalid) as caught:
            verify_assertion(candidate, {"keys": [token_signer.public_jwk()]}, sha256=SHA)
        assert caught.value.code == "assertion_signature_invalid"


def test_kid_of_a_jwks_key_with_another_keys_signature_is_refused(claims, token_signer, jwks):
    intruder = LocalSigner.generate("EdDSA")
    token = reseal(
        sign_assertion(claims, intruder),
        intruder,
        header={"alg": "EdDSA", "kid": token_signer.kid, "typ": "provenance+jwt"},
    )

    with pytest.raises(AssertionSignatureInvalid, match="signature_invalid"):
        verify_assertion(token, jwks, sha256=SHA)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": "consent+jwt"},
        {"alg": "EdDSA", "typ": "JWT"},
        {"alg": "EdDSA"},
        {"alg": "none", "typ": "provenance+jwt"},
        {"alg": "HS256", "typ": "provenance+jwt"},
        {"alg": "RS256", "typ": "provenance+jwt"},
        {"alg": "EdDSA", "typ": "provenance+jwt", "crit": ["exp"]},
    ],
    ids=["other-typ", "jwt-typ", "no-typ", "none", "hmac", "rs256", "crit"],
)
def test_wrong_typ_or_algorithm_is_refused(claims, token_signer, jwks, header):
    token = reseal(
        sign_assertion(claims, token_signer),
        token_signer,
        header={**header, "kid": token_signer.kid},
    )

    with pytest.raises(AssertionSignatureInvalid) as caught:
        verify_assertion(token, jwks, sha256=SHA)

    assert caught.value.code == "assertion_signature_invalid"


def test_tampered_claims_fail_the_signature(claims, token_signer, jwks):
    header, payload, signature = sign_assertion(claims, token_signer).split(".")
    changed = json.loads(b64url_decode(payload)) | {"generation_id": "gen-2"}
    token = f"{header}.{b64url_encode(json.dumps(changed).encode())}.{signature}"

    with pytest.raises(AssertionSignatureInvalid):
        verify_assertion(token, jwks, sha256=SHA)


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"sha256": "CD" * 32},
        {"phash": "xyz"},
        {"consents": [{"jti": "t", "status": {"status_list": {"idx": -1, "uri": "u"}}}]},
        {"iat": "yesterday"},
    ],
    ids=["unknown-field", "upper-hex", "bad-phash", "negative-idx", "string-iat"],
)
def test_signed_but_malformed_claims_are_refused(claims, token_signer, jwks, change):
    payload = json.dumps(msgspec.to_builtins(claims) | change).encode()
    token = sign_compact(payload, token_signer, typ="provenance+jwt")

    with pytest.raises(AssertionMalformed) as caught:
        verify_assertion(token, jwks, sha256=None)

    assert caught.value.code == "assertion_malformed"


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!.??.**"])
def test_not_a_compact_jws_is_malformed(jwks, token):
    with pytest.raises(AssertionMalformed):
        verify_assertion(token, jwks, sha256=None)


@pytest.mark.parametrize("jwks", [{}, {"keys": "nope"}])
def test_jwks_without_a_keys_list_is_refused(claims, token_signer, jwks):
    with pytest.raises(AssertionSignatureInvalid):
        verify_assertion(sign_assertion(claims, token_signer), jwks, sha256=None)


def test_unusable_jwks_entries_are_skipped_not_fatal(claims, token_signer):
    jwks = {"keys": [{"kty": "oct", "kid": "x", "k": "AAAA"}, "junk", token_signer.public_jwk()]}

    assert verify_assertion(sign_assertion(claims, token_signer), jwks, sha256=SHA) == claims


def test_building_claims_checks_them():
    with pytest.raises(AssertionMalformed):
        ProvenanceClaims.build(
            iss="https://r.example",
            jti="o",
            sha256="not-a-hash",
            phash="0" * 16,
            generation_id="g",
            consents=[],
            decision=None,
        )
