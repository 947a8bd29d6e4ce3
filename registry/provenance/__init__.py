"""Provenance of generated outputs (issue 4): sign, record, verify and look up.

``ProvenanceService`` holds this process's trust settings, bounded image workers and the
in-memory perceptual-hash index of signed outputs; ``affected_outputs`` lists what a consent
withdrawal must take down. The C2PA and image work itself is ``verifier``'s.
"""

from __future__ import annotations

from registry.provenance.errors import (
    ConsentTokenExpired,
    ConsentTokenRejected,
    DecisionNotAllowed,
    DecisionUnknown,
    GenerationAlreadySigned,
    ImageWorkBusy,
    ImageWorkTimeout,
    PartInvalid,
    PartMissing,
    ProvenanceError,
    WatermarkKeyInvalid,
    WatermarkKeyTaken,
    WatermarkKeyUnknown,
)
from registry.provenance.images import ImageCheck, Inspected, Upload
from registry.provenance.index import PhashIndex
from registry.provenance.service import (
    LOOKUP_LIMIT,
    ConsentStatusView,
    DecisionSource,
    Lookup,
    LookupMatch,
    OutputRecord,
    ProvenanceService,
    ProvenanceSettings,
    RegistryMatch,
    Signed,
    SignMetadata,
    SignPlan,
    TokenChecker,
    Verification,
    WatermarkFinding,
    WatermarkOutput,
    affected_outputs,
)
from registry.provenance.work import BoundedWork

__all__ = [
    "LOOKUP_LIMIT",
    "BoundedWork",
    "ConsentStatusView",
    "ConsentTokenExpired",
    "ConsentTokenRejected",
    "DecisionNotAllowed",
    "DecisionSource",
    "DecisionUnknown",
    "GenerationAlreadySigned",
    "ImageCheck",
    "ImageWorkBusy",
    "ImageWorkTimeout",
    "Inspected",
    "Lookup",
    "LookupMatch",
    "OutputRecord",
    "PartInvalid",
    "PartMissing",
    "PhashIndex",
    "ProvenanceError",
    "ProvenanceService",
    "ProvenanceSettings",
    "RegistryMatch",
    "SignMetadata",
    "SignPlan",
    "Signed",
    "TokenChecker",
    "Upload",
    "Verification",
    "WatermarkFinding",
    "WatermarkKeyInvalid",
    "WatermarkKeyTaken",
    "WatermarkKeyUnknown",
    "WatermarkOutput",
    "affected_outputs",
]
