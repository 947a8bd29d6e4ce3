"""Withdrawal of a consent by its signer: a compact JWS of type ``consent-withdrawal+jws``.

Only the key that signed the consent form can withdraw it. The header cannot choose the key:
whatever ``kid``, ``jwk`` or ``x5c`` it carries, the signature must verify with the consent's
own signer key, so a withdrawal signed by any other key fails.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads the annotations at runtime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from keys.errors import KeysError
from keys.jws import verify_compact
from registry.consent.errors import (
    WithdrawalInvalidError,
    WithdrawalMalformedError,
    WithdrawalMismatchError,
    WithdrawalTimeInvalidError,
)
from registry.consent.forms import DEFAULT_MAX_SKEW, parse_signed_payload

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import timedelta

    from keys.jwk import PublicKey

__all__ = ["WITHDRAWAL_TYP", "Withdrawal", "WithdrawalPayload", "verify_withdrawal"]

WITHDRAWAL_TYP: Final = "consent-withdrawal+jws"


class WithdrawalPayload(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    type: Literal["consent-withdrawal"]
    consent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    withdrawn_at: Annotated[datetime, msgspec.Meta(tz=True)]


class Withdrawal(msgspec.Struct, kw_only=True, frozen=True):
    """A verified withdrawal: which consent, when the signer withdrew it, and the JWS itself."""

    consent_id: str
    withdrawn_at: datetime
    header: dict[str, Any]
    token: str


def verify_withdrawal(
    token: str,
    *,
    consent_id: str,
    signer_key: PublicKey,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> Withdrawal:
    """Verify that the consent's own signer withdrew ``consent_id``; raise a ConsentError if not.

    Codes: withdrawal_malformed, withdrawal_invalid (any key but the signer's),
    withdrawal_mismatch, withdrawal_time_invalid, and the strict-JSON codes for the payload.
    """

    def resolve_key(_header: Mapping[str, Any]) -> PublicKey:
        return signer_key

    try:
        verified = verify_compact(token, resolve_key=resolve_key, typ=WITHDRAWAL_TYP)
    except KeysError as exc:
        if exc.code in {"signature_invalid", "algorithm_not_allowed"}:
            raise WithdrawalInvalidError(
                "the withdrawal is not signed by the consent's signer key"
            ) from None
        raise WithdrawalMalformedError(f"withdrawal: {exc.message}") from None
    payload = parse_signed_payload(verified.payload, WithdrawalPayload)
    if payload.consent_id != consent_id:
        raise WithdrawalMismatchError("the withdrawal names another consent")
    if payload.withdrawn_at > now + max_skew:
        raise WithdrawalTimeInvalidError("withdrawn_at lies in the future")
    return Withdrawal(
        consent_id=payload.consent_id,
        withdrawn_at=payload.withdrawn_at,
        header=verified.header,
        token=token,
    )
