"""IETF OAuth Token Status List (draft-ietf-oauth-status-list): the list and its JWT.

A status list packs one status of ``bits`` bits (1, 2, 4 or 8) per referenced token into a
byte array. Index 0 occupies the least significant bits of byte 0, index 1 the next bits up,
and so on; the array travels ZLIB-compressed and base64url-encoded as ``lst``. The signed
form is a JWT with ``typ: statuslist+jwt`` whose ``sub`` is the list's own URI.

Decoding caps the decompressed size, so a small ``lst`` cannot inflate into gigabytes.

A verified list is ``stale`` once it is older than its ``ttl`` (the time a relying party may
cache it) or past its ``exp``: its statuses may have changed since, so a verifier must fetch
it again rather than rely on it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec

from keys.errors import KeysError
from keys.jwk import b64url_decode, b64url_encode, is_valid_kid, load_public_jwk
from keys.jws import verify_compact
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.errors import VerifierError
from verifier.key_history import KeyHistory, KeyUseError

if TYPE_CHECKING:
    from keys.jwk import PublicKey

__all__ = [
    "INVALID",
    "MAX_DECOMPRESSED_BYTES",
    "STATUS_LIST_TYP",
    "SUSPENDED",
    "VALID",
    "Freshness",
    "SignedStatusList",
    "StatusIndexError",
    "StatusList",
    "StatusListError",
    "StatusListExpiredError",
    "StatusListKeyNotValidError",
    "StatusListMalformedError",
    "StatusListSignatureError",
    "StatusListSubjectError",
    "StatusListTooLargeError",
    "StatusValueError",
    "parse_status_list_token",
    "status_list_claims",
    "verify_status_list_token",
]

VALID: Final = 0
INVALID: Final = 1
SUSPENDED: Final = 2

STATUS_LIST_TYP: Final = "statuslist+jwt"
# 16 MiB holds 134 million 1-bit statuses; anything larger is not a list we issue or trust.
MAX_DECOMPRESSED_BYTES: Final = 16 * 1024 * 1024
_BITS = frozenset({1, 2, 4, 8})
_SIGNATURE_CODES = frozenset(
    {"signature_invalid", "unknown_key", "algorithm_not_allowed", "invalid_jwk"}
)


class StatusListError(VerifierError):
    """Base of status list errors."""

    code = "status_list_error"


class StatusListMalformedError(StatusListError):
    code = "status_list_malformed"


class StatusListTooLargeError(StatusListError):
    code = "status_list_too_large"


class StatusIndexError(StatusListError):
    code = "status_index_invalid"


class StatusValueError(StatusListError):
    code = "status_value_invalid"


class StatusListSignatureError(StatusListError):
    """The status list token does not verify with any key of the given JWKS."""

    code = "status_list_signature"


class StatusListKeyNotValidError(StatusListSignatureError):
    """The key history says the list's key was not signing status lists at its ``iat``."""

    code = "key_not_valid_at_iat"


class StatusListExpiredError(StatusListError):
    """The status list token is stale (past its ttl or exp), or claims a future ``iat``."""

    code = "status_list_expired"


class StatusListSubjectError(StatusListError):
    """The token's ``sub`` is not the URI the list was fetched from."""

    code = "status_list_subject_mismatch"


class StatusList:
    """A mutable list of ``size`` statuses of ``bits`` bits each, all VALID when created."""

    __slots__ = ("_bits", "_data", "_size")

    def __init__(self, size: int, bits: int = 1) -> None:
        if bits not in _BITS:
            raise StatusListMalformedError("bits must be 1, 2, 4 or 8")
        if size < 1:
            raise StatusListMalformedError("a status list holds at least one status")
        if size * bits > MAX_DECOMPRESSED_BYTES * 8:
            raise StatusListTooLargeError(
                f"a status list holds at most {MAX_DECOMPRESSED_BYTES} bytes"
            )
        self._bits = bits
        self._size = size
        self._data = bytearray(-(-size * bits // 8))

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def size(self) -> int:
        return self._size

    def get(self, idx: int) -> int:
        byte, shift = self._locate(idx)
        return (self._data[byte] >> shift) & ((1 << self._bits) - 1)

    def set(self, idx: int, value: int) -> None:
        mask = (1 << self._bits) - 1
        if not 0 <= value <= mask:
            raise StatusValueError(f"a {self._bits}-bit status is 0 to {mask}")
        byte, shift = self._locate(idx)
        self._data[byte] = (self._data[byte] & ~(mask << shift) & 0xFF) | (value << shift)

    def to_bytes(self) -> bytes:
        """The uncompressed byte array, as the draft lays it out."""
        return bytes(self._data)

    def encode(self) -> dict[str, Any]:
        """The ``status_list`` claim: ``{"bits": n, "lst": base64url(zlib(bytes))}``."""
        compressed = zlib.compress(bytes(self._data), level=9)
        return {"bits": self._bits, "lst": b64url_encode(compressed)}

    @classmethod
    def decode(
        cls, obj: Mapping[str, Any], *, max_bytes: int = MAX_DECOMPRESSED_BYTES
    ) -> StatusList:
        """Parse a ``status_list`` claim, refusing more than ``max_bytes`` once decompressed."""
        if not isinstance(obj, Mapping):
            raise StatusListMalformedError("status_list must be a JSON object")
        bits, lst = obj.get("bits"), obj.get("lst")
        if type(bits) is not int or bits not in _BITS:
            raise StatusListMalformedError("status_list.bits must be 1, 2, 4 or 8")
        if not isinstance(lst, str):
            raise StatusListMalformedError("status_list.lst must be a string")
        try:
            compressed = b64url_decode(lst)
        except KeysError:
            raise StatusListMalformedError("status_list.lst is not unpadded base64url") from None
        data = _inflate(compressed, max_bytes)
        if not data:
            raise StatusListMalformedError("status_list.lst is empty")
        result = cls(len(data) * 8 // bits, bits)
        result._data[:] = data
        return result

    def _locate(self, idx: int) -> tuple[int, int]:
        if type(idx) is not int or not 0 <= idx < self._size:
            raise StatusIndexError(f"status index must be 0 to {self._size - 1}")
        per_byte = 8 // self._bits
        return idx // per_byte, (idx % per_byte) * self._bits

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusList):
            return NotImplemented
        return (self._bits, self._size, self._data) == (other._bits, other._size, other._data)

    __hash__ = None  # type: ignore[assignment]  # mutable: equal lists may later differ

    def __repr__(self) -> str:
        return f"StatusList(size={self._size}, bits={self._bits})"


def _inflate(compressed: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(compressed, max_bytes)
    except zlib.error:
        raise StatusListMalformedError("status_list.lst is not ZLIB data") from None
    if inflater.unconsumed_tail:
        raise StatusListTooLargeError(f"status list inflates beyond {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise StatusListMalformedError("status_list.lst is truncated or has trailing data")
    return data


def status_list_claims(
    *,
    uri: str,
    issuer: str,
    status_list: StatusList,
    issued_at: datetime,
    ttl_seconds: int,
    lifetime_seconds: int | None = None,
) -> dict[str, Any]:
    """Claims of a status list JWT, to be signed with ``typ: statuslist+jwt``.

    ``ttl`` tells relying parties how long they may cache the list (``verify_status_list_token``
    calls an older list stale); ``exp`` (``iat`` plus ``lifetime_seconds``, by default the ttl)
    is the hard end for relying parties that ignore ``ttl``.
    """
    if ttl_seconds < 1:
        raise ValueError("ttl_seconds must be positive")
    lifetime = ttl_seconds if lifetime_seconds is None else lifetime_seconds
    if lifetime < ttl_seconds:
        raise ValueError("lifetime_seconds must be at least ttl_seconds")
    iat = int(issued_at.timestamp())
    return {
        "iss": issuer,
        "sub": uri,
        "iat": iat,
        "exp": iat + lifetime,
        "ttl": ttl_seconds,
        "status_list": status_list.encode(),
    }


class _StatusListClaims(msgspec.Struct, kw_only=True, frozen=True):
    sub: str
    iat: int
    status_list: dict[str, Any]
    exp: int | None = None
    ttl: int | None = None


Freshness: TypeAlias = Literal["fresh", "stale", "future"]


class SignedStatusList(msgspec.Struct, kw_only=True, frozen=True):
    """A status list whose signature, ``typ`` and ``sub`` verified, with its time claims."""

    uri: str
    issued_at: int
    expires_at: int | None
    ttl: int | None
    status_list: StatusList

    def freshness(
        self, now: datetime, *, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
    ) -> Freshness:
        """``stale`` past ``exp`` or ``iat + ttl``; ``future`` when issued ahead of ``now``.

        The leeway absorbs clock skew on ``iat`` and ``exp`` as it does for consent tokens;
        it never stretches ``ttl``, which is a cache lifetime the issuer chose, not a claim
        about clocks.
        """
        moment = int(now.timestamp())
        if self.issued_at > moment + leeway_seconds:
            return "future"
        if self.expires_at is not None and self.expires_at <= moment - leeway_seconds:
            return "stale"
        if self.ttl is not None and self.issued_at + self.ttl <= moment:
            return "stale"
        return "fresh"


def verify_status_list_token(
    token: str,
    *,
    jwks: Mapping[str, Any] | KeyHistory,
    expected_uri: str | None = None,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> SignedStatusList:
    """Verify a status list JWT against ``jwks`` only; its time is left to ``freshness``.

    Checks the signature (algorithms pinned, key chosen by ``kid`` from the JWKS, never from
    a URL or the header), ``typ``, and that ``sub`` equals ``expected_uri`` when given.
    ``jwks`` may be a verified key history: then the list's ``iat`` must also lie in its
    key's signing period (``leeway_seconds`` either side).
    """
    history: KeyHistory | None = None
    keys: dict[str, PublicKey] = {}
    if isinstance(jwks, KeyHistory):
        history = jwks
    else:
        keys = _keys_by_kid(jwks)

    def resolve(header: Mapping[str, Any]) -> PublicKey | None:
        kid = header.get("kid")
        if not isinstance(kid, str) or not is_valid_kid(kid):
            return None
        return history.public_key(kid) if history is not None else keys.get(kid)

    try:
        verified = verify_compact(token, resolve_key=resolve, typ=STATUS_LIST_TYP)
    except KeysError as exc:
        if exc.code in _SIGNATURE_CODES:
            raise StatusListSignatureError(f"status list token: {exc.message}") from None
        raise StatusListMalformedError(f"status list token: {exc.message}") from None
    try:
        claims = msgspec.json.decode(verified.payload, type=_StatusListClaims)
    except msgspec.DecodeError as exc:
        raise StatusListMalformedError(f"status list claims: {exc}") from None
    if history is not None:
        try:
            history.key_for(
                verified.header.get("kid"),
                iat=claims.iat,
                purpose="status_lists",
                leeway_seconds=leeway_seconds,
            )
        except KeyUseError as exc:
            raise StatusListKeyNotValidError(f"status list token: {exc.message}") from None
    if expected_uri is not None and claims.sub != expected_uri:
        raise StatusListSubjectError("status list token is for another URI")
    return SignedStatusList(
        uri=claims.sub,
        issued_at=claims.iat,
        expires_at=claims.exp,
        ttl=claims.ttl,
        status_list=StatusList.decode(claims.status_list, max_bytes=max_bytes),
    )


def parse_status_list_token(
    token: str,
    *,
    jwks: Mapping[str, Any] | KeyHistory,
    expected_uri: str | None = None,
    now: datetime | None = None,
    max_bytes: int = MAX_DECOMPRESSED_BYTES,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> StatusList:
    """The list of a status list JWT that verifies (``verify_status_list_token``) and is fresh.

    Raises StatusListExpiredError for a stale list or one issued in the future.
    """
    signed = verify_status_list_token(
        token,
        jwks=jwks,
        expected_uri=expected_uri,
        max_bytes=max_bytes,
        leeway_seconds=leeway_seconds,
    )
    freshness = signed.freshness(now or datetime.now(UTC), leeway_seconds=leeway_seconds)
    if freshness == "stale":
        raise StatusListExpiredError("status list token is stale (past its ttl or exp)")
    if freshness == "future":
        raise StatusListExpiredError("status list token is issued in the future")
    return signed.status_list


def _keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise StatusListSignatureError("JWKS must be an object with a 'keys' array")
    keys: dict[str, PublicKey] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, Mapping) else None
        if not isinstance(kid, str) or not is_valid_kid(kid):
            continue
        try:
            keys[kid] = load_public_jwk(entry)
        except KeysError:
            # One unusable key (another algorithm family, say) must not hide the others.
            continue
    return keys
