"""The gate's reason codes: stable strings a program can act on, each with a plain-language line.

A code never changes meaning once shipped; new situations get new codes. Each code has:

- a default action (``allow``, ``review`` or ``block``), which a policy may override;
- a floor, the mildest action a policy may give it. Reasons that mean "evidence is missing,
  late or broken" or "a real person's consent does not cover this" have the floor ``review``:
  no policy can turn them into ``allow``, which is how the gate stays fail-closed whatever
  the operator writes;
- a step of the pipeline, which orders the reasons of a decision.

Classifier scores get one code per category and band, built by :func:`score_code`:
``score_<category>_review`` (the score reached the category's review threshold) and
``score_<category>_block`` (it reached the block threshold). Only the higher band is
reported for one score. The categories are those the active policy names.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ACTIONS",
    "REASONS",
    "SCORE_BANDS",
    "STEPS",
    "Action",
    "Band",
    "ReasonInfo",
    "Step",
    "action_rank",
    "explain",
    "floor_of",
    "is_score_code",
    "parse_prompt_score_code",
    "parse_score_code",
    "prompt_score_code",
    "score_code",
    "step_of",
]

Action: TypeAlias = Literal["allow", "review", "block"]
Band: TypeAlias = Literal["review", "block"]
Step: TypeAlias = Literal["access", "image", "prompt", "consent", "provenance", "scores", "hashes"]

ACTIONS: tuple[Action, ...] = ("allow", "review", "block")
SCORE_BANDS: tuple[Band, ...] = ("review", "block")
STEPS: tuple[Step, ...] = (
    "access",
    "image",
    "prompt",
    "consent",
    "provenance",
    "scores",
    "hashes",
)
_SCORE_CODE = re.compile(r"score_([a-z][a-z0-9_]*)_(review|block)")
_PROMPT_SCORE_CODE = re.compile(r"prompt_score_([a-z][a-z0-9_]*)_(review|block)")


class ReasonInfo(NamedTuple):
    step: Step
    default: Action
    floor: Action
    text: str


REASONS: Mapping[str, ReasonInfo] = MappingProxyType(
    {
        # Kill-switches (issue 16, item 5): an operator's stop, not evidence about the image,
        # so no policy can let the request through automatically while it lasts.
        "suspended_misuse": ReasonInfo(
            "access",
            "review",
            "review",
            "The client or model was suspended after a stop condition of the policy tripped "
            "(for example a spike in blocked outputs); nothing it asks for is published "
            "automatically until an admin lifts the suspension.",
        ),
        "feature_paused": ReasonInfo(
            "access",
            "review",
            "review",
            "An operator paused this feature for everyone; a person decides until it resumes.",
        ),
        "image_unreadable": ReasonInfo(
            "image",
            "block",
            "review",
            "The image could not be decoded safely (corrupt, too "
            "large, too many pixels or a format that is not allowed).",
        ),
        "evidence_timeout": ReasonInfo(
            "image", "review", "review", "A check the policy needs did not finish in time."
        ),
        "evidence_unavailable": ReasonInfo(
            "image", "review", "review", "A check the policy needs could not be carried out."
        ),
        "prompt_abusive_intent": ReasonInfo(
            "prompt",
            "block",
            "review",
            "The prompt asks for abusive treatment of a real "
            "person (for example undressing or sexualising them) or sexualises minors.",
        ),
        "consent_missing": ReasonInfo(
            "consent",
            "block",
            "review",
            "A source photo of a real person came without a consent token.",
        ),
        "consent_token_invalid": ReasonInfo(
            "consent",
            "block",
            "review",
            "A consent token is malformed, not signed by this registry, or not valid yet.",
        ),
        "consent_token_expired": ReasonInfo(
            "consent", "block", "review", "A consent token has expired."
        ),
        "consent_token_revoked": ReasonInfo(
            "consent",
            "block",
            "review",
            "The consent behind a token was withdrawn or suspended.",
        ),
        "consent_status_unknown": ReasonInfo(
            "consent",
            "review",
            "review",
            "Whether a consent token has been revoked could not be established.",
        ),
        "consent_wrong_audience": ReasonInfo(
            "consent",
            "block",
            "review",
            "A consent token was issued to a different generator than the one that made the image.",
        ),
        "consent_asset_mismatch": ReasonInfo(
            "consent",
            "block",
            "review",
            "A consent token does not cover the source photo that was declared.",
        ),
        "consent_use_not_permitted": ReasonInfo(
            "consent",
            "block",
            "review",
            "The person's consent does not permit what the image or prompt does (for example "
            "explicit content).",
        ),
        "source_hash_mismatch": ReasonInfo(
            "consent",
            "block",
            "review",
            "A declared source's SHA-256 differs from the one on record for that asset.",
        ),
        "provenance_absent": ReasonInfo(
            "provenance", "review", "allow", "The image carries no provenance manifest."
        ),
        "provenance_invalid": ReasonInfo(
            "provenance",
            "block",
            "review",
            "The image's provenance manifest is present but broken or tampered with.",
        ),
        "provenance_untrusted": ReasonInfo(
            "provenance",
            "review",
            "allow",
            "The image's provenance manifest is intact but signed by a party we do not trust.",
        ),
        "provenance_unverifiable": ReasonInfo(
            "provenance",
            "review",
            "allow",
            "The image's provenance could not be checked (remote manifest or a format the "
            "reader does not support).",
        ),
        "classifier_unavailable": ReasonInfo(
            "scores",
            "review",
            "review",
            "A content classifier failed or timed out, so a required score is missing.",
        ),
        "classifier_invalid_score": ReasonInfo(
            "scores",
            "review",
            "review",
            "A classifier score was not a number between 0 and 1.",
        ),
        "classifier_invalid_region": ReasonInfo(
            "scores",
            "allow",
            "allow",
            "A classifier returned a region outside the image or without a numeric "
            "confidence; it was dropped (the scores still count).",
        ),
        "minor_sexual": ReasonInfo(
            "scores",
            "block",
            "block",
            "The image is likely sexual and likely shows a minor; nothing makes it publishable, "
            "and the decision is flagged for the operator's legal reporting.",
        ),
        "minor_real_person": ReasonInfo(
            "scores",
            "block",
            "block",
            "The image likely shows a minor and is made from a real person's photo without a "
            "guardian's consent for this use.",
        ),
        "minor_guardian_review": ReasonInfo(
            "scores",
            "review",
            "review",
            "The image likely shows a minor made from a real person's photo; a guardian "
            "consented, so a person decides: never published automatically.",
        ),
        "score_missing": ReasonInfo(
            "scores", "review", "review", "A score the policy requires was not provided."
        ),
        "score_unknown_category": ReasonInfo(
            "scores",
            "allow",
            "allow",
            "A score was given for a category the policy does not name; it is recorded for "
            "reviewers and does not count.",
        ),
        "face_similarity_not_permitted": ReasonInfo(
            "scores",
            "allow",
            "allow",
            "A face-similarity score was given, but the policy does not use it or a real "
            "person's consent does not grant likeness.match; it was ignored.",
        ),
        "hash_match_block": ReasonInfo(
            "hashes",
            "block",
            "review",
            "The image is a copy (possibly cropped, flipped or recoloured) of an image on a "
            "protected list.",
        ),
        "hash_match_review": ReasonInfo(
            "hashes",
            "review",
            "review",
            "The image closely resembles an image on a protected list.",
        ),
        "hash_low_quality": ReasonInfo(
            "hashes",
            "review",
            "allow",
            "The image has too little detail for a reliable PDQ hash, so a miss on the PDQ "
            "lists proves little.",
        ),
        "hash_match_consented": ReasonInfo(
            "hashes",
            "allow",
            "allow",
            "The image resembles a protected photo that is one of its own consented sources.",
        ),
    }
)

_RANK: Mapping[str, int] = MappingProxyType({action: i for i, action in enumerate(ACTIONS)})


def action_rank(action: Action) -> int:
    """0 for allow, 1 for review, 2 for block."""
    return _RANK[action]


def score_code(category: str, band: Band) -> str:
    return f"score_{category}_{band}"


def prompt_score_code(category: str, band: Band) -> str:
    """The code of a supplied prompt-intent score (``[prompt.scores.<category>]``) in ``band``."""
    return f"prompt_score_{category}_{band}"


def parse_prompt_score_code(code: str) -> tuple[str, Band] | None:
    """``(category, band)`` for a prompt score code, None for any other code."""
    found = _PROMPT_SCORE_CODE.fullmatch(code)
    if found is None:
        return None
    band: Band = "block" if found.group(2) == "block" else "review"
    return found.group(1), band


def parse_score_code(code: str) -> tuple[str, Band] | None:
    """``(category, band)`` for a score code, None for any other code."""
    found = _SCORE_CODE.fullmatch(code)
    if found is None:
        return None
    band: Band = "block" if found.group(2) == "block" else "review"
    return found.group(1), band


def is_score_code(code: str) -> bool:
    return parse_score_code(code) is not None


def step_of(code: str) -> Step:
    info = REASONS.get(code)
    if info is not None:
        return info.step
    return "prompt" if parse_prompt_score_code(code) is not None else "scores"


def floor_of(code: str) -> Action:
    info = REASONS.get(code)
    return info.floor if info is not None else "allow"


def explain(code: str) -> str:
    """The one-line plain-language explanation of ``code``."""
    info = REASONS.get(code)
    if info is not None:
        return info.text
    prompt = parse_prompt_score_code(code)
    if prompt is not None:
        category, band = prompt
        label = category.replace("_", " ")
        return f"The {label} score supplied with the prompt reached the policy's {band} threshold."
    parsed = parse_score_code(code)
    if parsed is not None:
        category, band = parsed
        label = category.replace("_", " ")
        if band == "block":
            return f"The {label} score reached the policy's block threshold."
        return f"The {label} score reached the policy's review threshold."
    return "A reason this version of the gate does not know; treated as a failed check."
