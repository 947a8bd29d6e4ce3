"""Errors of the consent domain, each with a stable ``code`` and a ``kind``.

``kind`` is one of ``invalid``, ``forbidden``, ``not_found`` and ``conflict``: the shell maps
kinds to HTTP statuses once, so it never needs to know the individual classes. Messages say
what was wrong with the input; they never echo key material or personal data.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

from registry.core.errors import RegistryError

Kind: TypeAlias = Literal["invalid", "forbidden", "not_found", "conflict"]


class ConsentError(RegistryError):
    """Base of every error raised by ``registry.consent`` (under the shell's one root)."""

    code = "consent_error"
    kind: ClassVar[Kind] = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignedPayloadError(ConsentError):
    """A signed payload is not strict JSON of its format's shape.

    ``code`` is the strict-JSON code (malformed_json, duplicate_key, too_deep, unknown_field,
    missing_field, invalid_type, invalid_value), so callers of this domain see only
    ConsentError while clients still learn exactly what was wrong.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# Consent forms: the JWS envelope and the signer's key.


class FormMalformedError(ConsentError):
    """The form is not a well-formed compact JWS of type ``consent-form+jws``."""

    code = "form_malformed"


class AlgorithmNotAllowedError(ConsentError):
    """The JWS algorithm is not allowed, or does not fit the signer's key."""

    code = "algorithm_not_allowed"


class FormSignatureInvalidError(ConsentError):
    """The signature does not verify over the signed bytes with the signer's key."""

    code = "form_signature_invalid"


class SignerUnknownError(ConsentError):
    """The header names no usable key: no kid/x5c/jwk, or a kid that is not enrolled."""

    code = "signer_unknown"


class SignerAmbiguousError(ConsentError):
    """The header names its key in more than one way (kid, x5c, jwk); exactly one must apply."""

    code = "signer_ambiguous"


class SignerKeyInvalidError(ConsentError):
    """The signer's key is malformed, private, or of a type or size we do not accept."""

    code = "signer_key_invalid"


class SignerUntrustedError(ConsentError):
    """The ``x5c`` chain does not verify to a configured consent-signer anchor."""

    code = "signer_untrusted"


class SignerKeyMismatchError(ConsentError):
    """The enrolled key belongs to another subject or role than the form names."""

    code = "signer_key_mismatch"


# Consent forms: the payload.


class VersionUnsupportedError(ConsentError):
    """The form's ``version`` is not one this service understands."""

    code = "version_unsupported"


class TemplateUnknownError(ConsentError):
    """The form names a consent template that is not registered."""

    code = "template_unknown"


class TemplateHashMismatchError(ConsentError):
    """The form's template hash differs from the registered text's SHA-256."""

    code = "template_hash_mismatch"


class UseUnknownError(ConsentError):
    """A use is not in the controlled vocabulary."""

    code = "use_unknown"


class UsesDuplicateError(ConsentError):
    """A list of uses names the same use twice."""

    code = "uses_duplicate"


class UsesOverlapError(ConsentError):
    """A use is both permitted and prohibited."""

    code = "uses_overlap"


class UseNotOfferedError(ConsentError):
    """A permitted use is not among the uses the template offers."""

    code = "use_not_offered"


class UsesEmptyError(ConsentError):
    """A token or form must name at least one use."""

    code = "uses_empty"


class UsesNotPermittedError(ConsentError):
    """Requested uses fall outside what the consent permits."""

    code = "uses_not_permitted"


class ValidityInvalidError(ConsentError):
    """The validity window is empty, or the signing time lies in the future."""

    code = "validity_invalid"


class ValidityTooLongError(ConsentError):
    """The validity window is longer than the configured maximum."""

    code = "validity_too_long"


class ValidityExpiredError(ConsentError):
    """The validity window has already ended."""

    code = "validity_expired"


class AssetInvalidError(ConsentError):
    """An asset hash is not 64 lowercase hex digits, or an asset is listed twice."""

    code = "asset_invalid"


# Withdrawal.


class WithdrawalMalformedError(ConsentError):
    """The withdrawal is not a well-formed ``consent-withdrawal+jws`` with a valid payload."""

    code = "withdrawal_malformed"


class WithdrawalInvalidError(ConsentError):
    """The withdrawal is not signed by the consent's own signer key."""

    code = "withdrawal_invalid"
    kind = "forbidden"


class WithdrawalMismatchError(ConsentError):
    """The withdrawal names a different consent."""

    code = "withdrawal_mismatch"


class WithdrawalTimeInvalidError(ConsentError):
    """The withdrawal's ``withdrawn_at`` lies in the future."""

    code = "withdrawal_time_invalid"


# Tokens.


class TtlInvalidError(ConsentError):
    """A token lifetime must be positive."""

    code = "ttl_invalid"


# Record state, raised by the storage layer built on this package.


class ConsentNotFoundError(ConsentError):
    """No such consent record for this tenant (another tenant's record reads as absent)."""

    code = "consent_not_found"
    kind = "not_found"


class GrantMissingError(ConsentError):
    """The client holds no grant for this consent."""

    code = "grant_missing"
    kind = "forbidden"


class ConsentNotActiveError(ConsentError):
    """The consent is withdrawn, erased, expired or suspended, so it cannot issue tokens."""

    code = "consent_not_active"
    kind = "conflict"


class ConsentSuspendedError(ConsentError):
    """The consent is suspended already; the suspension on record stays as it is."""

    code = "consent_suspended"
    kind = "conflict"


class ConsentNotSuspendedError(ConsentError):
    """Only a suspended consent can be resumed."""

    code = "consent_not_suspended"
    kind = "conflict"


class SuspensionReasonInvalidError(ConsentError):
    """A suspension's reason, when given, is 1 to 1000 characters."""

    code = "reason_invalid"


# Records: what storage and the record lifecycle can refuse.


class TemplateExistsError(ConsentError):
    """A template with this id is registered; templates never change once people sign them."""

    code = "template_exists"
    kind = "conflict"


class TemplateNotFoundError(ConsentError):
    code = "template_not_found"
    kind = "not_found"


class TemplateTextInvalidError(ConsentError):
    """The template id, title or text is empty, too long or of the wrong shape."""

    code = "template_invalid"


class SignerExistsError(ConsentError):
    """This tenant has already enrolled this public key."""

    code = "signer_exists"
    kind = "conflict"


class IdempotencyConflictError(ConsentError):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"
    kind = "conflict"


class FormReplayedError(ConsentError):
    """This exact signed form was submitted before (a record exists for it)."""

    code = "form_replayed"
    kind = "conflict"


class AssetNotInFormError(ConsentError):
    """An uploaded file's SHA-256 is not among the assets the signed form lists."""

    code = "asset_not_in_form"


class AssetUploadDuplicateError(ConsentError):
    """The same file was uploaded twice in one submission."""

    code = "asset_upload_duplicate"


class AssetUnknownError(ConsentError):
    """A token request names an asset id that is not an asset of the consent."""

    code = "asset_unknown"


class GrantClientInvalidError(ConsentError):
    """The client to grant does not exist, is disabled, or is not a generator client."""

    code = "grant_client_invalid"


class WithdrawalRequiredError(ConsentError):
    """Withdrawing needs the signer's signed withdrawal (or an admin with a reason)."""

    code = "withdrawal_required"


class StatusListNotFoundError(ConsentError):
    code = "status_list_not_found"
    kind = "not_found"


class DataUnavailableError(RegistryError):
    """Sealed personal data does not decrypt although the record is not erased."""

    code = "consent_data_unavailable"
    kind = "internal"


class AudienceNotAllowedError(ConsentError):
    """Only a publisher may check a token on behalf of another audience."""

    code = "audience_not_allowed"
    kind = "forbidden"


class SubjectRefInvalidError(ConsentError):
    """A subject reference must be 1 to 256 characters."""

    code = "subject_ref_invalid"


class AssetIdsInvalidError(ConsentError):
    """``asset_ids``, when given, names at least one asset and none twice."""

    code = "asset_ids_invalid"
