"""moderation: the publish gate's domain core (floor 3; imports only ``verifier`` and ``keys``).

- ``policy``: the TOML policy, validated at load (``load_policy``, ``default_policy``).
- ``evidence``: the values the gate collects; ``decision``: ``decide(evidence, policy)``, a
  pure function returning a ``Decision`` value with stable reason codes (``reasons``).
- ``consent``: the protocol through which the gate asks for consent evidence.
- ``classifiers``: supplied scores, an HTTP classifier, the optional NudeNet detector.
- ``signals``: the perceptual-hash signals (PDQ through the ``pdq`` adapter, pHash) of an
  image, in all eight flips and rotations; ``hashlists``: the in-memory index of the
  protected-hash lists; ``exchange``: the list file formats other systems exchange.
- ``prompts``: heuristic prompt-intent rules.
- ``redteam``: the red-team corpus (``redteam_corpus``), replayed through ``decide``.
"""

from __future__ import annotations

from moderation.classifiers import (
    Classifier,
    HttpClassifier,
    ImageInput,
    NudeNetClassifier,
    SuppliedScores,
    run_classifiers,
    validate_scores,
)
from moderation.consent import (
    CONSENT_REASONS,
    ConsentCheck,
    ConsentEvidenceSource,
    SourceAsset,
    SourceEvidence,
    check_sources,
    gate_codes,
)
from moderation.decision import (
    Decision,
    Finding,
    ReviewRoute,
    Status,
    decide,
    effective_scores,
    needs_consent,
    required_uses,
)
from moderation.errors import (
    ClassifierConfigInvalid,
    ClassifierHostNotAllowed,
    ClassifierNotInstalled,
    HashListError,
    HashListLineInvalid,
    HashListUnknown,
    HashValueInvalid,
    ModerationError,
    PolicyError,
    PolicyKeyMissing,
    PolicySyntaxInvalid,
    PolicyUnknownKey,
    PolicyValueInvalid,
    RedteamCaseInvalid,
)
from moderation.evidence import (
    ClassifierResult,
    Evidence,
    HashFacts,
    HashMatch,
    ImageFacts,
    InvalidScore,
    PromptFacts,
    ProvenanceFacts,
    Region,
    Restriction,
    SourceMatch,
    StepTiming,
    WatermarkFacts,
    decode_evidence,
    encode_evidence,
    image_facts,
)
from moderation.hashlists import (
    HashEntry,
    HashIndex,
    IndexHit,
    IndexRows,
    ListAction,
    ListScope,
    ListSpec,
    check_list_name,
    hash_facts,
    image_hits,
    source_matches,
)
from moderation.policy import Policy, default_policy, load_policy
from moderation.prompts import PromptIntent, PromptMatch, PromptRule, compile_rules
from moderation.reasons import REASONS, explain, score_code

__all__ = [
    "CONSENT_REASONS",
    "REASONS",
    "Classifier",
    "ClassifierConfigInvalid",
    "ClassifierHostNotAllowed",
    "ClassifierNotInstalled",
    "ClassifierResult",
    "ConsentCheck",
    "ConsentEvidenceSource",
    "Decision",
    "Evidence",
    "Finding",
    "HashEntry",
    "HashFacts",
    "HashIndex",
    "HashListError",
    "HashListLineInvalid",
    "HashListUnknown",
    "HashMatch",
    "HashValueInvalid",
    "HttpClassifier",
    "ImageFacts",
    "ImageInput",
    "IndexHit",
    "IndexRows",
    "InvalidScore",
    "ListAction",
    "ListScope",
    "ListSpec",
    "ModerationError",
    "NudeNetClassifier",
    "Policy",
    "PolicyError",
    "PolicyKeyMissing",
    "PolicySyntaxInvalid",
    "PolicyUnknownKey",
    "PolicyValueInvalid",
    "PromptFacts",
    "PromptIntent",
    "PromptMatch",
    "PromptRule",
    "ProvenanceFacts",
    "RedteamCaseInvalid",
    "Region",
    "Restriction",
    "ReviewRoute",
    "SourceAsset",
    "SourceEvidence",
    "SourceMatch",
    "Status",
    "StepTiming",
    "SuppliedScores",
    "WatermarkFacts",
    "check_list_name",
    "check_sources",
    "compile_rules",
    "decide",
    "decode_evidence",
    "default_policy",
    "effective_scores",
    "encode_evidence",
    "explain",
    "gate_codes",
    "hash_facts",
    "image_facts",
    "image_hits",
    "load_policy",
    "needs_consent",
    "required_uses",
    "run_classifiers",
    "score_code",
    "source_matches",
    "validate_scores",
]
