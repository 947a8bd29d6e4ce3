"""Detached provenance assertions: a JWS (``typ: provenance+jwt``) about one output image.

It names the output's SHA-256 and perceptual hash, the generation, the consent tokens used
(jti and status-list entry) and the gate decision, signed with the token key ring, so it
verifies against the published JWKS wherever the image's own metadata was stripped.

Verification pins the algorithms, checks ``typ``, and takes the key only from the JWKS or
the key history the caller passes (by ``kid``); a key or key URL in the header is never
used. With a history (``verifier.key_history``) the assertion's ``iat`` must also lie in its
key's signing period, so it verifies long after that key has left the JWKS.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from keys.errors import KeysError, MalformedJWS
from keys.jwk import is_valid_kid, load_public_jwk
from keys.jws import sign_compact, verify_compact
from verifier.clock import DEFAULT_LEEWAY_SECONDS
from verifier.errors import AssertionImageMismatch, AssertionMalformed, AssertionSignatureInvalid
from verifier.key_history import KeyHistory, KeyUseError
from verifier.report import ConsentRef, DecisionRef

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from keys.jwk import PublicKey
    from keys.signer import Signer

__all__ = [
    "ASSERTION_ALGORITHMS",
    "ASSERTION_TYP",
    "AssertionKeyNotValid",
    "ConsentClaim",
    "DecisionClaim",
    "ProvenanceClaims",
    "sign_assertion",
    "verify_assertion",
]

ASSERTION_TYP = "provenance+jwt"
ASSERTION_ALGORITHMS = frozenset({"EdDSA", "ES256"})
_MAX_KEYS = 100

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_Uri = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
_Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_Hash64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]
_Index = Annotated[int, msgspec.Meta(ge=0)]


class AssertionKeyNotValid(AssertionSignatureInvalid):
    """The key history says the assertion's key did not sign then (or does not sign these).

    ``code`` is the history's reason: ``key_not_valid_at_iat`` or ``key_not_valid_for_use``.
    """

    code = "key_not_valid_at_iat"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class StatusListClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    idx: _Index
    uri: _Uri


class StatusClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status_list: StatusListClaim


class ConsentClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    jti: _Text
    status: StatusClaim


class DecisionClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: _Text
    outcome: _Text
    policy_version: _Text


class ProvenanceClaims(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The claims of a provenance assertion; ``jti`` is the output id."""

    iss: _Uri
    iat: _Index
    jti: _Text
    sha256: _Sha256
    phash: _Hash64
    generation_id: _Text
    consents: tuple[ConsentClaim, ...]
    decision: DecisionClaim | None

    @classmethod
    def build(
        cls,
        *,
        iss: str,
        jti: str,
        sha256: str,
        phash: str,
        generation_id: str,
        consents: Sequence[ConsentRef],
        decision: DecisionRef | None,
        iat: int | None = None,
    ) -> ProvenanceClaims:
        """Claims from our value types; validated as a verifier would decode them."""
        raw: dict[str, Any] = {
            "iss": iss,
            "iat": int(time.time()) if iat is None else iat,
            "jti": jti,
            "sha256": sha256,
            "phash": phash,
            "generation_id": generation_id,
            "consents": [
                {
                    "jti": ref.jti,
                    "status": {"status_list": {"idx": ref.status_idx, "uri": ref.status_list_uri}},
                }
                for ref in consents
            ],
            "decision": None if decision is None else msgspec.structs.asdict(decision),
        }
        try:
            return msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise AssertionMalformed(f"provenance claims are not valid: {exc}") from None

    def consent_refs(self) -> tuple[ConsentRef, ...]:
        return tuple(
            ConsentRef(
                jti=claim.jti,
                status_list_uri=claim.status.status_list.uri,
                status_idx=claim.status.status_list.idx,
            )
            for claim in self.consents
        )

    def decision_ref(self) -> DecisionRef | None:
        if self.decision is None:
            return None
        return DecisionRef(
            id=self.decision.id,
            outcome=self.decision.outcome,
            policy_version=self.decision.policy_version,
        )


def sign_assertion(claims: ProvenanceClaims, signer: Signer) -> str:
    if signer.alg not in ASSERTION_ALGORITHMS:
        raise AssertionSignatureInvalid(f"signer algorithm {signer.alg!r} is not allowed")
    return sign_compact(msgspec.json.encode(claims), signer, typ=ASSERTION_TYP)


def verify_assertion(
    token: str,
    jwks: Mapping[str, Any] | KeyHistory,
    *,
    sha256: str | None,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
) -> ProvenanceClaims:
    """The claims of ``token`` if it verifies against ``jwks`` and names ``sha256``.

    ``jwks`` may be a verified key history: then the key must also have been signing
    assertions at the assertion's ``iat`` (``leeway_seconds`` either side).
    ``sha256`` None skips the image binding (only for callers that check it themselves).
    Raises AssertionMalformed, AssertionSignatureInvalid (AssertionKeyNotValid among them)
    or AssertionImageMismatch.
    """
    history: KeyHistory | None = None
    keys: dict[str, PublicKey] = {}
    if isinstance(jwks, KeyHistory):
        history = jwks
    else:
        keys = _keys_by_kid(jwks)

    def resolve(header: Mapping[str, Any]) -> PublicKey | None:
        kid = header.get("kid")
        if not isinstance(kid, str):
            return None
        return history.public_key(kid) if history is not None else keys.get(kid)

    try:
        verified = verify_compact(
            token, resolve_key=resolve, typ=ASSERTION_TYP, algorithms=ASSERTION_ALGORITHMS
        )
    except MalformedJWS as exc:
        raise AssertionMalformed(f"not a compact JWS: {exc.message}") from None
    except KeysError as exc:
        raise AssertionSignatureInvalid(f"{exc.code}: {exc.message}") from None
    try:
        claims = msgspec.json.decode(verified.payload, type=ProvenanceClaims)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise AssertionMalformed(f"provenance claims are not valid: {exc}") from None
    if history is not None:
        try:
            history.key_for(
                verified.header.get("kid"),
                iat=claims.iat,
                purpose="assertions",
                leeway_seconds=leeway_seconds,
            )
        except KeyUseError as exc:
            raise AssertionKeyNotValid(f"{exc.code}: {exc.message}", code=exc.code) from None
    if sha256 is not None and claims.sha256 != sha256.lower():
        raise AssertionImageMismatch("the assertion is about a different image")
    return claims


def _keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise AssertionSignatureInvalid("the JWKS has no 'keys' list")
    keys: dict[str, PublicKey] = {}
    for entry in entries[:_MAX_KEYS]:
        if not isinstance(entry, dict) or not is_valid_kid(entry.get("kid")):
            continue
        try:
            keys[entry["kid"]] = load_public_jwk(entry)
        except KeysError:
            # A JWKS may publish keys this verifier cannot use; they simply resolve nothing.
            continue
    return keys
