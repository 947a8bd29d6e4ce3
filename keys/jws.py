"""Compact JWS (RFC 7515) with pinned algorithms.

Verification never trusts the header to choose a key or fetch one: ``jku``/``x5u`` are
ignored here, and the caller's resolver decides which key (if any) the header names. The
algorithm must be on both the caller's list and ours, and must fit the resolved key's type,
so neither ``none``, HMAC keyed with a public key, nor a cross-algorithm swap can verify.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from keys.errors import (
    AlgorithmNotAllowed,
    CritUnsupported,
    MalformedJWS,
    SignatureInvalid,
    TypMismatch,
    UnknownKey,
)
from keys.jwk import MAX_RSA_BITS, MIN_RSA_BITS, b64url_decode, b64url_encode

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from keys.jwk import PublicKey
    from keys.signer import Signer

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_TOKEN_CHARS",
    "Verified",
    "b64url_decode",
    "b64url_encode",
    "parse_compact",
    "sign_compact",
    "verify_compact",
]

ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES384", "PS256", "RS256"})
MAX_TOKEN_CHARS = 64 * 1024
_RESERVED_BY_SIGNER = frozenset({"alg", "kid", "typ"})
_EC_ALGORITHMS: dict[str, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1, hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1, hashes.SHA384(), 48),
}


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """A JWS whose signature verified: its header, payload and the exact signed bytes."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes


def sign_compact(
    payload: bytes,
    signer: Signer,
    *,
    typ: str,
    extra_headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``payload`` as a compact JWS with header ``{alg, kid, typ, **extra_headers}``."""
    if signer.alg not in ALLOWED_ALGORITHMS:
        raise AlgorithmNotAllowed(f"signer algorithm {signer.alg!r} is not allowed")
    extra = dict(extra_headers or {})
    if _RESERVED_BY_SIGNER.intersection(extra):
        msg = "extra_headers may not set alg, kid or typ"
        raise ValueError(msg)
    header = {"alg": signer.alg, "kid": signer.kid, "typ": typ, **extra}
    signing_input = (
        b64url_encode(msgspec.json.encode(header)) + "." + b64url_encode(payload)
    ).encode("ascii")
    return signing_input.decode("ascii") + "." + b64url_encode(signer.sign(signing_input))


def parse_compact(
    token: str, *, max_chars: int = MAX_TOKEN_CHARS
) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Split and decode a compact JWS: (header, payload, signing input, signature).

    Checks form only, not the signature. ``max_chars`` bounds the token's length; only a
    document that grows with time (the key history) needs more than the default.
    """
    if not isinstance(token, str):
        raise MalformedJWS("token must be a string")
    if len(token) > max_chars:
        raise MalformedJWS(f"token is longer than {max_chars} characters")
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header.payload.signature
        raise MalformedJWS("compact JWS must have exactly three dot-separated parts")
    encoded_header, encoded_payload, encoded_signature = parts
    try:
        header_bytes = b64url_decode(encoded_header)
        payload = b64url_decode(encoded_payload)
        signature = b64url_decode(encoded_signature)
    except MalformedJWS:
        raise MalformedJWS("token parts must be unpadded base64url") from None
    header = _decode_header(header_bytes)
    signing_input = f"{encoded_header}.{encoded_payload}".encode("ascii")
    return header, payload, signing_input, signature


def verify_compact(
    token: str,
    *,
    resolve_key: Callable[[Mapping[str, Any]], PublicKey | None],
    typ: str,
    algorithms: Collection[str] = ALLOWED_ALGORITHMS,
    max_chars: int = MAX_TOKEN_CHARS,
) -> Verified:
    """Verify a compact JWS whose ``typ`` is ``typ``, with a key chosen by ``resolve_key``."""
    header, payload, signing_input, signature = parse_compact(token, max_chars=max_chars)
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise MalformedJWS("header 'alg' must be a string")
    if alg not in ALLOWED_ALGORITHMS or alg not in algorithms:
        raise AlgorithmNotAllowed(f"algorithm {alg[:32]!r} is not allowed here")
    if "crit" in header:
        raise CritUnsupported("header names critical parameters; none are supported")
    found = header.get("typ")
    if not isinstance(found, str) or _normalize_typ(found) != _normalize_typ(typ):
        raise TypMismatch(f"token typ must be {typ!r}")
    key = resolve_key(header)
    if key is None:
        raise UnknownKey("no key is known for this token")
    _verify_signature(alg, key, signature, signing_input)
    return Verified(header=header, payload=payload, signing_input=signing_input)


def _decode_header(data: bytes) -> dict[str, Any]:
    try:
        header = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; deep nesting recurses.
        raise MalformedJWS("header is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise MalformedJWS("header must be a JSON object")
    return header


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise MalformedJWS("header has a duplicate member name")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise MalformedJWS(f"header contains non-standard JSON constant {name}")


def _normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: "application/" may be omitted when no other '/' appears.
    lowered = typ.lower()
    prefix = "application/"
    if lowered.startswith(prefix) and "/" not in lowered[len(prefix) :]:
        return lowered[len(prefix) :]
    return lowered


def _verify_signature(alg: str, key: PublicKey, signature: bytes, signing_input: bytes) -> None:
    try:
        if alg == "EdDSA":
            if not isinstance(key, Ed25519PublicKey):
                raise AlgorithmNotAllowed("EdDSA needs an Ed25519 key")
            key.verify(signature, signing_input)
        elif alg in _EC_ALGORITHMS:
            curve, digest, size = _EC_ALGORITHMS[alg]
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
                raise AlgorithmNotAllowed(f"{alg} needs an EC key on {curve.name}")
            if len(signature) != 2 * size:
                raise SignatureInvalid(f"{alg} signature must be {2 * size} bytes (raw r||s)")
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
        else:
            if not isinstance(key, rsa.RSAPublicKey) or not (
                MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS
            ):
                raise AlgorithmNotAllowed(f"{alg} needs an RSA key of {MIN_RSA_BITS}+ bits")
            pad: padding.AsymmetricPadding = (
                padding.PSS(
                    mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
                )
                if alg == "PS256"
                else padding.PKCS1v15()
            )
            key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        raise SignatureInvalid("signature does not verify") from None
