"""The gate's request and response documents (strict: unknown fields are refused)."""

from __future__ import annotations

import hashlib
from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_SOURCE_ASSETS",
    "CheckRequest",
    "GateResponse",
    "PromptCheckRequest",
    "RequestMetadata",
    "SourceAssetIn",
    "request_record",
    "request_sha256",
]

MAX_PROMPT_CHARS = 10_000
MAX_SOURCE_ASSETS = 20
_MAX_SCORES = 64
# No C0 controls or DEL: these strings reach stored evidence, reviewers' screens and logs.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
_Prompt = Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS)]
_Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{64}$")]
_Token = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
_SourceType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
_Use = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_PromptScores = Annotated[dict[str, Any], msgspec.Meta(max_length=_MAX_SCORES)]


class SourceAssetIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    type: _SourceType
    """``photo`` (a photo of a real person), ``artwork`` or ``synthetic``; a type the policy
    does not name is treated as a real person's photo."""
    asset_id: _Text
    """The consent registry's asset id the token binds."""
    sha256: _Sha256 | None = None
    """SHA-256 of the source file as the caller holds it; checked against the token."""
    consent_token: _Token | None = None


class RequestMetadata(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    model: _Text | None = None
    timestamp: datetime | None = None
    generator_client_id: _Text | None = None
    """The generator client that made the image: the audience every consent token must name.
    Required when tokens are attached."""


class CheckRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/moderation/check``: the JSON body, or the ``request`` part of a multipart
    body whose ``image`` part holds the image."""

    generation_id: _Text
    prompt: _Prompt = ""
    source_assets: Annotated[list[SourceAssetIn], msgspec.Meta(max_length=MAX_SOURCE_ASSETS)] = []
    user_id: _Text | None = None
    metadata: RequestMetadata = msgspec.field(default_factory=RequestMetadata)
    scores: Annotated[dict[str, Any], msgspec.Meta(max_length=_MAX_SCORES)] | None = None
    """The caller's own classifier scores, 0..1 per category (recorded as ``supplied``)."""
    prompt_scores: _PromptScores | None = None
    """The caller's prompt-intent classifier scores, 0..1 per category (e.g.
    ``prompt_intent``), counted in the prompt step under the policy's ``[prompt.scores]``;
    any entry that is not a number in 0..1 refuses the request (``prompt_score_invalid``)."""
    image_url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    """Fetched only from allow-listed hosts; leave out when uploading the image."""


class PromptCheckRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/moderation/prompt-check``: before generation, no image yet."""

    generation_id: _Text
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]
    source_assets: Annotated[list[SourceAssetIn], msgspec.Meta(max_length=MAX_SOURCE_ASSETS)] = []
    intended_uses: Annotated[list[_Use], msgspec.Meta(max_length=32)] = []
    """Consent uses the generation will need (e.g. ``edit.transform``); every real-person
    source's token must grant them."""
    user_id: _Text | None = None
    model: _Text | None = None
    prompt_scores: _PromptScores | None = None
    """The caller's prompt-intent classifier scores, as in ``POST /v1/moderation/check``."""


class GateResponse(msgspec.Struct, kw_only=True, frozen=True):
    generation_id: str
    decision_id: str
    safety_status: Literal["allowed", "review", "blocked"]
    scores: dict[str, float]
    """The effective score per category (the highest valid score across classifiers)."""
    reasons: list[str]
    """Stable reason codes, most severe first; see ``GET /v1/policy`` for the policy."""
    review_ticket: str | None
    policy_version: str
    """SHA-256 of the policy file that decided."""


def request_record(request: CheckRequest | PromptCheckRequest) -> dict[str, Any]:
    """The request as stored for reviewers: consent tokens replaced by their presence."""
    record: dict[str, Any] = msgspec.to_builtins(request)
    record["source_assets"] = [
        {
            **{k: v for k, v in asset.items() if k != "consent_token"},
            "token_present": asset.get("consent_token") is not None,
        }
        for asset in record.get("source_assets", [])
    ]
    return record


def request_sha256(request: CheckRequest | PromptCheckRequest) -> str:
    """SHA-256 of the canonical request, tokens included (a new token is a new request)."""
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).hexdigest()
