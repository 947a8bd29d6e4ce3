"""Errors of the stored registry (templates, signers, records, grants, status lists).

The format errors live in ``registry.consent.errors``; these are the ones only storage can
raise. Each has a stable ``code`` and a ``kind`` that the shell maps to an HTTP status.
"""

from __future__ import annotations

from registry.consent.errors import ConsentError
from registry.errors import RegistryError

__all__ = [
    "AssetIdsInvalidError",
    "AssetNotInFormError",
    "AssetUnknownError",
    "AssetUploadDuplicateError",
    "AudienceNotAllowedError",
    "DataUnavailableError",
    "FormReplayedError",
    "GrantClientInvalidError",
    "IdempotencyConflictError",
    "SignerExistsError",
    "StatusListNotFoundError",
    "SubjectRefInvalidError",
    "TemplateExistsError",
    "TemplateNotFoundError",
    "TemplateTextInvalidError",
    "WithdrawalRequiredError",
]


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
