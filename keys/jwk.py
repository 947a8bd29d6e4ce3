"""Public JSON Web Keys (RFC 7517/7518): export, strict import and RFC 7638 thumbprints.

Only public signing keys pass through here. A JWK that carries any private member is
rejected outright, so a misconfigured client cannot make us store or echo a private key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keys.errors import InvalidJWK, MalformedJWS

PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# Below 2048 bits RSA is breakable in practice; above 16384 bits verification becomes a
# denial-of-service lever for whoever chooses the key.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EC_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384"}
_REQUIRED_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_KID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url: no padding, no whitespace, no other alphabet, canonical trailing bits.

    Raises MalformedJWS, so each encoding of a value has exactly one accepted form.
    """
    if _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise MalformedJWS("value is not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise MalformedJWS("value is not canonical base64url")
    return data


def is_valid_kid(kid: object) -> bool:
    """True for 1 to 128 characters of ``[A-Za-z0-9_.-]``; checked before any lookup."""
    return isinstance(kid, str) and _KID.fullmatch(kid) is not None


def _uint_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public members of ``key`` as a JWK (no ``kid``, ``alg`` or ``use``)."""
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES.get(key.curve.name)
        if crv is None:
            raise InvalidJWK(f"unsupported elliptic curve {key.curve.name}")
        size = _EC_CURVES[crv][1]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {
            "kty": "RSA",
            "n": b64url_encode(_uint_bytes(rsa_numbers.n)),
            "e": b64url_encode(_uint_bytes(rsa_numbers.e)),
        }
    raise InvalidJWK(f"unsupported key type {type(key).__name__}")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    _require_mapping(jwk)
    kty = _member(jwk, "kty")
    required = _REQUIRED_MEMBERS.get(kty)
    if required is None:
        raise InvalidJWK("unsupported kty; expected OKP, EC or RSA")
    canonical = {name: _member(jwk, name) for name in required}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(text.encode("utf-8")).digest())


def load_public_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Import a public signing JWK: OKP/Ed25519, EC P-256/P-384, or RSA of 2048+ bits."""
    _require_mapping(jwk)
    private = sorted(_PRIVATE_MEMBERS.intersection(jwk))
    if private:
        raise InvalidJWK(f"JWK carries private member(s) {', '.join(private)}; send the public key")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise InvalidJWK("JWK 'use' must be 'sig' for a signing key")
    kty = _member(jwk, "kty")
    if kty == "OKP":
        return _load_okp(jwk)
    if kty == "EC":
        return _load_ec(jwk)
    if kty == "RSA":
        return _load_rsa(jwk)
    raise InvalidJWK("unsupported kty; expected OKP, EC or RSA")


def _load_okp(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if _member(jwk, "crv") != "Ed25519":
        raise InvalidJWK("unsupported OKP curve; expected Ed25519")
    x = _bytes_member(jwk, "x")
    if len(x) != 32:  # noqa: PLR2004 - Ed25519 public keys are 32 bytes (RFC 8037)
        raise InvalidJWK("Ed25519 'x' must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(x)


def _load_ec(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    crv = _member(jwk, "crv")
    if crv not in _EC_CURVES:
        raise InvalidJWK("unsupported EC curve; expected P-256 or P-384")
    curve, size = _EC_CURVES[crv]
    x, y = _bytes_member(jwk, "x"), _bytes_member(jwk, "y")
    if len(x) != size or len(y) != size:
        raise InvalidJWK(f"{crv} coordinates must be {size} bytes each")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
    )
    try:
        return numbers.public_key()
    except ValueError:
        raise InvalidJWK(f"point is not on curve {crv}") from None


def _load_rsa(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    n, e = _bytes_member(jwk, "n"), _bytes_member(jwk, "e")
    if n[:1] == b"\x00" or e[:1] == b"\x00":
        raise InvalidJWK("RSA 'n' and 'e' must not have leading zero octets")
    modulus = int.from_bytes(n, "big")
    if not MIN_RSA_BITS <= modulus.bit_length() <= MAX_RSA_BITS:
        raise InvalidJWK(f"RSA modulus must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits")
    try:
        return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), modulus).public_key()
    except ValueError:
        raise InvalidJWK("RSA public exponent or modulus is invalid") from None


def _require_mapping(jwk: object) -> None:
    if not isinstance(jwk, Mapping):
        raise InvalidJWK("JWK must be a JSON object")


def _member(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidJWK(f"JWK member '{name}' must be a string")
    return value


def _bytes_member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = _member(jwk, name)
    try:
        data = b64url_decode(value)
    except MalformedJWS:
        raise InvalidJWK(f"JWK member '{name}' is not unpadded base64url") from None
    if not data:
        raise InvalidJWK(f"JWK member '{name}' is empty")
    return data
