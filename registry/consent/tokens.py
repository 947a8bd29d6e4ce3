"""Consent tokens: short-lived JWTs that prove a consent covers an asset and a use (DESIGN §4).

Header ``typ: consent+jwt``, ``alg`` EdDSA or ES256, ``kid`` of a registry key. Claims:
``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp`` (never past the consent's end), ``jti``,
``cid`` (consent id), ``assets`` [{id, sha256, phash?}], ``uses`` and ``status`` (an IETF
Token Status List reference). The lead signs the claims with
``keys.jws.sign_compact(msgspec.json.encode(claims), signer, typ=CONSENT_TOKEN_TYP)``.

Verification never raises on a token: it returns every reason the token fails, as stable
codes, and returns claims only for a token whose signature verified with a key of ours.
"""

from __future__ import annotations

import math
import re
import secrets
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.jwk import is_valid_kid
from keys.jws import MAX_TOKEN_CHARS
from registry.consent.errors import (
    AssetInvalidError,
    TtlInvalidError,
    UsesEmptyError,
    ValidityExpiredError,
)
from registry.consent.uses import require_known_uses
from verifier.statuslist import INVALID, SUSPENDED, VALID

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from datetime import datetime, timedelta

    from jwt.types import Options

    from keys.jwk import PublicKey

__all__ = [
    "CONSENT_TOKEN_TYP",
    "DEFAULT_PHASH_MAX_DISTANCE",
    "TOKEN_ALGORITHMS",
    "Reason",
    "TokenAsset",
    "TokenVerification",
    "build_claims",
    "verify_token",
]

CONSENT_TOKEN_TYP: Final = "consent+jwt"  # noqa: S105 - a media type, not a secret
TOKEN_ALGORITHMS: Final = ("EdDSA", "ES256")
# Hamming distance on a 64-bit imagehash phash below which two images count as the same photo
# (re-encoded, resized); unrelated photos land near 32.
DEFAULT_PHASH_MAX_DISTANCE: Final = 8
REQUIRED_CLAIMS: Final = (
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "cid",
    "assets",
    "uses",
    "status",
)
# Headers that change how the token must be read; a verifier that ignores them misreads it.
_REJECTED_HEADERS = frozenset({"crit", "b64", "zip"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PHASH_HEX = re.compile(r"[0-9a-f]{16}")
# pyjwt lets a few of these escape on hostile input (lone surrogates, absurd nesting).
_PARSE_ERRORS = (ValueError, TypeError, RecursionError)
_PYJWT = jwt.PyJWT()
_PYJWT_OPTIONS: Final[Options] = {
    "verify_signature": True,
    # Time, audience and issuer are checked below, so that every failing reason is reported
    # rather than only the first one pyjwt raises.
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": True,
    "verify_jti": True,
    "require": list(REQUIRED_CLAIMS),
}


class Reason(StrEnum):
    """Why a consent token is not valid; the values are the stable codes."""

    MALFORMED = "malformed"
    SIGNATURE = "signature"
    ISSUER = "issuer"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    AUDIENCE = "audience"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    STATUS_UNKNOWN = "status_unknown"
    ASSET_MISMATCH = "asset_mismatch"
    USE_NOT_PERMITTED = "use_not_permitted"


class TokenAsset(msgspec.Struct, kw_only=True, frozen=True):
    """An asset a token binds: its id, the SHA-256 of its file and, if known, its phash."""

    id: str
    sha256: str
    phash: str | None = None


class TokenVerification(msgspec.Struct, kw_only=True, frozen=True):
    valid: bool
    reasons: tuple[Reason, ...]
    claims: dict[str, Any] | None


class _AssetClaim(msgspec.Struct, frozen=True):
    id: str
    sha256: str
    phash: str | None = None


class _StatusListRef(msgspec.Struct, frozen=True):
    idx: Annotated[int, msgspec.Meta(ge=0)]
    uri: str


class _Status(msgspec.Struct, frozen=True):
    status_list: _StatusListRef


class _Claims(msgspec.Struct, frozen=True):
    """The claims we rely on, typed; other claims are tolerated, as JWT allows."""

    iss: str
    sub: str
    aud: str | list[str]
    iat: float
    nbf: float
    exp: float
    jti: str
    cid: str
    assets: list[_AssetClaim]
    uses: list[str]
    status: _Status


def build_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    consent_id: str,
    assets: Sequence[TokenAsset],
    uses: Sequence[str],
    status_idx: int,
    status_uri: str,
    now: datetime,
    ttl: timedelta,
    not_after: datetime,
) -> dict[str, Any]:
    """The claims of a new consent token; ``exp`` is ``now + ttl`` but never past ``not_after``.

    Raises ttl_invalid, validity_expired (the consent ends before the token could start),
    use_unknown, uses_duplicate, invalid_value (no uses) or asset_invalid.
    """
    if ttl.total_seconds() <= 0:
        raise TtlInvalidError("a token lifetime must be positive")
    if not uses:
        raise UsesEmptyError("a token must carry at least one use")
    checked_uses = require_known_uses(uses)
    if not assets:
        raise AssetInvalidError("a token must bind at least one asset")
    for asset in assets:
        _require_sha256(asset.sha256)
        if asset.phash is not None:
            _require_phash(asset.phash)
    iat = math.floor(now.timestamp())
    exp = min(math.floor((now + ttl).timestamp()), math.floor(not_after.timestamp()))
    if exp <= iat:
        raise ValidityExpiredError("the consent ends before a token could be valid")
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
        "cid": consent_id,
        "assets": [_asset_claim(asset) for asset in assets],
        "uses": list(checked_uses),
        "status": {"status_list": {"idx": status_idx, "uri": status_uri}},
    }


def _asset_claim(asset: TokenAsset) -> dict[str, str]:
    claim = {"id": asset.id, "sha256": asset.sha256}
    if asset.phash is not None:
        claim["phash"] = asset.phash
    return claim


def verify_token(
    token: str,
    *,
    resolve_key: Callable[[str], PublicKey | None],
    issuer: str,
    audiences: Collection[str],
    status_of: Callable[[str, int], int | None],
    now: datetime,
    leeway_seconds: int = 30,
    use: str | None = None,
    asset_sha256: str | None = None,
    asset_phash: str | None = None,
    phash_max_distance: int = DEFAULT_PHASH_MAX_DISTANCE,
) -> TokenVerification:
    """Check a consent token and report every reason it fails.

    ``resolve_key`` maps a (syntactically valid) ``kid`` to one of our public keys;
    ``status_of`` returns the status list value at ``(uri, idx)`` (0 valid, 1 invalid,
    2 suspended) or None for a list it does not know. ``use`` and the asset arguments are
    checked only when given; the asset binds when its SHA-256 equals, or its phash lies within
    ``phash_max_distance`` bits of, an asset of the token. Invalid ``asset_sha256`` or
    ``asset_phash`` arguments (the caller's input, not the token) raise asset_invalid.
    """
    if asset_sha256 is not None:
        _require_sha256(asset_sha256)
    if asset_phash is not None:
        _require_phash(asset_phash)
    decoded = _decode(token, resolve_key)
    if isinstance(decoded, Reason):
        return TokenVerification(valid=False, reasons=(decoded,), claims=None)
    payload, claims = decoded
    reasons = [
        *_claim_reasons(claims, issuer=issuer, audiences=audiences, now=now, leeway=leeway_seconds),
        *_status_reasons(claims, status_of),
    ]
    if (asset_sha256 is not None or asset_phash is not None) and not _binds(
        claims.assets, asset_sha256, asset_phash, phash_max_distance
    ):
        reasons.append(Reason.ASSET_MISMATCH)
    if use is not None and use not in claims.uses:
        reasons.append(Reason.USE_NOT_PERMITTED)
    return TokenVerification(valid=not reasons, reasons=tuple(reasons), claims=payload)


def _claim_reasons(
    claims: _Claims, *, issuer: str, audiences: Collection[str], now: datetime, leeway: int
) -> list[Reason]:
    reasons: list[Reason] = []
    if claims.iss != issuer:
        reasons.append(Reason.ISSUER)
    moment = now.timestamp()
    if claims.exp <= moment - leeway:
        reasons.append(Reason.EXPIRED)
    if max(claims.nbf, claims.iat) > moment + leeway:
        reasons.append(Reason.NOT_YET_VALID)
    named = {claims.aud} if isinstance(claims.aud, str) else set(claims.aud)
    if named.isdisjoint(audiences):
        reasons.append(Reason.AUDIENCE)
    return reasons


def _status_reasons(claims: _Claims, status_of: Callable[[str, int], int | None]) -> list[Reason]:
    reference = claims.status.status_list
    status = status_of(reference.uri, reference.idx)
    if status == VALID:
        return []
    if status == INVALID:
        return [Reason.REVOKED]
    if status == SUSPENDED:
        return [Reason.SUSPENDED]
    # A list we do not know, or a status value we do not define: fail closed.
    return [Reason.STATUS_UNKNOWN]


def _decode(
    token: object, resolve_key: Callable[[str], PublicKey | None]
) -> Reason | tuple[dict[str, Any], _Claims]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return Reason.MALFORMED
    found = _header_key(token, resolve_key)
    if isinstance(found, Reason):
        return found
    alg, key = found
    try:
        decoded = _PYJWT.decode_complete(token, key=key, algorithms=[alg], options=_PYJWT_OPTIONS)
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
        return Reason.SIGNATURE
    except (jwt.PyJWTError, *_PARSE_ERRORS):
        return Reason.MALFORMED
    payload: dict[str, Any] = decoded["payload"]
    try:
        claims = msgspec.convert(payload, _Claims, strict=True)
    except msgspec.ValidationError:
        return Reason.MALFORMED
    return payload, claims


def _header_key(
    token: str, resolve_key: Callable[[str], PublicKey | None]
) -> Reason | tuple[str, PublicKey]:
    """The algorithm and our key the header names, checked before any signature work."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, *_PARSE_ERRORS):
        return Reason.MALFORMED
    if _REJECTED_HEADERS.intersection(header) or not _is_consent_typ(header.get("typ")):
        return Reason.MALFORMED
    alg, kid = header.get("alg"), header.get("kid")
    if not (isinstance(alg, str) and alg in TOKEN_ALGORITHMS) or not (
        isinstance(kid, str) and is_valid_kid(kid)
    ):
        return Reason.SIGNATURE
    key = resolve_key(kid)
    if key is None or _algorithm_of(key) != alg:
        return Reason.SIGNATURE
    return alg, key


def _is_consent_typ(typ: object) -> bool:
    # RFC 7515 §4.1.9: the "application/" prefix may be left out, and media types ignore case.
    if not isinstance(typ, str):
        return False
    lowered = typ.lower()
    return lowered in {CONSENT_TOKEN_TYP, f"application/{CONSENT_TOKEN_TYP}"}


def _algorithm_of(key: PublicKey) -> str | None:
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    return None


def _binds(
    assets: Sequence[_AssetClaim], sha256: str | None, phash: str | None, max_distance: int
) -> bool:
    for asset in assets:
        if sha256 is not None and asset.sha256 == sha256:
            return True
        if (
            phash is not None
            and asset.phash is not None
            and _PHASH_HEX.fullmatch(asset.phash)
            and (int(asset.phash, 16) ^ int(phash, 16)).bit_count() <= max_distance
        ):
            return True
    return False


def _require_sha256(value: str) -> None:
    if _SHA256_HEX.fullmatch(value) is None:
        raise AssetInvalidError("asset sha256 must be 64 lowercase hex digits")


def _require_phash(value: str) -> None:
    if _PHASH_HEX.fullmatch(value) is None:
        raise AssetInvalidError("asset phash must be 16 lowercase hex digits")
