"""Consent tokens (``typ: consent+jwt``) as anyone checks them: signature, claims, time, status.

The registry's online verification (``registry.consent.tokens``, status read from its
database) and the offline ``python -m verifier token`` (status read from status lists the user
supplies) share this code, so both read a token the same way. The header is judged before any
key is looked up; the signature is checked with ``keys.jws`` (EdDSA or ES256 only, the key
only from the caller's resolver, never from the header); the claims are then typed, and
``exp``, ``nbf`` and ``iat`` are judged with one leeway (``verifier.clock``).

A token binds its assets (the photos it covers) without showing their hashes. A token of
format 2 (claim ``ver: 2``) carries ``asset_salt``, 16 random bytes drawn for that token,
base64url without padding, and each asset as ``{id, commit}``, where ``commit`` is
``base64url(SHA-256(salt || digest))`` without padding: ``salt`` the 16 decoded bytes of
``asset_salt``, ``digest`` the 32 raw bytes (not the hex text) of the SHA-256 of the photo's
file, concatenated in that order with nothing between them. Whoever holds the photo can
test it (``binds``); nobody else learns its hash, and the same photo commits differently in
every token. Tokens issued before format 2 have no ``ver`` (format 1) and carry each asset as
``{id, sha256, phash?}`` in clear; they are read and bound (by ``sha256``) until they expire.
A token that mixes the two, or names another format, is malformed.

Nothing here raises on a token: every way it fails is a stable ``Reason``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.errors import AlgorithmNotAllowed, KeysError, SignatureInvalid
from keys.jwk import b64url_decode, b64url_encode, is_valid_kid, load_public_jwk
from keys.jws import MAX_TOKEN_CHARS, parse_compact, verify_compact
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.key_history import KeyHistory, KeyUseError
from verifier.statuslist import INVALID, SUSPENDED, VALID, StatusListError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from keys.jwk import PublicKey
    from verifier.statuslist import SignedStatusList

__all__ = [
    "ASSET_SALT_BYTES",
    "CONSENT_TOKEN_TYP",
    "INDETERMINATE_CODES",
    "KEYS_UNKNOWN",
    "STATUS_STALE",
    "TOKEN_ALGORITHMS",
    "TOKEN_FORMAT",
    "ConsentTokenClaims",
    "DecodedToken",
    "OfflineCheck",
    "Reason",
    "StatusCheck",
    "TokenAssetClaim",
    "asset_commitment",
    "binds",
    "check_token_offline",
    "claim_reasons",
    "decode_token",
    "jwks_resolver",
    "status_on_lists",
    "status_reasons",
    "time_reasons",
]

CONSENT_TOKEN_TYP: Final = "consent+jwt"  # noqa: S105 - a media type, not a secret
TOKEN_ALGORITHMS: Final = ("EdDSA", "ES256")
# The ``ver`` claim of the tokens issued now: assets bound by salted commitments. A token
# without ``ver`` is format 1, its assets' hashes in clear.
TOKEN_FORMAT: Final = 2
ASSET_SALT_BYTES: Final = 16
_LEGACY_FORMAT = 1
_SHA256_BYTES = 32
# Offline only: the supplied status list is older than its ttl (or past exp), so the token's
# status is not known now. Online verification reads the live status and never says this.
STATUS_STALE: Final = "status_stale"
# Offline with --online only: the key history could not be fetched (or was refused), so no
# signature could be checked. A network problem says nothing of the artifact.
KEYS_UNKNOWN: Final = "keys_unknown"
# Headers that change how the token must be read; a verifier that ignores them misreads it.
_REJECTED_HEADERS = frozenset({"crit", "b64", "zip"})
_MAX_KEYS = 100


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


# Codes that say "could not be decided" rather than "not valid".
INDETERMINATE_CODES: Final = frozenset({Reason.STATUS_UNKNOWN.value, STATUS_STALE, KEYS_UNKNOWN})


class TokenAssetClaim(msgspec.Struct, frozen=True, kw_only=True):
    """An asset a token binds: ``commit`` (format 2), or ``sha256`` and ``phash`` (format 1)."""

    id: str
    commit: str | None = None
    sha256: str | None = None
    phash: str | None = None


class StatusListRef(msgspec.Struct, frozen=True):
    idx: Annotated[int, msgspec.Meta(ge=0)]
    uri: str


class TokenStatus(msgspec.Struct, frozen=True):
    status_list: StatusListRef


class ConsentTokenClaims(msgspec.Struct, frozen=True):
    """The claims we rely on, typed; other claims are tolerated, as JWT allows."""

    iss: str
    sub: str
    aud: str | list[str]
    iat: float
    nbf: float
    exp: float
    jti: str
    cid: str
    assets: list[TokenAssetClaim]
    uses: list[str]
    status: TokenStatus
    ver: int = _LEGACY_FORMAT
    asset_salt: str | None = None

    def audiences(self) -> set[str]:
        return {self.aud} if isinstance(self.aud, str) else set(self.aud)

    def well_formed(self) -> bool:
        """The assets are bound the one way the token's format says."""
        if self.ver == _LEGACY_FORMAT:
            return self.asset_salt is None and all(
                a.sha256 is not None and a.commit is None for a in self.assets
            )
        if self.ver != TOKEN_FORMAT or _salt(self.asset_salt) is None:
            return False
        return all(
            _decoded(a.commit, _SHA256_BYTES) is not None and a.sha256 is None and a.phash is None
            for a in self.assets
        )


def _decoded(text: str | None, size: int) -> bytes | None:
    """The ``size`` bytes ``text`` encodes as canonical base64url, else None."""
    if text is None:
        return None
    try:
        data = b64url_decode(text)
    except KeysError:
        return None
    return data if len(data) == size else None


def _salt(text: str | None) -> bytes | None:
    return _decoded(text, ASSET_SALT_BYTES)


def asset_commitment(salt: bytes, sha256_hex: str) -> str:
    """``base64url(SHA-256(salt || digest))``, ``digest`` the 32 bytes ``sha256_hex`` spells."""
    return b64url_encode(hashlib.sha256(salt + bytes.fromhex(sha256_hex)).digest())


def binds(claims: ConsentTokenClaims, sha256_hex: str) -> bool:
    """Whether the photo whose SHA-256 is ``sha256_hex`` (64 hex digits) is an asset of the
    token: its commitment (format 2) or its hash (format 1) is one the token carries."""
    digest = sha256_hex.lower()
    if len(digest) != 2 * _SHA256_BYTES or not all(c in "0123456789abcdef" for c in digest):
        return False
    if claims.ver == _LEGACY_FORMAT:
        return any(asset.sha256 == digest for asset in claims.assets)
    salt = _salt(claims.asset_salt)
    if salt is None:
        return False
    expected = asset_commitment(salt, digest)
    return any(
        asset.commit is not None and hmac.compare_digest(asset.commit, expected)
        for asset in claims.assets
    )


class DecodedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A token whose signature verified with one of the caller's keys: its claims, raw and typed."""

    payload: dict[str, Any]
    claims: ConsentTokenClaims


def decode_token(
    token: object, resolve_key: Callable[[str], PublicKey | None]
) -> Reason | DecodedToken:
    """The verified claims of ``token``, or MALFORMED or SIGNATURE.

    ``resolve_key`` maps a syntactically valid ``kid`` to a public key, or None.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return Reason.MALFORMED
    found = _header_key(token, resolve_key)
    if isinstance(found, Reason):
        return found
    alg, key = found
    try:
        verified = verify_compact(
            token, resolve_key=lambda _header: key, typ=CONSENT_TOKEN_TYP, algorithms=(alg,)
        )
    except (SignatureInvalid, AlgorithmNotAllowed):
        return Reason.SIGNATURE
    except KeysError:
        return Reason.MALFORMED
    try:
        payload = msgspec.json.decode(verified.payload, type=dict[str, Any])
        claims = msgspec.convert(payload, ConsentTokenClaims, strict=True)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return Reason.MALFORMED
    # A token mixing the two formats (or naming another) is not one we can read.
    return (
        DecodedToken(payload=payload, claims=claims) if claims.well_formed() else Reason.MALFORMED
    )


def _header_key(
    token: str, resolve_key: Callable[[str], PublicKey | None]
) -> Reason | tuple[str, PublicKey]:
    """The algorithm and key the header names, checked before any signature work."""
    try:
        header = parse_compact(token)[0]
    except KeysError:
        return Reason.MALFORMED
    if _REJECTED_HEADERS.intersection(header) or not _is_consent_typ(header.get("typ")):
        return Reason.MALFORMED
    alg, kid = header.get("alg"), header.get("kid")
    if "kid" in header and not isinstance(kid, str):
        # RFC 7515 §4.1.4: kid is a string; anything else is not a JWS header we can read.
        return Reason.MALFORMED
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


def time_reasons(claims: ConsentTokenClaims, *, now: datetime, leeway_seconds: int) -> list[Reason]:
    """EXPIRED and NOT_YET_VALID, with the same leeway on ``exp``, ``nbf`` and ``iat``."""
    moment = now.timestamp()
    reasons: list[Reason] = []
    if claims.exp <= moment - leeway_seconds:
        reasons.append(Reason.EXPIRED)
    if max(claims.nbf, claims.iat) > moment + leeway_seconds:
        reasons.append(Reason.NOT_YET_VALID)
    return reasons


def claim_reasons(
    claims: ConsentTokenClaims,
    *,
    now: datetime,
    leeway_seconds: int,
    issuer: str | None,
    audiences: Collection[str] | None,
) -> list[Reason]:
    """Issuer, time and audience; an issuer or audiences of None is not checked."""
    reasons: list[Reason] = []
    if issuer is not None and claims.iss != issuer:
        reasons.append(Reason.ISSUER)
    reasons.extend(time_reasons(claims, now=now, leeway_seconds=leeway_seconds))
    if audiences is not None and claims.audiences().isdisjoint(audiences):
        reasons.append(Reason.AUDIENCE)
    return reasons


def status_reasons(status: int | None) -> list[Reason]:
    """The reasons a status list value gives; None is a list that is not known."""
    if status == VALID:
        return []
    if status == INVALID:
        return [Reason.REVOKED]
    if status == SUSPENDED:
        return [Reason.SUSPENDED]
    # A list we do not know, or a status value we do not define: fail closed.
    return [Reason.STATUS_UNKNOWN]


# Offline: the status from supplied status lists.


class StatusCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What the supplied lists say of one entry: ``valid``, ``revoked``, ``suspended``,
    ``status_stale`` or ``status_unknown``, and why when it is not a status value."""

    code: str
    detail: str | None = None


def status_on_lists(
    lists: Mapping[str, SignedStatusList],
    *,
    uri: str,
    idx: int,
    now: datetime,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> StatusCheck:
    """The status at ``(uri, idx)`` on the verified list for ``uri``, if it is fresh."""
    signed = lists.get(uri)
    if signed is None:
        return _unknown("its status list was not supplied or did not verify")
    freshness = signed.freshness(now, leeway_seconds=leeway_seconds)
    if freshness == "future":
        return _unknown("its status list is issued in the future")
    if freshness == "stale":
        limit = f"ttl {signed.ttl} s" if signed.ttl is not None else f"exp {signed.expires_at}"
        return StatusCheck(
            code=STATUS_STALE,
            detail=f"its status list (issued {_iso(signed.issued_at)}, {limit}) is stale: "
            "fetch it again",
        )
    return _status_value(signed, idx)


def _status_value(signed: SignedStatusList, idx: int) -> StatusCheck:
    try:
        value = signed.status_list.get(idx)
    except StatusListError:
        return _unknown("index is outside the status list")
    reasons = status_reasons(value)
    if not reasons:
        return StatusCheck(code="valid")
    if reasons[0] == Reason.STATUS_UNKNOWN:
        return _unknown(f"status value {value} is not defined")
    return StatusCheck(code=reasons[0].value)


def _unknown(detail: str) -> StatusCheck:
    return StatusCheck(code=Reason.STATUS_UNKNOWN.value, detail=detail)


def _iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        # A signed but absurd iat is still worth showing, as the number it is.
        return str(seconds)


class OfflineCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A consent token checked offline: ``result`` is ``valid`` or the first reason that
    decides (a reason of invalidity before one of indeterminacy)."""

    result: str
    reasons: tuple[str, ...]
    claims: dict[str, Any] | None
    status_detail: str | None = None
    """Why the status is not a plain value (no list, stale list, index outside), if so."""


def jwks_resolver(jwks: Mapping[str, Any] | KeyHistory) -> Callable[[str], PublicKey | None]:
    """A ``kid`` resolver over a JWKS; keys this verifier cannot use resolve nothing.

    Over a key history it resolves every key the history lists, at any time: the signing
    period is checked once the token's ``iat`` is known (``check_token_offline``).
    """
    if isinstance(jwks, KeyHistory):
        return jwks.public_key
    entries = jwks.get("keys")
    keys: dict[str, PublicKey] = {}
    for entry in entries[:_MAX_KEYS] if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping) or not is_valid_kid(entry.get("kid")):
            continue
        try:
            keys[entry["kid"]] = load_public_jwk(entry)
        except KeysError:
            continue
    return keys.get


def check_token_offline(
    token: str,
    *,
    jwks: Mapping[str, Any] | KeyHistory,
    status_lists: Mapping[str, SignedStatusList],
    now: datetime,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    audience: str | None = None,
    issuer: str | None = None,
    use: str | None = None,
    photo_sha256: str | None = None,
) -> OfflineCheck:
    """Signature (JWKS only), time, issuer and audience when given, status, and when given,
    the photo (``photo_sha256``, the SHA-256 of its file: ``asset_mismatch`` unless the token
    binds it) and the use.

    With a key history for ``jwks``, the token's ``iat`` must also lie in its key's signing
    period (``key_not_valid_at_iat`` otherwise).
    """
    decoded = decode_token(token, jwks_resolver(jwks))
    if isinstance(decoded, Reason):
        return OfflineCheck(result=decoded.value, reasons=(decoded.value,), claims=None)
    claims = decoded.claims
    if isinstance(jwks, KeyHistory):
        try:
            jwks.key_for(
                parse_compact(token)[0].get("kid"),
                iat=claims.iat,
                purpose="tokens",
                leeway_seconds=leeway_seconds,
            )
        except KeyUseError as exc:
            return OfflineCheck(
                result=exc.code, reasons=(exc.code,), claims=decoded.payload, status_detail=None
            )
    reasons = [
        reason.value
        for reason in claim_reasons(
            claims,
            now=now,
            leeway_seconds=leeway_seconds,
            issuer=issuer,
            audiences=None if audience is None else {audience},
        )
    ]
    reference = claims.status.status_list
    status = status_on_lists(
        status_lists, uri=reference.uri, idx=reference.idx, now=now, leeway_seconds=leeway_seconds
    )
    if status.code != "valid":
        reasons.append(status.code)
    if photo_sha256 is not None and not binds(claims, photo_sha256):
        reasons.append(Reason.ASSET_MISMATCH.value)
    if use is not None and use not in claims.uses:
        reasons.append(Reason.USE_NOT_PERMITTED.value)
    deciding = [r for r in reasons if r not in INDETERMINATE_CODES] or reasons or ["valid"]
    return OfflineCheck(
        result=deciding[0],
        reasons=tuple(reasons),
        claims=decoded.payload,
        status_detail=status.detail,
    )
