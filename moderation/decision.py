"""The decision engine: evidence + policy -> a Decision value. Pure: no I/O, no clock.

The engine walks the pipeline's steps in order (image, prompt, consent, provenance, scores,
hashes) and records a finding for everything that counts against the request, each with
the action the policy gives its reason code. The outcome is the most severe action:
``block`` -> ``blocked``, else ``review``, else ``allowed``.

Fail closed: a piece of evidence the policy needs that is missing, late or broken is itself
a finding (``evidence_unavailable``, ``evidence_timeout``, ``score_missing``,
``classifier_unavailable``, ``classifier_invalid_score``, ``image_unreadable``), and those
reasons can never be set to ``allow`` (see ``moderation.reasons``). The only way to
``allowed`` is evidence that is present and clean.

What a real person's consent must grant is worked out here too (:func:`required_uses`),
from the policy, the declared uses, the classifier scores and the prompt rules that matched;
the gate passes the same uses to the consent check, and the engine checks them again
against the uses the token grants, so the decision never depends on the checker's
arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from moderation.consent import gate_codes
from moderation.evidence import Stage  # noqa: TC001 - msgspec resolves field types at runtime
from moderation.reasons import (
    STEPS,
    Action,
    Band,
    Step,
    action_rank,
    explain,
    prompt_score_code,
    score_code,
    step_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from moderation.consent import SourceEvidence
    from moderation.evidence import ClassifierResult, Evidence, HashMatch
    from moderation.hashlists import ListAction
    from moderation.policy import HashBands, Policy
    from moderation.signals import Signal

__all__ = [
    "Decision",
    "Finding",
    "ReviewRoute",
    "Status",
    "decide",
    "effective_scores",
    "match_code",
    "needs_consent",
    "required_uses",
]

Status: TypeAlias = Literal["allowed", "review", "blocked"]
# The score categories the [minors] rules read (the classifiers' and callers' names).
_MINOR_CATEGORY = "minor_presence"
_SEXUAL_CATEGORY = "sexual_content"
# Face similarity compares the output with a real person's face: it counts only when the
# policy enables it and every real-person source's consent grants _FACE_USE (where it is
# lawful to process, the consent is what makes it so); otherwise it is ignored, and says so.
_FACE_CATEGORY = "face_similarity"
_FACE_USE = "likeness.match"
_LEGAL_REPORT = frozenset({"minor_sexual"})
_STATUS: dict[Action, Status] = {"allow": "allowed", "review": "review", "block": "blocked"}
_HEADLINES: dict[Status, str] = {
    "allowed": "Allowed: the checks found no reason to hold this back.",
    "review": "In review: a person will look at this before it may be published.",
    "blocked": "Blocked: this may not be published.",
}


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing the engine found: a reason code, its action, and what it is about.

    ``subject`` names the source asset, score category, hash list or prompt rule concerned;
    ``detail`` is a short machine-made note (missing uses, an error code, a distance).
    """

    code: str
    action: Action
    step: Step
    subject: str | None = None
    detail: str | None = None


class ReviewRoute(msgspec.Struct, frozen=True, kw_only=True):
    """Where a ``review`` decision goes: its tier, the tier's rank (0 first) and deadline."""

    tier: str
    rank: int
    deadline: dt.datetime


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome for one request, as a value that can be stored as JSON.

    ``reasons`` are the codes of the findings that held the request back, most severe first,
    each once; ``notes`` are codes recorded but not held against it (e.g. an absent manifest
    on a consented output). ``scores`` are the effective scores (the highest valid score per
    category across classifiers).
    """

    status: Status
    stage: Stage
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    findings: tuple[Finding, ...]
    scores: dict[str, float]
    policy_version: str
    policy_label: str
    review: ReviewRoute | None = None
    legal_report: bool = False
    """The operator may have to report this decision (a likely minor in likely sexual
    content): a flag for the operator's own process; nothing is sent anywhere."""

    def statement(self) -> str:
        """The decision in plain language: the outcome, then one line per reason."""
        lines = [_HEADLINES[self.status]]
        lines.extend(f"- {code}: {explain(code)}" for code in self.reasons)
        if self.review is not None:
            lines.append(f"Review deadline: {self.review.deadline.isoformat()}.")
        lines.append(f"Policy {self.policy_label} (version {self.policy_version[:12]}).")
        return "\n".join(lines)


def needs_consent(policy: Policy, source_type: str) -> bool:
    """Whether a source of this type is a real person's photo; unknown types are."""
    rule = policy.source_rule(source_type)
    return rule is None or rule.consent_required


def effective_scores(results: Iterable[ClassifierResult]) -> dict[str, float]:
    """The highest valid score per category: when two classifiers disagree, the worse wins."""
    scores: dict[str, float] = {}
    for result in results:
        for category, value in result.scores.items():
            # Classifiers only put valid scores here; a hand-built result is checked anyway.
            if math.isfinite(value) and 0.0 <= value <= 1.0:
                scores[category] = max(scores.get(category, 0.0), float(value))
    return scores


def required_uses(
    policy: Policy,
    *,
    stage: Stage,
    source_type: str,
    scores: Mapping[str, float],
    prompt_rules: Iterable[str] = (),
    declared_uses: Iterable[str] = (),
) -> tuple[str, ...]:
    """The uses a source of ``source_type`` must have consent for, in a stable order.

    Declared uses always; the type's ``publish_uses`` at the publish stage; and, for a
    real-person source, the uses the scores reach and those of the matched prompt rules. A
    type the policy does not list is a real person's photo (``needs_consent``), so at the
    publish stage it needs every publish use of the listed real-person types: a caller
    cannot skip the consent to publication by naming a type of its own.
    """
    uses = list(declared_uses)
    rule = policy.source_rule(source_type)
    if stage == "publish" and rule is not None:
        uses.extend(rule.publish_uses)
    elif stage == "publish":
        for listed in policy.sources:
            if listed.consent_required:
                uses.extend(listed.publish_uses)
    if needs_consent(policy, source_type):
        for score_rule in policy.scores:
            value = scores.get(score_rule.category)
            if value is not None and score_rule.enabled:
                uses.extend(u.use for u in score_rule.uses if value >= u.at_least)
        for rule_id in prompt_rules:
            prompt_rule = policy.prompt_rule(rule_id)
            if prompt_rule is not None and prompt_rule.requires_use is not None:
                uses.append(prompt_rule.requires_use)
    return tuple(dict.fromkeys(uses))


def decide(evidence: Evidence, policy: Policy) -> Decision:
    """Decide on ``evidence`` under ``policy``. Never raises for anything in the evidence."""
    run = _Run(evidence, policy)
    run.access()
    run.image()
    run.consent()
    run.prompt()
    run.provenance()
    run.scores()
    run.minors()
    run.hashes()
    return run.decision()


class _Run:
    """One evaluation: the evidence, the policy and the findings so far."""

    def __init__(self, evidence: Evidence, policy: Policy) -> None:
        self.evidence = evidence
        self.policy = policy
        self.findings: list[Finding] = []
        self.publish = evidence.stage == "publish"
        self.scores_by_category = effective_scores(evidence.classifiers)
        self.matched_rules = evidence.prompt.matched if evidence.prompt is not None else ()
        self.real_sources = [s for s in evidence.sources if needs_consent(policy, s.type)]
        # Real-person sources whose consent checked out and covers every use needed.
        self.consented: set[int] = set()
        self.image_ok = False

    # Steps.

    def access(self) -> None:
        for restriction in self.evidence.restrictions:
            if restriction.kind == "suspension":
                self.add("suspended_misuse", subject=restriction.subject, detail=restriction.ref)
            else:
                self.add("feature_paused", subject=restriction.subject)

    def image(self) -> None:
        if not self.publish:
            return
        image = self.evidence.image
        if image is None:
            self.add("evidence_unavailable", subject="image", step="image")
        elif image.error == "timeout":
            self.add("evidence_timeout", subject="image", step="image")
        elif not image.decoded or image.error is not None:
            self.add("image_unreadable", detail=image.error)
        else:
            self.image_ok = True

    def consent(self) -> None:
        for index, source in enumerate(self.evidence.sources):
            real = needs_consent(self.policy, source.type)
            if not real and not source.token_present:
                continue
            if self._source_findings(source) and real:
                self.consented.add(index)

    def prompt(self) -> None:
        prompt = self.evidence.prompt
        if prompt is None and not self.publish:
            # The pre-generation check is about the prompt: without its result, nothing is known.
            self.add("evidence_unavailable", subject="prompt", step="prompt")
        if prompt is not None and prompt.error is not None:
            code = "evidence_timeout" if prompt.error == "timeout" else "evidence_unavailable"
            self.add(code, subject="prompt", detail=prompt.error, step="prompt")
        fragments = (
            {m.rule: ", ".join(m.fragments) for m in prompt.matches} if prompt is not None else {}
        )
        for rule_id in self.matched_rules:
            rule = self.policy.prompt_rule(rule_id)
            if rule is None:
                # Evidence from another policy: a rule we cannot read counts in full.
                self.add("prompt_abusive_intent", subject=rule_id, detail="rule not in policy")
                continue
            if rule.scope == "real_person" and not self.real_sources:
                continue
            if not rule.abusive:
                # The consent step asked each source for the rule's use (required_uses).
                continue
            if rule.requires_use is not None and self.all_grant(rule.requires_use):
                continue
            self.add("prompt_abusive_intent", subject=rule_id, detail=fragments.get(rule_id))
        if prompt is not None:
            self._prompt_scores(prompt.scores)

    def _prompt_scores(self, scores: Mapping[str, float]) -> None:
        for category, value in sorted(scores.items()):
            rule = self.policy.prompt_score_rule(category)
            if rule is None:
                self.add(
                    "score_unknown_category",
                    subject=f"prompt:{category}",
                    detail=f"{value:.4f}",
                    step="prompt",
                )
                continue
            band = _band(value, rule.review, rule.block)
            if band is not None:
                self.add(prompt_score_code(category, band), subject=category, detail=f"{value:.4f}")

    def provenance(self) -> None:
        if not self.publish or not self.image_ok:
            return
        facts = self.evidence.provenance
        if facts is None or (facts.state is None and facts.error is None):
            self.add("evidence_unavailable", subject="provenance", step="provenance")
            return
        if facts.error is not None:
            code = "evidence_timeout" if facts.error == "timeout" else "evidence_unavailable"
            self.add(code, subject="provenance", detail=facts.error, step="provenance")
            return
        if facts.state == "absent":
            waived = self.policy.provenance.absent_allowed_when_consented and self.all_consented()
            self.add("provenance_absent", action="allow" if waived else None)
        elif facts.state == "invalid":
            self.add("provenance_invalid")
        elif facts.state == "valid_untrusted":
            self.add("provenance_untrusted")
        elif facts.state in {"remote_manifest", "unsupported"}:
            self.add("provenance_unverifiable", detail=facts.state)

    def scores(self) -> None:
        if not self.publish:
            return
        invalid_categories = self._invalid_scores()
        failures = sorted(
            {f"{r.classifier}:{r.error}" for r in self.evidence.classifiers if r.error}
        )
        face_permitted = self._unused_scores()
        for rule in self.policy.scores:
            if not rule.enabled or (rule.category == _FACE_CATEGORY and not face_permitted):
                continue
            value = self.scores_by_category.get(rule.category)
            if value is None:
                required = rule.required_for(real_person=bool(self.real_sources))
                if required and rule.category not in invalid_categories:
                    self._missing_score(rule.category, failures)
                continue
            band = _band(value, rule.review, rule.block)
            if band is None:
                continue
            waived = rule.waived_by_use is not None and self.all_grant(rule.waived_by_use)
            self.add(
                score_code(rule.category, band),
                subject=rule.category,
                detail=f"{value:.4f}",
                action="allow" if waived else None,
            )

    def _unused_scores(self) -> bool:
        """Record the scores that do not count; whether a face-similarity score may count."""
        known = {rule.category for rule in self.policy.scores} | {_FACE_CATEGORY}
        for category in sorted(set(self.scores_by_category) - known):
            # Not silently dropped: a caller's new signal, or a typo in a category's name.
            value = self.scores_by_category[category]
            self.add("score_unknown_category", subject=category, detail=f"{value:.4f}")
        face = self.policy.score_rule(_FACE_CATEGORY)
        permitted = face is not None and face.enabled and self.all_grant(_FACE_USE)
        face_score = self.scores_by_category.get(_FACE_CATEGORY)
        if face_score is not None and not permitted:
            self.add(
                "face_similarity_not_permitted", subject=_FACE_CATEGORY, detail=f"{face_score:.4f}"
            )
        return permitted

    def minors(self) -> None:
        """A likely minor: never published automatically from a real person's photo, never
        at all when the image is likely sexual (the policy's ``[minors]``)."""
        if not self.publish:
            return
        rules = self.policy.minors
        minor = self.scores_by_category.get(_MINOR_CATEGORY)
        if minor is None or minor < rules.threshold:
            return
        sexual = self.scores_by_category.get(_SEXUAL_CATEGORY)
        if sexual is not None and sexual >= rules.sexual_threshold:
            self.add("minor_sexual", subject=_MINOR_CATEGORY, detail=f"{minor:.4f}, {sexual:.4f}")
        if not self.real_sources:
            return
        guardians = self.all_consented() and all(
            source.check is not None and source.check.signer_role == "guardian"
            for source in self.real_sources
        )
        code = "minor_guardian_review" if guardians else "minor_real_person"
        self.add(code, subject=_MINOR_CATEGORY, detail=f"{minor:.4f}")

    def _invalid_scores(self) -> set[str]:
        categories: set[str] = set()
        for result in self.evidence.classifiers:
            if result.invalid_regions:
                self.add(
                    "classifier_invalid_region",
                    subject=result.classifier,
                    detail=f"{result.invalid_regions} dropped",
                )
            for invalid in result.invalid:
                categories.add(invalid.category)
                self.add(
                    "classifier_invalid_score",
                    subject=f"{result.classifier}:{invalid.category}",
                    detail=invalid.raw,
                )
        return categories

    def _missing_score(self, category: str, failures: list[str]) -> None:
        if failures:
            self.add("classifier_unavailable", subject=category, detail=",".join(failures))
        elif self.image_ok:
            # Without a readable image nothing could be scored; image_unreadable says why.
            self.add("score_missing", subject=category)

    def hashes(self) -> None:
        if not self.publish or not self.image_ok:
            return
        facts = self.evidence.hashes
        if facts is None:
            self.add("evidence_unavailable", subject="hashes", step="hashes")
            return
        if facts.error is not None:
            code = "evidence_timeout" if facts.error == "timeout" else "evidence_unavailable"
            self.add(code, subject="hashes", detail=facts.error, step="hashes")
            return
        bands = self.policy.hashes
        if facts.pdq_quality is not None and facts.pdq_quality < bands.pdq.quality_floor:
            self.add("hash_low_quality", subject="pdq", detail=f"quality {facts.pdq_quality}")
        consented_assets = {self.evidence.sources[i].asset_id for i in self.consented}
        for match in facts.matches:
            found = match_code(bands, match.signal, match.action, match.distance)
            if found is None:
                continue
            code = found
            if (
                match.list in bands.consent_exempt_lists
                and match.source is not None
                and match.source in consented_assets
            ):
                code = "hash_match_consented"
            self.add(code, subject=match.list, detail=_match_detail(match))

    # Helpers.

    def _source_findings(self, source: SourceEvidence) -> bool:
        """Record the findings of one source; True when it has none."""
        before = len(self.findings)
        subject = source.asset_id
        if not source.token_present:
            self.add("consent_missing", subject=subject)
        elif source.error is not None:
            code = "evidence_timeout" if source.error == "timeout" else "evidence_unavailable"
            self.add(code, subject=subject, detail=source.error, step="consent")
        elif source.check is None:
            self.add(
                "evidence_unavailable",
                subject=subject,
                detail="consent not checked",
                step="consent",
            )
        else:
            check = source.check
            for code in gate_codes(check):
                self.add(code, subject=subject)
            if check.valid and not check.reasons:
                missing = [u for u in self.uses_for(source.type) if u not in check.uses]
                if missing:
                    self.add("consent_use_not_permitted", subject=subject, detail=",".join(missing))
            recorded, declared = check.asset_sha256, source.declared_sha256
            if recorded and declared and recorded.lower() != declared.lower():
                self.add("source_hash_mismatch", subject=subject)
        return len(self.findings) == before

    def uses_for(self, source_type: str) -> tuple[str, ...]:
        return required_uses(
            self.policy,
            stage=self.evidence.stage,
            source_type=source_type,
            scores=self.scores_by_category,
            prompt_rules=self.matched_rules,
            declared_uses=self.evidence.declared_uses,
        )

    def all_consented(self) -> bool:
        """Every real-person source has clean consent (true when there is none)."""
        return all(
            i in self.consented
            for i, s in enumerate(self.evidence.sources)
            if needs_consent(self.policy, s.type)
        )

    def all_grant(self, use: str) -> bool:
        """There is a real-person source, and every one has clean consent granting ``use``."""
        if not self.real_sources or not self.all_consented():
            return False
        return all(
            source.check is not None and use in source.check.uses for source in self.real_sources
        )

    def add(
        self,
        code: str,
        *,
        subject: str | None = None,
        detail: str | None = None,
        action: Action | None = None,
        step: Step | None = None,
    ) -> None:
        """Record a finding; ``step`` is needed only for codes several steps share."""
        self.findings.append(
            Finding(
                code=code,
                action=action or self.policy.action(code),
                step=step or step_of(code),
                subject=subject,
                detail=detail[:200] if detail else None,
            )
        )

    def decision(self) -> Decision:
        ordered = sorted(
            enumerate(self.findings),
            key=lambda item: (
                -action_rank(item[1].action),
                STEPS.index(item[1].step),
                item[0],
            ),
        )
        findings = tuple(finding for _, finding in ordered)
        worst: Action = findings[0].action if findings else "allow"
        status = _STATUS[worst]
        reasons = tuple(dict.fromkeys(f.code for f in findings if f.action != "allow"))
        notes = tuple(dict.fromkeys(f.code for f in findings if f.action == "allow"))
        return Decision(
            status=status,
            stage=self.evidence.stage,
            reasons=reasons,
            notes=notes,
            findings=findings,
            scores=dict(sorted(self.scores_by_category.items())),
            policy_version=self.policy.version,
            policy_label=self.policy.label,
            review=self.route(findings) if status == "review" else None,
            legal_report=any(f.code in _LEGAL_REPORT for f in findings),
        )

    def route(self, findings: tuple[Finding, ...]) -> ReviewRoute:
        rank, tier = min(
            (self.policy.review.tier_for(f.code) for f in findings if f.action == "review"),
            key=lambda pair: pair[0],
        )
        deadline = self.evidence.received_at + dt.timedelta(minutes=tier.deadline_minutes)
        return ReviewRoute(tier=tier.name, rank=rank, deadline=deadline)


def _band(value: float, review: float, block: float) -> Band | None:
    if value >= block:
        return "block"
    if value >= review:
        return "review"
    return None


def match_code(bands: HashBands, signal: Signal, action: ListAction, distance: int) -> str | None:
    """The reason code of a match at ``distance`` on a list with ``action``, or None when it
    lies beyond the policy's review distance for ``signal``."""
    block, review = bands.bands(signal)
    if distance <= block:
        return "hash_match_block" if action == "block" else "hash_match_review"
    if distance <= review:
        return "hash_match_review"
    return None


def _match_detail(match: HashMatch) -> str:
    detail = f"{match.signal} distance {match.distance}"
    if match.transform not in {None, "original"}:
        detail += f", {match.transform}"
    if match.crop is not None:
        detail += f", listed image's crop {match.crop}"
    if not match.reviewed:
        detail += ", unreviewed entry"
    return detail
