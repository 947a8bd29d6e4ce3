"""Public JWK export, strict import, thumbprints and kid syntax."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwcrypto import jwk as jwcrypto_jwk

from keys import (
    InvalidJWK,
    MalformedJWS,
    b64url_decode,
    b64url_encode,
    is_valid_kid,
    load_public_jwk,
    public_jwk,
    thumbprint,
)

# RFC 7638 §3.1 example key and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
    "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
    "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF"
    "h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(params=["Ed25519", "P-256", "P-384", "RSA"])
def private_key(request, rsa2048):
    return {
        "Ed25519": Ed25519PrivateKey.generate,
        "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "RSA": lambda: rsa2048,
    }[request.param]()


def _spki(key) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_public_jwk_round_trips(private_key):
    exported = public_jwk(private_key.public_key())
    assert set(exported) <= {"kty", "crv", "x", "y", "n", "e"}
    assert _spki(load_public_jwk(exported)) == _spki(private_key.public_key())


def test_thumbprint_matches_jwcrypto(private_key):
    exported = public_jwk(private_key.public_key())
    assert thumbprint(exported) == jwcrypto_jwk.JWK(**exported).thumbprint()


def test_thumbprint_rfc7638_example_ignores_optional_members():
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert thumbprint(jwk) == RFC7638_THUMBPRINT
    assert thumbprint({"e": "AQAB", "n": RFC7638_N, "kty": "RSA"}) == RFC7638_THUMBPRINT


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "AAAA"},
        {"kty": "RSA", "n": RFC7638_N},
        {"kty": "RSA", "n": RFC7638_N, "e": 65537},
        {"crv": "Ed25519", "x": "AAAA"},
        ["kty", "OKP"],
    ],
)
def test_thumbprint_rejects_incomplete_jwk(jwk):
    with pytest.raises(InvalidJWK) as info:
        thumbprint(jwk)
    assert info.value.code == "invalid_jwk"


def _ed25519_jwk() -> dict[str, str]:
    return public_jwk(Ed25519PrivateKey.generate().public_key())


def _p256_jwk() -> dict[str, str]:
    return public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_members_are_rejected_without_echo(member):
    secret = b64url_encode(b"very-secret-private-material")
    jwk = {**_ed25519_jwk(), member: secret}
    with pytest.raises(InvalidJWK) as info:
        load_public_jwk(jwk)
    assert info.value.code == "invalid_jwk"
    assert "private" in str(info.value)
    assert secret not in str(info.value)


def test_full_private_jwk_from_jwcrypto_is_rejected():
    private = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256").export_private(as_dict=True)
    with pytest.raises(InvalidJWK) as info:
        load_public_jwk(private)
    assert private["d"] not in str(info.value)


def _off_curve_p256() -> dict[str, str]:
    jwk = _p256_jwk()
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 1
    return {**jwk, "y": b64url_encode(bytes(y))}


def _rsa_jwk(bits: int) -> dict[str, str]:
    return public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key())


@pytest.mark.parametrize(
    ("jwk", "fragment"),
    [
        ({"kty": "oct", "k": "AAAA"}, "private"),
        ({"kty": "XYZ", "x": "AAAA"}, "kty"),
        ({"x": "AAAA"}, "kty"),
        ({"kty": 1}, "kty"),
        ({"kty": "OKP", "crv": "Ed448", "x": "AAAA"}, "curve"),
        ({"kty": "OKP", "crv": "X25519", "x": "AAAA"}, "curve"),
        ({"kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA"}, "curve"),
        ({"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"}, "curve"),
        ({"kty": "OKP", "crv": "Ed25519"}, "'x'"),
        ({"kty": "OKP", "crv": "Ed25519", "x": 12}, "'x'"),
        ({"kty": "OKP", "crv": "Ed25519", "x": ""}, "empty"),
        ({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes(31))}, "32 bytes"),
        ({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes(32)) + "="}, "base64url"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "ab+/" * 11}, "base64url"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA AAAA"}, "base64url"),
        ({"kty": "EC", "crv": "P-256", "x": b64url_encode(bytes(32))}, "'y'"),
        ({"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"}, "48 bytes"),
        ({"kty": "RSA", "n": RFC7638_N, "e": "AAEAAQ"}, "leading zero"),
        ({"kty": "RSA", "n": "AA" + RFC7638_N[2:], "e": "AQAB"}, "leading zero"),
        ({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "use": "enc"}, "use"),
        ({"kty": "RSA", "n": RFC7638_N, "e": "Ag"}, "exponent"),
    ],
)
def test_invalid_jwks_are_rejected(jwk, fragment):
    with pytest.raises(InvalidJWK) as info:
        load_public_jwk(jwk)
    assert info.value.code == "invalid_jwk"
    assert fragment in str(info.value)


def test_point_not_on_curve_is_rejected():
    with pytest.raises(InvalidJWK, match="not on curve"):
        load_public_jwk(_off_curve_p256())


def test_rsa_1024_is_rejected():
    with pytest.raises(InvalidJWK, match="2048") as info:
        load_public_jwk(_rsa_jwk(1024))
    assert info.value.code == "invalid_jwk"


def test_non_mapping_is_rejected():
    with pytest.raises(InvalidJWK, match="JSON object"):
        load_public_jwk(["kty", "OKP"])  # type: ignore[arg-type]


def test_use_sig_and_extra_members_are_accepted():
    jwk = {**_ed25519_jwk(), "use": "sig", "kid": "k1", "alg": "EdDSA", "x5u": "https://x"}
    assert load_public_jwk(jwk) is not None


@pytest.mark.parametrize("kid", ["a", "A-z_0.9", "x" * 128, RFC7638_THUMBPRINT])
def test_valid_kids(kid):
    assert is_valid_kid(kid)


@pytest.mark.parametrize(
    "kid", ["", "../../x", "a/b", "x" * 129, "k" * 10_000, "kïd", "a b", "a\n", None, 5, b"k"]
)
def test_invalid_kids(kid):
    assert not is_valid_kid(kid)


@pytest.mark.parametrize("text", ["AA==", "AA=", "A", "AB", "a+b/", "AA AA", "AA\n", "Ä"])
def test_b64url_decode_is_strict(text):
    with pytest.raises(MalformedJWS) as info:
        b64url_decode(text)
    assert info.value.code == "malformed"


def test_b64url_round_trip():
    for size in range(8):
        data = bytes(range(250, 250 - size, -1))
        assert b64url_decode(b64url_encode(data)) == data
    assert b64url_encode(b"\xfb\xff") == "-_8"
