"""Errors of the publish gate and the hash-list administration, each with a stable ``code``.

A gate outcome is never an error: a revoked token or a bomb image is a reason in a persisted
decision. These are for requests the gate refuses before deciding anything (nothing is
stored), and for the one fault after which it cannot answer: a decision it could not record.
"""

from __future__ import annotations

from typing import ClassVar

from registry.core.errors import Kind, RegistryError

__all__ = [
    "DecisionNotFound",
    "DecisionNotRecorded",
    "FeaturePaused",
    "FeatureUnknown",
    "GateBusy",
    "GateError",
    "GenerationConflict",
    "GeneratorClientRequired",
    "HashListExists",
    "HashListNotFound",
    "HashListUploadInvalid",
    "ImageMissing",
    "PromptScoreInvalid",
    "RequestPartInvalid",
    "SuspendedMisuse",
    "SuspensionLifted",
    "SuspensionNotFound",
]


class GateError(RegistryError):
    """Base of the gate's errors."""

    code = "gate_error"
    kind: ClassVar[Kind] = "invalid"


class ImageMissing(GateError):
    """The publish gate needs exactly one image: an upload or an ``image_url``."""

    code = "image_missing"
    kind = "invalid"


class PromptScoreInvalid(GateError):
    """A ``prompt_scores`` entry that is not a number in 0..1 under a category name (a-z,
    0-9, _). Unlike classifier scores of the output, these come from the caller in the
    request itself: a broken one is the caller's mistake to fix, not evidence to decide on."""

    code = "prompt_score_invalid"
    kind = "invalid"


class RequestPartInvalid(GateError):
    """A multipart body whose parts are unknown, repeated, missing or of the wrong kind."""

    code = "request_part_invalid"
    kind = "malformed"


class GeneratorClientRequired(GateError):
    """Consent tokens were attached without ``metadata.generator_client_id`` (their audience)."""

    code = "generator_client_id_required"
    kind = "invalid"


class GenerationConflict(GateError):
    """This client already has a decision for this ``generation_id`` with another image or
    request; a generation is decided once."""

    code = "generation_conflict"
    kind = "conflict"


class GateBusy(GateError):
    """Every image worker is busy; nothing was decided or stored. Retry later."""

    code = "gate_busy"
    kind = "unavailable"


class DecisionNotRecorded(GateError):
    """The decision could not be stored with its audit event, so none is returned."""

    code = "decision_not_recorded"
    kind = "unavailable"


class DecisionNotFound(GateError):
    code = "decision_not_found"
    kind = "not_found"


class HashListExists(GateError):
    code = "hash_list_exists"
    kind = "conflict"


class HashListNotFound(GateError):
    code = "hash_list_not_found"
    kind = "not_found"


class HashListUploadInvalid(GateError):
    """An entries upload that is neither JSON ``{"entries": [...]}`` nor one CSV / JSON-lines
    file part."""

    code = "hash_list_upload_invalid"
    kind = "malformed"


# Kill-switches (registry.gate.misuse).


class SuspensionNotFound(GateError):
    code = "suspension_not_found"
    kind = "not_found"


class SuspensionLifted(GateError):
    """The suspension was lifted already; a lift is not repeated."""

    code = "suspension_lifted"
    kind = "conflict"


class FeatureUnknown(GateError):
    code = "feature_unknown"
    kind = "not_found"


class SuspendedMisuse(GateError):
    """The client (or the model it names) is suspended after a stop condition tripped: it
    signs nothing until an admin lifts the suspension."""

    code = "suspended_misuse"
    kind = "forbidden"


class FeaturePaused(GateError):
    """An operator paused the feature for everyone."""

    code = "feature_paused"
    kind = "unavailable"
