"""Compact JWS: round trips, interop with pyjwt, and every way a token can be wrong."""

from __future__ import annotations

import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import (
    ALLOWED_ALGORITHMS,
    KeysError,
    LocalSigner,
    MalformedJWS,
    b64url_encode,
    parse_compact,
    sign_compact,
    verify_compact,
)
from keys.jws import MAX_TOKEN_CHARS

TYP = "test+jwt"
CLAIMS = b'{"sub":"subject-1","n":1}'


@pytest.fixture(params=["EdDSA", "ES256"])
def signer(request):
    return LocalSigner.generate(request.param)


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def resolver_for(*signers):
    keys = {s.kid: s.public_key() for s in signers}
    return lambda header: keys.get(header.get("kid"))


def _raw_token(header: dict | bytes, payload: bytes, signature: bytes) -> str:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return ".".join(b64url_encode(part) for part in (head, payload, signature))


def _signed_raw(header: dict, payload: bytes, sign) -> str:
    signing_input = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode()))}"


def _expect(code: str, token, signer, **kwargs):
    kwargs.setdefault("typ", TYP)
    if "resolve_key" not in kwargs:
        kwargs["resolve_key"] = resolver_for(signer)
    with pytest.raises(KeysError) as info:
        verify_compact(token, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def test_round_trip(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP, extra_headers={"x-extra": [1, 2]})
    verified = verify_compact(token, resolve_key=resolver_for(signer), typ=TYP)
    assert verified.payload == CLAIMS
    assert verified.header == {"alg": signer.alg, "kid": signer.kid, "typ": TYP, "x-extra": [1, 2]}
    assert verified.signing_input == token.rsplit(".", 1)[0].encode()


def test_header_is_compact_json(signer):
    token = sign_compact(b"", signer, typ=TYP)
    header, payload, _, _ = parse_compact(token)
    raw = token.split(".")[0]
    assert raw == b64url_encode(
        f'{{"alg":"{signer.alg}","kid":"{signer.kid}","typ":"{TYP}"}}'.encode()
    )
    assert payload == b""
    assert header["typ"] == TYP


@pytest.mark.parametrize("name", ["alg", "kid", "typ"])
def test_extra_headers_cannot_override_signer(signer, name):
    with pytest.raises(ValueError, match="may not set"):
        sign_compact(CLAIMS, signer, typ=TYP, extra_headers={name: "x"})


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_pyjwt_verifies_our_tokens(alg):
    signer = LocalSigner.generate(alg)
    token = sign_compact(CLAIMS, signer, typ=TYP)
    claims = jwt.decode(token, key=signer.public_key(), algorithms=[alg])
    assert claims == {"sub": "subject-1", "n": 1}
    assert jwt.get_unverified_header(token)["kid"] == signer.kid


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("EdDSA", Ed25519PrivateKey.generate),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("ES384", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("PS256", None),
        ("RS256", None),
    ],
)
def test_we_verify_pyjwt_tokens(alg, make_key, rsa2048):
    key = make_key() if make_key else rsa2048
    token = jwt.encode({"sub": "s"}, key, algorithm=alg, headers={"typ": TYP, "kid": "k1"})
    verified = verify_compact(token, resolve_key=lambda _h: key.public_key(), typ=TYP)
    assert json.loads(verified.payload) == {"sub": "s"}


def test_pss_with_wrong_salt_length_is_rejected(rsa2048):
    header = {"alg": "PS256", "typ": TYP}

    def sign(data: bytes) -> bytes:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0)
        return rsa2048.sign(data, pss, hashes.SHA256())

    token = _signed_raw(header, CLAIMS, sign)
    _expect("signature_invalid", token, None, resolve_key=lambda _h: rsa2048.public_key())


def test_alg_none_is_rejected(signer):
    header = {"alg": "none", "kid": signer.kid, "typ": TYP}
    _expect("algorithm_not_allowed", _raw_token(header, CLAIMS, b""), signer)
    _expect("algorithm_not_allowed", _raw_token(header, CLAIMS, b"sig"), signer)
    _expect("algorithm_not_allowed", _raw_token(header, CLAIMS, b""), signer, algorithms=["none"])


@pytest.mark.parametrize(
    "encoding",
    [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ],
)
def test_hs256_keyed_with_our_public_key_is_rejected(encoding):
    signer = LocalSigner.generate("EdDSA")
    secret = signer.public_key().public_bytes(*encoding)
    header = {"alg": "HS256", "kid": signer.kid, "typ": TYP}
    token = _signed_raw(header, CLAIMS, lambda d: hmac.new(secret, d, hashlib.sha256).digest())
    _expect("algorithm_not_allowed", token, signer)
    _expect("algorithm_not_allowed", token, signer, algorithms=["HS256", "EdDSA"])


def test_alg_outside_callers_list_is_rejected(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP)
    other = "ES256" if signer.alg == "EdDSA" else "EdDSA"
    _expect("algorithm_not_allowed", token, signer, algorithms=[other])


@pytest.mark.parametrize("alg", [None, 7, ["EdDSA"]])
def test_alg_must_be_a_string(signer, alg):
    header = {"kid": signer.kid, "typ": TYP} | ({} if alg is None else {"alg": alg})
    _expect("malformed", _raw_token(header, CLAIMS, b"x"), signer)


def test_algorithm_must_fit_the_resolved_key(rsa2048):
    ed = LocalSigner.generate("EdDSA")
    es = LocalSigner.generate("ES256")
    p384 = ec.generate_private_key(ec.SECP384R1())
    # An EdDSA token presented with an EC key, and the other way round.
    _expect(
        "algorithm_not_allowed",
        sign_compact(CLAIMS, ed, typ=TYP),
        es,
        resolve_key=lambda _h: es.public_key(),
    )
    _expect(
        "algorithm_not_allowed",
        sign_compact(CLAIMS, es, typ=TYP),
        ed,
        resolve_key=lambda _h: ed.public_key(),
    )
    # ES384 with a P-256 key, ES256 with a P-384 key, RS256 with an EC key.
    es384 = jwt.encode({}, p384, algorithm="ES384", headers={"typ": TYP})
    _expect("algorithm_not_allowed", es384, es, resolve_key=lambda _h: es.public_key())
    fake256 = _signed_raw({"alg": "ES256", "typ": TYP}, CLAIMS, lambda _d: bytes(64))
    _expect("algorithm_not_allowed", fake256, None, resolve_key=lambda _h: p384.public_key())
    rs = jwt.encode({}, rsa2048, algorithm="RS256", headers={"typ": TYP})
    _expect("algorithm_not_allowed", rs, es, resolve_key=lambda _h: es.public_key())


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_1024_key_is_rejected(alg):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    pad = (
        padding.PKCS1v15()
        if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )
    token = _signed_raw(
        {"alg": alg, "typ": TYP}, CLAIMS, lambda d: weak.sign(d, pad, hashes.SHA256())
    )
    _expect("algorithm_not_allowed", token, None, resolve_key=lambda _h: weak.public_key())


def test_flipped_payload_character_fails_signature(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP)
    head, payload, sig = token.split(".")
    flipped = payload[:3] + ("A" if payload[3] != "A" else "B") + payload[4:]
    _expect("signature_invalid", f"{head}.{flipped}.{sig}", signer)


def test_every_single_character_change_is_rejected(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP)
    resolve = resolver_for(signer)
    for i, char in enumerate(token):
        if char == ".":
            continue
        tampered = token[:i] + ("B" if char == "A" else "A") + token[i + 1 :]
        with pytest.raises(KeysError):
            verify_compact(tampered, resolve_key=resolve, typ=TYP)


def test_signature_from_another_key_is_rejected(signer):
    other = LocalSigner.generate(signer.alg)
    token = sign_compact(CLAIMS, other, typ=TYP)
    _expect("signature_invalid", token, signer, resolve_key=lambda _h: signer.public_key())


def test_der_encoded_ecdsa_signature_is_rejected():
    key = ec.generate_private_key(ec.SECP256R1())
    header = {"alg": "ES256", "typ": TYP}
    token = _signed_raw(header, CLAIMS, lambda d: key.sign(d, ec.ECDSA(hashes.SHA256())))
    _expect("signature_invalid", token, None, resolve_key=lambda _h: key.public_key())


def test_truncated_eddsa_signature_is_rejected(signer):
    head, payload, sig = sign_compact(CLAIMS, signer, typ=TYP).split(".")
    _expect("signature_invalid", f"{head}.{payload}.", signer)
    _expect("signature_invalid", f"{head}.{payload}.{sig[:40]}", signer)


def test_crit_header_is_rejected(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP, extra_headers={"crit": ["b64"], "b64": False})
    _expect("crit_unsupported", token, signer)
    token = sign_compact(CLAIMS, signer, typ=TYP, extra_headers={"crit": []})
    _expect("crit_unsupported", token, signer)


@pytest.mark.parametrize(
    "members",
    [
        # Same value twice: refused for the duplicate itself, not for what either copy says.
        '"alg":"{alg}","kid":"{kid}","typ":"{typ}","alg":"{alg}"',
        # Different values: one reader would take the first, another the last.
        '"alg":"{alg}","kid":"{kid}","typ":"{typ}","alg":"none"',
        '"alg":"{alg}","kid":"someone-else","typ":"{typ}","kid":"{kid}"',
        '"alg":"{alg}","kid":"{kid}","typ":"{typ}","typ":"other+jwt"',
    ],
)
def test_header_with_a_duplicate_member_name_is_rejected_even_when_signed(signer, members):
    def signed(header: str) -> str:
        head = b64url_encode(header.encode())
        signing_input = f"{head}.{b64url_encode(CLAIMS)}"
        return f"{signing_input}.{b64url_encode(signer.sign(signing_input.encode()))}"

    names = {"alg": signer.alg, "kid": signer.kid, "typ": TYP}
    duplicated = signed("{" + members.format(**names) + "}")
    with pytest.raises(MalformedJWS, match="duplicate member name"):
        parse_compact(duplicated)
    _expect("malformed", duplicated, signer)
    # The same header without the repeat verifies: the duplicate alone is what is refused.
    single = signed('{{"alg":"{alg}","kid":"{kid}","typ":"{typ}"}}'.format(**names))
    assert verify_compact(single, resolve_key=resolver_for(signer), typ=TYP).payload == CLAIMS


def test_wrong_or_missing_typ_is_rejected(signer):
    _expect("typ_mismatch", sign_compact(CLAIMS, signer, typ="other+jwt"), signer)
    _expect("typ_mismatch", sign_compact(CLAIMS, signer, typ="JWT"), signer)
    header = {"alg": signer.alg, "kid": signer.kid}
    _expect("typ_mismatch", _signed_raw(header, CLAIMS, signer.sign), signer)
    header = {"alg": signer.alg, "kid": signer.kid, "typ": 5}
    _expect("typ_mismatch", _signed_raw(header, CLAIMS, signer.sign), signer)
    nested = sign_compact(CLAIMS, signer, typ="application/x/test+jwt")
    _expect("typ_mismatch", nested, signer, typ="x/test+jwt")


@pytest.mark.parametrize(
    ("signed", "expected"),
    [
        ("TEST+JWT", "test+jwt"),
        ("application/test+jwt", "test+jwt"),
        ("test+jwt", "Application/Test+JWT"),
    ],
)
def test_typ_is_case_insensitive_and_prefix_tolerant(signer, signed, expected):
    token = sign_compact(CLAIMS, signer, typ=signed)
    assert verify_compact(token, resolve_key=resolver_for(signer), typ=expected).payload == CLAIMS


def test_unknown_kid_is_rejected(signer):
    token = sign_compact(CLAIMS, signer, typ=TYP)
    _expect("unknown_key", token, signer, resolve_key=resolver_for(LocalSigner.generate("EdDSA")))


def test_jku_and_x5u_reach_only_the_resolver(signer):
    seen = []

    def resolve(header):
        seen.append(dict(header))

    extra = {"jku": "http://127.0.0.1:9/jwks", "x5u": "http://127.0.0.1:9/cert"}
    token = sign_compact(CLAIMS, signer, typ=TYP, extra_headers=extra)
    _expect("unknown_key", token, signer, resolve_key=resolve)
    assert seen[0]["jku"] == extra["jku"]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJFZERTQSJ9.e30",
        "eyJhbGciOiJFZERTQSJ9=.e30.AAAA",
        "eyJhbGciOiJFZERTQSJ9.e30=.AAAA",
        "eyJhbGciOiJFZERTQSJ9.e3+.AAAA",
        "eyJhbGciOiJFZERTQSJ9 .e30.AAAA",
        "eyJhbGciOiJFZERTQSJ9.e30.AA\u00e9A",
        _raw_token(b"[1,2]", CLAIMS, b"x"),
        _raw_token(b'"alg"', CLAIMS, b"x"),
        _raw_token(b"{not json", CLAIMS, b"x"),
        _raw_token(b"\xff\xfe{}", CLAIMS, b"x"),
        _raw_token(b'{"alg":"EdDSA","alg":"none"}', CLAIMS, b"x"),
        _raw_token(b'{"alg":"EdDSA","x":{"a":1,"a":2}}', CLAIMS, b"x"),
        _raw_token(b'{"alg":"EdDSA","n":NaN}', CLAIMS, b"x"),
        _raw_token(b'{"alg":"EdDSA","n":' + b"[" * 5000 + b"]" * 5000 + b"}", b"", b"x"),
        "a" * (MAX_TOKEN_CHARS - 1) + ".b.c",
    ],
)
def test_malformed_tokens_are_rejected(token):
    with pytest.raises(MalformedJWS) as info:
        verify_compact(token, resolve_key=lambda _h: None, typ=TYP)
    assert info.value.code == "malformed"


def test_non_string_token_is_rejected():
    with pytest.raises(MalformedJWS):
        parse_compact(b"a.b.c")  # type: ignore[arg-type]


def test_allow_list_has_no_none_or_hmac():
    assert {"EdDSA", "ES256", "ES384", "PS256", "RS256"} == ALLOWED_ALGORITHMS
