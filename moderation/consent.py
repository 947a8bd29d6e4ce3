"""How the gate asks for consent evidence, and how the answers become reason codes.

The gate does not know how consent is stored or how tokens are verified: it asks a
``ConsentEvidenceSource`` "is this token valid for this asset, these uses and this
generator?". ``registry.consent`` implements the protocol and ``registry.app`` wires it in;
moderation never imports the registry (it sits a floor below).

The answer's ``reasons`` are the consent domain's codes, ``verifier.tokens.Reason`` (the
token's one vocabulary). ``CONSENT_REASONS`` is the one table that turns them into gate
reason codes, with an entry for every ``Reason``; a code missing from it anyway (a newer
registry, a typo) becomes ``consent_token_invalid``, so an unknown answer never lets an
image through.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

import msgspec

from verifier.tokens import Reason

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

__all__ = [
    "CONSENT_REASONS",
    "ConsentCheck",
    "ConsentEvidenceSource",
    "SourceAsset",
    "SourceError",
    "SourceEvidence",
    "check_sources",
    "gate_codes",
]

SourceError: TypeAlias = Literal["timeout", "unavailable"]

CONSENT_REASONS: Mapping[Reason, str] = MappingProxyType(
    {
        Reason.MALFORMED: "consent_token_invalid",
        Reason.SIGNATURE: "consent_token_invalid",
        Reason.ISSUER: "consent_token_invalid",
        Reason.NOT_YET_VALID: "consent_token_invalid",
        Reason.EXPIRED: "consent_token_expired",
        Reason.REVOKED: "consent_token_revoked",
        # Suspended is revocation that may be lifted later; until then it is not consent.
        Reason.SUSPENDED: "consent_token_revoked",
        Reason.STATUS_UNKNOWN: "consent_status_unknown",
        Reason.AUDIENCE: "consent_wrong_audience",
        Reason.ASSET_MISMATCH: "consent_asset_mismatch",
        Reason.USE_NOT_PERMITTED: "consent_use_not_permitted",
    }
)
_UNKNOWN_CONSENT_REASON = "consent_token_invalid"


class ConsentCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The consent domain's answer about one token.

    ``reasons`` are the consent domain's codes (``verifier.tokens.Reason``; stored evidence
    holds their values, so a code may be added but never renamed or removed); ``uses`` are
    the uses the token grants (empty when it could not be read). ``asset_sha256`` and
    ``asset_phash`` are the SHA-256 and perceptual hash the registry holds for the asked
    ``asset_id``, when it holds that asset (the pHash only when the photo itself was
    uploaded with the consent).
    """

    valid: bool
    reasons: tuple[Reason, ...] = ()
    consent_id: str | None = None
    jti: str | None = None
    uses: tuple[str, ...] = ()
    asset_sha256: str | None = None
    asset_phash: str | None = None
    signer_role: str | None = None
    """Who signed the consent form: ``subject``, ``guardian``, ``agent`` or
    ``rights_holder`` (None when the registry could not say)."""


class ConsentEvidenceSource(Protocol):
    """Anything that can check a consent token for the gate (the registry, in production)."""

    async def check(
        self,
        *,
        token: str,
        asset_id: str,
        asset_sha256: str | None,
        generator_client_id: str,
        uses_needed: Collection[str],
    ) -> ConsentCheck:
        """Check ``token`` for this asset, generator (the token's audience) and uses.

        Never raises for a bad token: every way it fails is a reason in the answer.
        """
        ...


class SourceAsset(msgspec.Struct, frozen=True, kw_only=True):
    """A source asset as the caller declared it."""

    type: str
    asset_id: str
    sha256: str | None = None
    consent_token: str | None = None


class SourceEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """What the gate learned about one declared source asset.

    ``check`` is None when no token came with it or the check did not complete (``error``).
    The token itself is not kept: it is a bearer credential.
    """

    type: str
    asset_id: str
    declared_sha256: str | None = None
    token_present: bool = False
    check: ConsentCheck | None = None
    error: SourceError | None = None


def gate_codes(check: ConsentCheck) -> tuple[str, ...]:
    """The gate reason codes of a check, in the order of its reasons, without repeats.

    A check that says it is not valid but gives no reason, or valid with reasons, is
    inconsistent; both are read as ``consent_token_invalid``.
    """
    codes = [CONSENT_REASONS.get(reason, _UNKNOWN_CONSENT_REASON) for reason in check.reasons]
    if not check.valid and not codes:
        codes.append(_UNKNOWN_CONSENT_REASON)
    return tuple(dict.fromkeys(codes))


async def check_sources(
    source: ConsentEvidenceSource,
    assets: Sequence[SourceAsset],
    *,
    generator_client_id: str,
    uses_by_type: Mapping[str, Collection[str]],
    timeout: float,  # noqa: ASYNC109 - one bound per check, not one around the whole gather
) -> tuple[SourceEvidence, ...]:
    """Check every token-bearing asset concurrently, each bounded by ``timeout`` seconds.

    ``uses_by_type`` gives the uses to ask for by asset type (see
    ``moderation.decision.required_uses``); a type it does not name asks for none. An
    asset without a token gets evidence with ``check=None``; an exception from the source or
    a late answer is recorded as ``error`` ("unavailable"/"timeout"), never raised.
    """

    async def one(asset: SourceAsset) -> SourceEvidence:
        base = SourceEvidence(
            type=asset.type,
            asset_id=asset.asset_id,
            declared_sha256=asset.sha256,
            token_present=asset.consent_token is not None,
        )
        if asset.consent_token is None:
            return base
        uses = tuple(uses_by_type.get(asset.type, ()))
        try:
            async with asyncio.timeout(timeout):
                check = await source.check(
                    token=asset.consent_token,
                    asset_id=asset.asset_id,
                    asset_sha256=asset.sha256,
                    generator_client_id=generator_client_id,
                    uses_needed=uses,
                )
        except TimeoutError:
            return msgspec.structs.replace(base, error="timeout")
        except Exception:  # noqa: BLE001 - any failure of the source is recorded, never raised
            return msgspec.structs.replace(base, error="unavailable")
        return msgspec.structs.replace(base, check=check)

    return tuple(await asyncio.gather(*(one(asset) for asset in assets)))
