"""The evidence the gate collects before it decides: plain values, storable as JSON.

``Evidence`` is everything ``decide`` looks at, and nothing else: the decision is a pure
function of it and the policy, so a stored evidence record can be replayed against another
policy. Image bytes and consent tokens are never part of it (only hashes and answers).

A piece of evidence that was not collected is ``None`` (or carries an ``error``); the
engine treats that as missing, which the policy turns into ``review`` or ``block``.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec resolves field types at runtime
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from moderation.consent import SourceEvidence  # noqa: TC001 - msgspec needs it at runtime
from moderation.prompts import PromptMatch  # noqa: TC001 - msgspec needs it at runtime
from moderation.signals import Signal  # noqa: TC001 - msgspec needs it at runtime

if TYPE_CHECKING:
    from moderation.signals import ImageSignals
    from verifier import DecodedImage, Report

__all__ = [
    "ClassifierResult",
    "Evidence",
    "HashFacts",
    "HashMatch",
    "ImageFacts",
    "InvalidScore",
    "Origin",
    "PromptFacts",
    "ProvenanceFacts",
    "Region",
    "Restriction",
    "Stage",
    "StepTiming",
    "WatermarkFacts",
    "decode_evidence",
    "encode_evidence",
    "image_facts",
]

Stage: TypeAlias = Literal["publish", "prompt"]
Origin: TypeAlias = Literal["supplied", "computed"]
ProvenanceState: TypeAlias = Literal[
    "trusted", "valid_untrusted", "invalid", "absent", "remote_manifest", "unsupported"
]
HashListAction: TypeAlias = Literal["review", "block"]


class ImageFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The output image: decoded or not (``error`` is a verifier image error code or
    ``timeout``), its SHA-256, pHash and the pHashes of its flips and rotations (hex), its
    PDQ hash and PDQ's quality score (0-100), and whether a border was trimmed before the
    copies without it were matched too."""

    decoded: bool
    sha256: str | None = None
    phash: str | None = None
    variants: tuple[str, ...] = ()
    pdq: str | None = None
    pdq_quality: int | None = None
    border_trimmed: bool = False
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None


class PromptFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Which prompt-intent rules matched and on what normalised fragment (the prompt itself is
    not repeated here), and the caller's prompt-intent scores (``prompt_scores``, each a
    number in 0..1: the gate refuses a request with any other)."""

    matched: tuple[str, ...] = ()
    matches: tuple[PromptMatch, ...] = ()
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    error: str | None = None


class WatermarkFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Our invisible watermark, read from an image that carries no manifest: the key, and
    the signed output it names (None: a valid key no output of ours carries)."""

    key: str
    output_id: str | None = None
    generation_id: str | None = None
    found_by: Literal["watermark"] = "watermark"


class ProvenanceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The output's C2PA report, reduced to what the policy reads; ``watermark`` when the
    image carries no manifest but our watermark (a signed output stripped of it)."""

    state: ProvenanceState | None = None
    manifest_label: str | None = None
    error: str | None = None
    watermark: WatermarkFacts | None = None

    @classmethod
    def from_report(cls, report: Report) -> ProvenanceFacts:
        return cls(state=report.state, manifest_label=report.manifest_label)


class InvalidScore(msgspec.Struct, frozen=True, kw_only=True):
    """A score that is not a finite number in 0..1; ``raw`` is a short rendering of it."""

    category: str
    raw: str


class Region(msgspec.Struct, frozen=True, kw_only=True):
    """Where a classifier saw something: a box in the image's pixels (``x``, ``y`` its top
    left corner), what it saw (``label``, the classifier's own class name) and how sure it
    is. Coordinates only, never the crop: the evidence outlives the image."""

    label: str
    confidence: float
    x: int
    y: int
    width: int
    height: int


class ClassifierResult(msgspec.Struct, frozen=True, kw_only=True):
    """One classifier's answer: valid scores, invalid ones, or an ``error`` code.

    ``regions`` are the boxes it explained its scores with (the detector's detections);
    ``invalid_regions`` how many it returned that were dropped (outside the image, no
    numeric confidence, ...), which the decision records as ``classifier_invalid_region``.

    ``error`` is one of ``timeout``, ``circuit_open``, ``http_status``, ``redirect_refused``,
    ``address_refused``, ``bad_response``, ``unavailable``.
    """

    classifier: str
    origin: Origin
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    invalid: tuple[InvalidScore, ...] = ()
    error: str | None = None
    model: str | None = None
    latency_ms: float = 0.0
    regions: tuple[Region, ...] = ()
    invalid_regions: int = 0


class HashMatch(msgspec.Struct, frozen=True, kw_only=True):
    """The closest entry of one hash list to the image (or one of its flips/rotations).

    ``hash`` is the entry's (hex, of ``signal``); ``transform`` which copy of the image came
    closest (``moderation.signals.DIHEDRAL``, `` trimmed`` added for the copy without its
    border); ``crop`` the crop of the listed image the entry hashes, when it is one;
    ``reviewed`` False for an entry taken unreviewed from an exchange. Decisions made before
    PDQ existed hold pHash matches without the newer fields.
    """

    list: str
    action: HashListAction
    label: str
    source: str | None
    distance: int
    hash: str
    signal: Signal = "phash"
    entry_id: int | None = None
    transform: str | None = None
    crop: str | None = None
    reviewed: bool = True


class SourceMatch(msgspec.Struct, frozen=True, kw_only=True):
    """How close the output is to a declared source photo whose pHash the registry holds.

    The smallest distance over the output and its flips and rotations: near 0 the output is
    a copy of the person's photo, near 32 it shares nothing visible with it. Recorded for
    reviewers; the consent checks, not this distance, decide whether the source may be used.
    """

    asset_id: str
    type: str
    distance: int


class HashFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Hash-list matches at or within the policy's review distance, and the output's
    distance to each declared source with a known pHash. ``pdq_quality`` is the image's PDQ
    quality when PDQ lists were searched (a low one makes a PDQ miss weak evidence)."""

    matches: tuple[HashMatch, ...] = ()
    pdq_quality: int | None = None
    sources: tuple[SourceMatch, ...] = ()
    error: str | None = None


class StepTiming(msgspec.Struct, frozen=True, kw_only=True):
    step: str
    ms: float
    timed_out: bool = False


class Restriction(msgspec.Struct, frozen=True, kw_only=True):
    """A stop in force when the request came: a suspension of the client or model (``kind``
    ``suspension``, ``subject`` e.g. ``client:cli_...``, ``ref`` the suspension id) or a
    paused feature (``kind`` ``switch``, ``subject`` the feature)."""

    kind: Literal["suspension", "switch"]
    subject: str
    ref: str | None = None


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gate saw for one request.

    ``stage`` is ``publish`` (an image exists) or ``prompt`` (the pre-generation check: no
    image, so image, provenance, scores and hashes are not expected). ``declared_uses`` are
    the uses the caller said it intends (pre-generation check).
    """

    stage: Stage
    received_at: datetime
    image: ImageFacts | None = None
    prompt: PromptFacts | None = None
    sources: tuple[SourceEvidence, ...] = ()
    declared_uses: tuple[str, ...] = ()
    provenance: ProvenanceFacts | None = None
    classifiers: tuple[ClassifierResult, ...] = ()
    hashes: HashFacts | None = None
    timings: tuple[StepTiming, ...] = ()
    restrictions: tuple[Restriction, ...] = ()
    """The operator's stops in force for this request (kill-switches), from the registry."""


def image_facts(decoded: DecodedImage, *, sha256: str, signals: ImageSignals) -> ImageFacts:
    """The facts of a decoded image from its hashes (``moderation.signals.image_signals``)."""
    phashes = signals.phash.hashes
    return ImageFacts(
        decoded=True,
        sha256=sha256,
        phash=phashes[0],
        variants=phashes[1:],
        pdq=signals.pdq.hashes[0],
        pdq_quality=signals.pdq.quality,
        border_trimmed=signals.border_trimmed,
        media_type=decoded.media_type,
        width=decoded.width,
        height=decoded.height,
    )


def encode_evidence(evidence: Evidence) -> bytes:
    return msgspec.json.encode(evidence)


def decode_evidence(data: bytes) -> Evidence:
    return msgspec.json.decode(data, type=Evidence)
