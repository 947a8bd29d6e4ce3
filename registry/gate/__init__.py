"""The publish gate in the service (issue 5): decisions, their storage and the hash lists.

``GateService`` collects the evidence ``moderation.decide`` needs (image, prompt, consent,
provenance, classifiers, protected hashes), each step bounded in time, and records every
decision with its evidence, review ticket and audit event before answering. ``HashLists``
keeps this process's in-memory hash index at the database's version. ``StoredDecisions``
lets signed manifests name a decision. ``open_review_ticket`` is shared with the review
queue.
"""

from __future__ import annotations

from registry.gate.errors import (
    DecisionNotFound,
    DecisionNotRecorded,
    GateBusy,
    GateError,
    GenerationConflict,
    GeneratorClientRequired,
    HashListExists,
    HashListNotFound,
    HashListUploadInvalid,
    ImageMissing,
    PromptScoreInvalid,
    RequestPartInvalid,
)
from registry.gate.hashlists import (
    HashLists,
    HashListView,
    ImageAdded,
    ImportResult,
    add_image,
    create_list,
    disable_entries,
    export_file,
    get_list,
    import_entries,
    list_lists,
)
from registry.gate.repository import (
    DecisionConsent,
    DecisionRow,
    DecisionSummary,
    NewDecision,
    list_decisions,
    open_review_ticket,
)
from registry.gate.requests import (
    CheckRequest,
    GateResponse,
    PromptCheckRequest,
    RequestMetadata,
    SourceAssetIn,
)
from registry.gate.service import GateOutcome, GateService, GateSettings, StoredDecisions

__all__ = [
    "CheckRequest",
    "DecisionConsent",
    "DecisionNotFound",
    "DecisionNotRecorded",
    "DecisionRow",
    "DecisionSummary",
    "GateBusy",
    "GateError",
    "GateOutcome",
    "GateResponse",
    "GateService",
    "GateSettings",
    "GenerationConflict",
    "GeneratorClientRequired",
    "HashListExists",
    "HashListNotFound",
    "HashListUploadInvalid",
    "HashListView",
    "HashLists",
    "ImageAdded",
    "ImageMissing",
    "ImportResult",
    "NewDecision",
    "PromptCheckRequest",
    "PromptScoreInvalid",
    "RequestMetadata",
    "RequestPartInvalid",
    "SourceAssetIn",
    "StoredDecisions",
    "add_image",
    "create_list",
    "disable_entries",
    "export_file",
    "get_list",
    "import_entries",
    "list_decisions",
    "list_lists",
    "open_review_ticket",
]
