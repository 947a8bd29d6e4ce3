"""Signing keys: JWK handling, compact JWS with pinned algorithms, signers and the key ring."""

from __future__ import annotations

from keys.errors import (
    AlgorithmNotAllowed,
    CritUnsupported,
    InvalidJWK,
    KeyDecryptionFailed,
    KeysError,
    MalformedJWS,
    MasterKeyInvalid,
    NoActiveKey,
    RotationInProgress,
    SignatureInvalid,
    TypMismatch,
    UnknownKey,
)
from keys.jwk import PublicKey, is_valid_kid, load_public_jwk, public_jwk, thumbprint
from keys.jws import (
    ALLOWED_ALGORITHMS,
    Verified,
    b64url_decode,
    b64url_encode,
    parse_compact,
    sign_compact,
    verify_compact,
)
from keys.master import MasterKey
from keys.ring import KeyPeriod, KeyRing, KeyRingSettings, Rotation
from keys.signer import Alg, LocalSigner, Signer

__all__ = [
    "ALLOWED_ALGORITHMS",
    "Alg",
    "AlgorithmNotAllowed",
    "CritUnsupported",
    "InvalidJWK",
    "KeyDecryptionFailed",
    "KeyPeriod",
    "KeyRing",
    "KeyRingSettings",
    "KeysError",
    "LocalSigner",
    "MalformedJWS",
    "MasterKey",
    "MasterKeyInvalid",
    "NoActiveKey",
    "PublicKey",
    "Rotation",
    "RotationInProgress",
    "SignatureInvalid",
    "Signer",
    "TypMismatch",
    "UnknownKey",
    "Verified",
    "b64url_decode",
    "b64url_encode",
    "is_valid_kid",
    "load_public_jwk",
    "parse_compact",
    "public_jwk",
    "sign_compact",
    "thumbprint",
    "verify_compact",
]
