"""Errors of the provenance domain, each with a stable ``code`` and a ``kind``."""

from __future__ import annotations

from typing import ClassVar

from registry.core.errors import Kind, RegistryError

__all__ = [
    "ConsentTokenExpired",
    "ConsentTokenRejected",
    "DecisionNotAllowed",
    "DecisionUnknown",
    "GenerationAlreadySigned",
    "ImageWorkBusy",
    "ImageWorkTimeout",
    "PartInvalid",
    "PartMissing",
    "ProvenanceError",
    "WatermarkKeyInvalid",
    "WatermarkKeyTaken",
    "WatermarkKeyUnknown",
]


class ProvenanceError(RegistryError):
    """Base of the provenance domain's errors."""

    code = "provenance_error"
    kind: ClassVar[Kind] = "invalid"


class ConsentTokenRejected(ProvenanceError):
    """A consent token given for signing is not valid now; ``extra["tokens"]`` says why."""

    code = "consent_token_invalid"
    kind = "invalid"


class ConsentTokenExpired(ConsentTokenRejected):
    """Every consent token that fails for signing fails only because it has expired.

    Its own code, because the remedy differs: ask for fresh tokens and sign again.
    """

    code = "token_expired"
    kind = "invalid"


class GenerationAlreadySigned(ProvenanceError):
    """This generator client already signed an output for this generation id."""

    code = "generation_already_signed"
    kind = "conflict"


class DecisionUnknown(ProvenanceError):
    """The gate decision named for signing is not one this deployment can vouch for."""

    code = "decision_unknown"
    kind = "invalid"


class DecisionNotAllowed(ProvenanceError):
    """The gate decision named for signing does not allow publication (review or blocked)."""

    code = "decision_not_allowed"
    kind = "invalid"


class PartMissing(ProvenanceError):
    """A required multipart part is absent."""

    code = "part_missing"
    kind = "malformed"


class PartInvalid(ProvenanceError):
    """A multipart part that is unknown, repeated or not shaped as the endpoint expects."""

    code = "part_invalid"
    kind = "malformed"


class ImageWorkTimeout(ProvenanceError):
    """Decoding, hashing or C2PA work on one image took longer than its time bound."""

    code = "image_work_timeout"
    kind = "unavailable"


class ImageWorkBusy(ProvenanceError):
    """Every image worker stayed busy for the whole time bound."""

    code = "image_work_busy"
    kind = "unavailable"


class WatermarkKeyTaken(ProvenanceError):
    """Another output took this output's fresh watermark key between the check and the insert
    (two signings drew the same 40-bit key at once); nothing was signed, try again."""

    code = "watermark_key_taken"
    kind = "unavailable"


class WatermarkKeyInvalid(ProvenanceError):
    """A watermark key is 10 lower-case hex characters (40 bits), as the reader prints it."""

    code = "watermark_key_invalid"
    kind = "malformed"


class WatermarkKeyUnknown(ProvenanceError):
    """No output of ours carries this watermark key."""

    code = "watermark_key_not_found"
    kind = "not_found"
