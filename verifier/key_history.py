"""The key history: every key that ever signed for the registry, with when it signed.

The JWKS serves only the keys whose signatures can still be live (a consent token lives
hours); a consent receipt, a provenance assertion or an audit checkpoint must verify for as
long as anyone holds it. The registry therefore publishes its key history
(``GET /.well-known/registry-keys.json``): a compact JWS, ``typ: key-history+jwt``, signed
by the active key, whose payload lists every key that has signed::

    {"iss": "https://registry.example", "iat": 1767225600,
     "keys": [{"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "…",
                       "alg": "EdDSA", "use": "sig"},
               "not_before": 1764547200, "not_after": 1767225610,
               "signs": ["tokens", "receipts", "assertions", "checkpoints",
                         "status_lists", "notices"]}, …]}

``not_before``/``not_after`` (NumericDate) bound the ``iat`` of everything the key signed;
``not_after`` is null while the key still signs. ``iat`` is when this version of the
history took effect (the active key's activation): it changes only with a rotation.

What verifying a history proves, and what not: the signature is checked with a key the
history itself lists, whose period covers the history's ``iat``. That proves the document
is whole and was made by whoever held that key, so a changed period, an added or swapped key
or a truncated list is refused. It does not prove that key is the registry's: anyone can
sign a history of their own keys. That trust comes from where the history came from (our
HTTPS origin), or from comparing its signer's kid with one obtained independently (an earlier
history or JWKS you kept). Nor can it undo a stolen key: a thief could sign with an ``iat``
inside the key's period (which is why rotation erases private keys).

An artifact then verifies when its ``kid`` is in the history, the key signs that kind of
artifact (by ``typ``), the signature checks, and its ``iat`` lies in the key's period, with
the clock leeway of ``verifier.clock`` on both ends.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeGuard

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys.errors import KeysError, MalformedJWS
from keys.jwk import is_valid_kid, load_public_jwk, thumbprint
from keys.jws import parse_compact, verify_compact
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.errors import VerifierError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from keys.jwk import PublicKey

__all__ = [
    "KEY_HISTORY_MEDIA_TYPE",
    "KEY_HISTORY_TYP",
    "KEY_NOT_VALID_AT_IAT",
    "KEY_NOT_VALID_FOR_USE",
    "PURPOSES",
    "TYP_PURPOSES",
    "UNKNOWN_KEY",
    "ArtifactMalformed",
    "ArtifactSignatureInvalid",
    "HistoricKey",
    "KeyHistory",
    "KeyHistoryError",
    "KeyHistoryMalformed",
    "KeyHistorySignatureInvalid",
    "KeyNotValidAtIat",
    "KeyNotValidForUse",
    "KeyUseError",
    "SignedArtifact",
    "SignedArtifactError",
    "UnknownSigningKey",
    "key_history_claims",
    "purpose_of",
    "verify_key_history",
    "verify_signed",
]

KEY_HISTORY_TYP: Final = "key-history+jwt"
KEY_HISTORY_MEDIA_TYPE: Final = f"application/{KEY_HISTORY_TYP}"
# A history grows by one entry (about 250 characters) per rotation.
MAX_HISTORY_CHARS: Final = 16 * 1024 * 1024
MAX_HISTORY_KEYS: Final = 50_000
PURPOSES: Final = ("tokens", "receipts", "assertions", "checkpoints", "status_lists", "notices")
# What the registry signs, by ``typ``: consent tokens, consent receipts, detached provenance
# assertions, audit checkpoints, token status lists and takedown notices.
TYP_PURPOSES: Final[Mapping[str, str]] = {
    "consent+jwt": "tokens",
    "consent-receipt+jwt": "receipts",
    "provenance+jwt": "assertions",
    "audit-checkpoint+jwt": "checkpoints",
    "statuslist+jwt": "status_lists",
    "takedown+jwt": "notices",
}
UNKNOWN_KEY: Final = "unknown_key"
KEY_NOT_VALID_AT_IAT: Final = "key_not_valid_at_iat"
KEY_NOT_VALID_FOR_USE: Final = "key_not_valid_for_use"
_ALGORITHMS: Final = ("EdDSA", "ES256")


class KeyHistoryError(VerifierError):
    """A key history that must not be used: refused as a whole."""

    code = "key_history_invalid"


class KeyHistoryMalformed(KeyHistoryError):
    """Not a key history: form, header, claims, or entries that contradict each other."""

    code = "key_history_malformed"


class KeyHistorySignatureInvalid(KeyHistoryError):
    """The history's signature does not verify with the key it names among its own."""

    code = "key_history_signature_invalid"


class SignedArtifactError(VerifierError):
    """An artifact (receipt, assertion, checkpoint, ...) that does not verify."""

    code = "artifact_invalid"


class ArtifactMalformed(SignedArtifactError):
    code = "malformed"


class ArtifactSignatureInvalid(SignedArtifactError):
    code = "signature_invalid"


class KeyUseError(SignedArtifactError):
    """The key an artifact names may not have signed it (unknown, other period, other use)."""


class UnknownSigningKey(KeyUseError):
    code = UNKNOWN_KEY


class KeyNotValidAtIat(KeyUseError):
    code = KEY_NOT_VALID_AT_IAT


class KeyNotValidForUse(KeyUseError):
    code = KEY_NOT_VALID_FOR_USE


_Time = Annotated[int, msgspec.Meta(ge=0)]


class _Entry(msgspec.Struct, frozen=True, kw_only=True):
    jwk: dict[str, Any]
    not_before: _Time
    not_after: _Time | None
    signs: list[str]


class _Claims(msgspec.Struct, frozen=True, kw_only=True):
    iss: str
    iat: _Time
    keys: Annotated[list[_Entry], msgspec.Meta(min_length=1, max_length=MAX_HISTORY_KEYS)]


class HistoricKey(msgspec.Struct, frozen=True, kw_only=True):
    """One key of a verified history: its public JWK and the period in which it signed."""

    kid: str
    alg: str
    jwk: dict[str, Any]
    not_before: int
    not_after: int | None
    signs: tuple[str, ...]

    def covers(self, moment: float, *, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS) -> bool:
        """True when ``moment`` lies in the signing period, ``leeway_seconds`` on each side."""
        if moment < self.not_before - leeway_seconds:
            return False
        return self.not_after is None or moment <= self.not_after + leeway_seconds

    def period_text(self) -> str:
        until = "now" if self.not_after is None else _iso(self.not_after)
        return f"{_iso(self.not_before)} to {until}"


class KeyHistory:
    """A verified key history (:func:`verify_key_history`): resolve a kid at a time."""

    __slots__ = ("_keys", "_public", "issued_at", "issuer", "signed_by")

    def __init__(
        self,
        *,
        issuer: str,
        issued_at: int,
        signed_by: str,
        keys: Iterable[tuple[HistoricKey, PublicKey]],
    ) -> None:
        self.issuer = issuer
        self.issued_at = issued_at
        self.signed_by = signed_by
        self._keys: dict[str, HistoricKey] = {}
        self._public: dict[str, PublicKey] = {}
        for entry, public in keys:
            self._keys[entry.kid] = entry
            self._public[entry.kid] = public

    @property
    def keys(self) -> tuple[HistoricKey, ...]:
        return tuple(self._keys.values())

    def get(self, kid: object) -> HistoricKey | None:
        return self._keys.get(kid) if isinstance(kid, str) and is_valid_kid(kid) else None

    def public_key(self, kid: str) -> PublicKey | None:
        """The key for ``kid`` whatever the time: check the period with :meth:`key_for`."""
        return self._public.get(kid) if is_valid_kid(kid) else None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Every key of the history as a JWK Set (no periods: for libraries that want one)."""
        return {"keys": [dict(entry.jwk) for entry in self._keys.values()]}

    def key_for(
        self,
        kid: object,
        *,
        iat: object,
        purpose: str | None,
        leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    ) -> HistoricKey:
        """The key ``kid`` if it signs ``purpose`` and its period covers ``iat``.

        Raises UnknownSigningKey, KeyNotValidForUse, KeyNotValidAtIat, or ArtifactMalformed
        for an ``iat`` that is not a number.
        """
        entry = self.get(kid)
        if entry is None:
            raise UnknownSigningKey(
                f"key {str(kid)[:128]!r} is not in the key history "
                f"(issued {_iso(self.issued_at)}); a newer history may list it"
            )
        if purpose is not None and purpose not in entry.signs:
            raise KeyNotValidForUse(f"key {entry.kid} does not sign {purpose}")
        if not _is_number(iat):
            raise ArtifactMalformed("the artifact has no numeric iat claim")
        moment = float(iat)
        if not entry.covers(moment, leeway_seconds=leeway_seconds):
            raise KeyNotValidAtIat(
                f"signed at {_iso(moment)} by key {entry.kid}, which signed only from "
                f"{entry.period_text()}"
            )
        return entry

    def __repr__(self) -> str:
        return f"KeyHistory(issuer={self.issuer!r}, keys={len(self._keys)})"


def key_history_claims(
    *,
    issuer: str,
    keys: Iterable[tuple[Mapping[str, Any], datetime, datetime | None]],
    signs: Iterable[str] = PURPOSES,
) -> dict[str, Any]:
    """The claims of a key history over ``(public jwk, not_before, not_after)``, oldest first.

    Times become whole seconds, rounded outwards (``not_before`` down, ``not_after`` up), so
    an artifact whose ``iat`` was truncated to a second still falls inside. ``iat`` is the
    latest ``not_before``: the history is the same until the next rotation.
    """
    uses = list(signs)
    periods = sorted(
        (
            math.floor(not_before.timestamp()),
            str(jwk.get("kid", "")),
            dict(jwk),
            None if not_after is None else math.ceil(not_after.timestamp()),
        )
        for jwk, not_before, not_after in keys
    )
    if not periods:
        raise ValueError("a key history lists at least one key")
    entries = [
        {"jwk": jwk, "not_before": start, "not_after": end, "signs": uses}
        for start, _, jwk, end in periods
    ]
    return {"iss": issuer, "iat": periods[-1][0], "keys": entries}


def verify_key_history(
    token: str, *, now: datetime, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS
) -> KeyHistory:
    """The history in ``token`` if it is well formed, self-consistent, signed by a key it
    lists whose period covers its ``iat``, and not issued in the future.

    Raises KeyHistoryMalformed or KeyHistorySignatureInvalid.
    """
    try:
        header, payload, _, _ = parse_compact(token, max_chars=MAX_HISTORY_CHARS)
    except KeysError as exc:
        raise KeyHistoryMalformed(f"not a compact JWS: {exc.message}") from None
    try:
        claims = msgspec.json.decode(payload, type=_Claims)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise KeyHistoryMalformed(f"key history claims are not valid: {exc}") from None
    entries = _entries(claims)
    kid = header.get("kid")
    signer = entries.get(kid) if isinstance(kid, str) else None
    if signer is None:
        raise KeyHistorySignatureInvalid("the history is not signed by a key it lists")
    entry, public = signer
    try:
        verify_compact(
            token,
            resolve_key=lambda _header: public,
            typ=KEY_HISTORY_TYP,
            algorithms=(entry.alg,),
            max_chars=MAX_HISTORY_CHARS,
        )
    except MalformedJWS as exc:
        raise KeyHistoryMalformed(f"not a key history: {exc.message}") from None
    except KeysError as exc:
        raise KeyHistorySignatureInvalid(f"the history's signature: {exc.message}") from None
    if not entry.covers(claims.iat, leeway_seconds=leeway_seconds):
        raise KeyHistorySignatureInvalid(
            f"the history (issued {_iso(claims.iat)}) is signed by key {entry.kid}, which "
            f"signed only from {entry.period_text()}"
        )
    if claims.iat > now.timestamp() + leeway_seconds:
        raise KeyHistoryMalformed(f"the history is issued in the future ({_iso(claims.iat)})")
    return KeyHistory(
        issuer=claims.iss, issued_at=claims.iat, signed_by=entry.kid, keys=entries.values()
    )


def _entries(claims: _Claims) -> dict[str, tuple[HistoricKey, PublicKey]]:
    """The entries by kid, each checked on its own and against the others."""
    found: dict[str, tuple[HistoricKey, PublicKey]] = {}
    open_keys = 0
    for index, raw in enumerate(claims.keys):
        where = f"key history entry {index}"
        try:
            public = load_public_jwk(raw.jwk)
            kid = raw.jwk.get("kid")
            if not is_valid_kid(kid) or thumbprint(raw.jwk) != kid:
                raise KeyHistoryMalformed(f"{where}: kid is not the key's RFC 7638 thumbprint")
        except KeysError as exc:
            raise KeyHistoryMalformed(f"{where}: {exc.message}") from None
        alg = raw.jwk.get("alg")
        if alg not in _ALGORITHMS or _algorithm_of(public) != alg:
            raise KeyHistoryMalformed(f"{where}: alg must be EdDSA or ES256, fitting the key")
        if kid in found:
            raise KeyHistoryMalformed(f"{where}: key {kid} is listed twice")
        if raw.not_after is not None and raw.not_after < raw.not_before:
            raise KeyHistoryMalformed(f"{where}: not_after is before not_before")
        if raw.not_before > claims.iat:
            raise KeyHistoryMalformed(f"{where}: the key starts signing after the history")
        open_keys += raw.not_after is None
        entry = HistoricKey(
            kid=kid,
            alg=alg,
            jwk=dict(raw.jwk),
            not_before=raw.not_before,
            not_after=raw.not_after,
            # Uses this verifier does not know are kept out: nothing can ask for them.
            signs=tuple(use for use in raw.signs if use in PURPOSES),
        )
        found[kid] = (entry, public)
    if open_keys > 1:
        raise KeyHistoryMalformed("the history has more than one key that still signs")
    return found


class SignedArtifact(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact whose signature and signing time verified against a key history."""

    typ: str
    purpose: str
    kid: str
    iat: float
    claims: dict[str, Any]
    key: HistoricKey


def purpose_of(typ: object) -> str | None:
    """What a ``typ`` header says the artifact is (``receipts``, ...), None if not ours."""
    if not isinstance(typ, str):
        return None
    lowered = typ.lower().removeprefix("application/")
    return TYP_PURPOSES.get(lowered)


def verify_signed(
    token: str,
    history: KeyHistory,
    *,
    typ: str | None = None,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> SignedArtifact:
    """Check one of the registry's signed artifacts against the history: its ``typ`` is
    one we sign (``typ`` given: exactly that one), its key signs that kind in a period that
    covers its ``iat``, and the signature checks.

    Only who signed it and when: a token's expiry or a status list's freshness are for
    their own checks. Raises a SignedArtifactError.
    """
    try:
        header = parse_compact(token)[0]
    except KeysError as exc:
        raise ArtifactMalformed(f"not a compact JWS: {exc.message}") from None
    found = header.get("typ")
    purpose = purpose_of(found)
    if purpose is None or (typ is not None and purpose != purpose_of(typ)):
        wanted = typ or "one the registry signs"
        raise ArtifactMalformed(f"typ {str(found)[:64]!r} is not {wanted}")
    kid = header.get("kid")
    entry = history.get(kid)
    public = history.public_key(kid) if entry is not None and isinstance(kid, str) else None
    if entry is None or public is None:
        raise UnknownSigningKey(
            f"key {str(kid)[:128]!r} is not in the key history "
            f"(issued {_iso(history.issued_at)}); a newer history may list it"
        )
    try:
        verified = verify_compact(
            token, resolve_key=lambda _header: public, typ=str(found), algorithms=(entry.alg,)
        )
    except MalformedJWS as exc:
        raise ArtifactMalformed(exc.message) from None
    except KeysError as exc:
        raise ArtifactSignatureInvalid(f"{exc.code}: {exc.message}") from None
    try:
        claims = json.loads(verified.payload)
    except (ValueError, RecursionError):
        raise ArtifactMalformed("the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise ArtifactMalformed("the payload is not a JSON object")
    iat = claims.get("iat")
    if not _is_number(iat):
        raise ArtifactMalformed("the artifact has no numeric iat claim")
    key = history.key_for(kid, iat=iat, purpose=purpose, leeway_seconds=leeway_seconds)
    return SignedArtifact(
        typ=str(found), purpose=purpose, kid=key.kid, iat=float(iat), claims=claims, key=key
    )


def _algorithm_of(key: PublicKey) -> str | None:
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    return None


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(seconds)
