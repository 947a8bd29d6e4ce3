"""What the reviewer console shows: the queue with its counts, and one ticket's case in words.

Built from the review domain's values (``registry.review``) and the gate's evidence
(``moderation.Evidence``); plain values for the templates, which escape every string (prompts,
notes, statements, labels and manifest text are all untrusted).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec reads annotations at runtime
from typing import TYPE_CHECKING

import msgspec

from moderation import Evidence, HashMatch, decode_evidence, needs_consent
from moderation.reasons import explain
from registry.review import ReviewCase, Ticket  # noqa: TC001 - msgspec reads annotations
from registry.web.verdict import Tone  # noqa: TC001 - msgspec reads annotations at runtime
from verifier.tokens import Reason

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from moderation import Policy
    from moderation.consent import SourceEvidence
    from registry.review import ConsentNow

__all__ = [
    "QueueRow",
    "QueueView",
    "ReasonWords",
    "RegionBox",
    "ScoreBar",
    "SourceLine",
    "TicketView",
    "queue_view",
    "score_bars",
    "source_lines",
    "ticket_view",
]

# A consent check's reasons, most telling first → (word, tone). A reason not here (malformed,
# signature, issuer: not a token of ours at all) reads as "invalid", with the codes as detail.
_CONSENT_PROBLEMS: tuple[tuple[Reason, str, Tone], ...] = (
    (Reason.REVOKED, "revoked", "bad"),
    (Reason.SUSPENDED, "suspended", "bad"),
    (Reason.EXPIRED, "expired", "warn"),
    (Reason.USE_NOT_PERMITTED, "wrong use", "bad"),
    (Reason.AUDIENCE, "wrong generator", "bad"),
    (Reason.ASSET_MISMATCH, "different photo", "bad"),
    (Reason.NOT_YET_VALID, "not yet valid", "warn"),
    (Reason.STATUS_UNKNOWN, "status unknown", "warn"),
)


class ReasonWords(msgspec.Struct, kw_only=True, frozen=True):
    """A reason code with its plain-language line (``moderation.reasons.explain``)."""

    code: str
    text: str


class QueueRow(msgspec.Struct, kw_only=True, frozen=True):
    ticket: Ticket
    overdue: bool
    mine: bool
    reasons: tuple[ReasonWords, ...] = ()
    claimed_by_name: str | None = None
    """The reviewer holding the claim, by name (their id when unknown)."""


class QueueView(msgspec.Struct, kw_only=True, frozen=True):
    rows: tuple[QueueRow, ...]
    waiting: int
    """Open tickets, expired claims included."""
    claimed: int
    overdue: int
    appeals: int
    held: tuple[Ticket, ...]
    """Tickets the signed-in reviewer holds now."""


def reason_words(codes: Sequence[str]) -> tuple[ReasonWords, ...]:
    return tuple(ReasonWords(code=code, text=explain(code)) for code in codes)


def queue_view(
    tickets: Sequence[Ticket],
    *,
    me: str,
    now: datetime,
    names: Mapping[str, str] | None = None,
) -> QueueView:
    """Open and claimed tickets in queue order, with counts; overdue ones marked; reasons in
    words and reviewers by name (``names``: client id to name)."""
    names = names or {}
    rows = tuple(
        QueueRow(
            ticket=ticket,
            overdue=ticket.deadline <= now,
            mine=ticket.status == "claimed" and ticket.claimed_by == me,
            reasons=reason_words(ticket.reasons),
            claimed_by_name=(
                names.get(ticket.claimed_by, ticket.claimed_by) if ticket.claimed_by else None
            ),
        )
        for ticket in tickets
        if ticket.status != "closed"
    )
    return QueueView(
        rows=rows,
        waiting=sum(1 for row in rows if row.ticket.status == "open"),
        claimed=sum(1 for row in rows if row.ticket.status == "claimed"),
        overdue=sum(1 for row in rows if row.overdue),
        appeals=sum(1 for row in rows if row.ticket.kind == "appeal"),
        held=tuple(row.ticket for row in rows if row.mine),
    )


class SourceLine(msgspec.Struct, kw_only=True, frozen=True):
    type: str
    asset_id: str
    word: str
    tone: Tone
    detail: str | None = None
    uses: tuple[str, ...] = ()


def source_lines(
    evidence: Evidence, consents_now: Sequence[ConsentNow], policy: Policy
) -> tuple[SourceLine, ...]:
    """Each declared source asset with its consent status in words (and a tone for colour)."""
    now_by_asset = {c.asset_id: c for c in consents_now}
    return tuple(
        _source_line(source, now_by_asset.get(source.asset_id), policy)
        for source in evidence.sources
    )


def _source_line(source: SourceEvidence, now: ConsentNow | None, policy: Policy) -> SourceLine:
    word, tone, detail = _consent_words(source, now, policy)
    return SourceLine(
        type=source.type,
        asset_id=source.asset_id,
        word=word,
        tone=tone,
        detail=detail,
        uses=source.check.uses if source.check is not None else (),
    )


def _consent_words(
    source: SourceEvidence, now: ConsentNow | None, policy: Policy
) -> tuple[str, Tone, str | None]:
    check = source.check
    if check is None:
        if source.error is not None:
            return "not checked", "warn", f"the check did not complete ({source.error})"
        if needs_consent(policy, source.type):
            return "no consent", "bad", "no consent token came with this real-person photo"
        return "not needed", "neutral", f"policy needs no consent for {source.type} sources"
    if not check.valid:
        found = next((p for p in _CONSENT_PROBLEMS if p[0] in check.reasons), None)
        word, tone = (found[1], found[2]) if found else ("invalid", "bad")
        return word, tone, ", ".join(check.reasons) or None
    lapsed = now is not None and (
        now.consent_status != "active" or now.token_status != "valid"  # noqa: S105 - a status
    )
    if now is not None and lapsed:
        return (
            "withdrawn since",
            "bad",
            f"consent {now.consent_status}, token {now.token_status} since the check",
        )
    return "valid", "good", None


class ScoreBar(msgspec.Struct, kw_only=True, frozen=True):
    category: str
    value: float | None
    review: float | None
    block: float | None
    tone: Tone
    word: str


def score_bars(
    scores: dict[str, float], policy: Policy, *, real_person: bool
) -> tuple[ScoreBar, ...]:
    """Each score with the policy's review and block thresholds; policy categories first.

    ``real_person``: a source is a real person's photo (some scores are required only then).
    """
    bars = []
    rules = {rule.category: rule for rule in policy.scores}
    for category in [*rules, *sorted(set(scores) - set(rules))]:
        value = scores.get(category)
        rule = rules.get(category)
        if value is None and rule is None:
            continue
        review = rule.review if rule is not None else None
        block = rule.block if rule is not None else None
        tone: Tone
        if value is None:
            required = rule is not None and rule.required_for(real_person=real_person)
            tone, word = ("warn", "missing") if required else ("neutral", "not scored")
        elif rule is None:
            # Recorded as score_unknown_category: shown, so a new signal or a typo is seen.
            tone, word = "neutral", "not a category of the policy"
        elif not rule.enabled:
            tone, word = "neutral", "not used by the policy"
        elif block is not None and value >= block:
            tone, word = "bad", "over the block threshold"
        elif review is not None and value >= review:
            tone, word = "warn", "over the review threshold"
        else:
            tone, word = "good", "under the thresholds"
        bars.append(
            ScoreBar(
                category=category, value=value, review=review, block=block, tone=tone, word=word
            )
        )
    return tuple(bars)


class RegionBox(msgspec.Struct, kw_only=True, frozen=True):
    """A classifier's region, to draw over the image (SVG, in the image's own pixels)."""

    classifier: str
    label: str
    confidence: float
    x: int
    y: int
    width: int
    height: int


def region_boxes(evidence: Evidence) -> tuple[RegionBox, ...]:
    """Every classifier's regions, most confident first."""
    boxes = [
        RegionBox(
            classifier=result.classifier,
            label=region.label,
            confidence=region.confidence,
            x=region.x,
            y=region.y,
            width=region.width,
            height=region.height,
        )
        for result in evidence.classifiers
        for region in result.regions
    ]
    return tuple(sorted(boxes, key=lambda b: (-b.confidence, b.classifier, b.label)))


class TicketView(msgspec.Struct, kw_only=True, frozen=True):
    case: ReviewCase
    evidence: Evidence
    prompt: str | None
    sources: tuple[SourceLine, ...]
    bars: tuple[ScoreBar, ...]
    hash_matches: tuple[HashMatch, ...]
    held: bool
    """The signed-in reviewer holds a live claim on the ticket."""
    overdue: bool
    image_kept: bool
    same_policy: bool
    """The decision was made under the active policy (so the thresholds shown applied)."""
    consent_ended: tuple[str, ...] = ()
    """Consents the decision relied on that were withdrawn, erased or suspended (or whose
    token was revoked) since the gate ran: the output can no longer be allowed."""
    boxes: tuple[RegionBox, ...] = ()
    """The classifiers' regions, drawn over the image and listed beside it."""
    names: dict[str, str] = msgspec.field(default_factory=dict)
    """Client id to name, for the history's actors and the decision's client."""


def ticket_view(
    case: ReviewCase,
    policy: Policy,
    *,
    me: str,
    now: datetime,
    image_kept: bool,
    names: Mapping[str, str] | None = None,
) -> TicketView:
    evidence = decode_evidence(msgspec.json.encode(case.evidence))
    ticket = case.ticket
    prompt = case.request.get("prompt")
    return TicketView(
        case=case,
        evidence=evidence,
        prompt=prompt if isinstance(prompt, str) else None,
        sources=source_lines(evidence, case.consents, policy),
        bars=score_bars(
            case.decision.scores,
            policy,
            real_person=any(needs_consent(policy, source.type) for source in evidence.sources),
        ),
        hash_matches=evidence.hashes.matches if evidence.hashes is not None else (),
        held=ticket.status == "claimed" and ticket.claimed_by == me,
        overdue=ticket.status != "closed" and ticket.deadline <= now,
        image_kept=image_kept,
        same_policy=case.decision.policy_version == policy.version,
        names=dict(names or {}),
        boxes=region_boxes(evidence),
        consent_ended=tuple(
            sorted(
                {
                    c.consent_id
                    for c in case.consents
                    if c.consent_status != "active" or c.token_status != "valid"  # noqa: S105 - a status, not a secret
                }
            )
        ),
    )
