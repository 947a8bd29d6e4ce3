"""Policy-as-code: the TOML file that says what each piece of evidence leads to.

``load_policy`` validates the whole file before anything uses it, and refuses it with an
error naming the offending key (``PolicyUnknownKey``, ``PolicyKeyMissing``,
``PolicyValueInvalid``, ``PolicySyntaxInvalid``): unknown keys are refused so that a typo
cannot silently switch a rule off; thresholds lie in 0..1 with review <= block; hash
distances lie in 0..64 with block <= review; actions are ``allow``, ``review`` or ``block``
and never milder than the reason's floor (see ``moderation.reasons``).

``Policy.version`` is the SHA-256 (hex) of the exact bytes of the file: it is stored with
every decision, so a decision can always be traced to the policy text that made it.
``Policy.label`` is the human ``version`` string written in the file.

The format, key by key, is documented in ``moderation/default_policy.toml``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import tomllib
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

import msgspec

from moderation.errors import (
    PolicyError,
    PolicyKeyMissing,
    PolicySyntaxInvalid,
    PolicyUnknownKey,
    PolicyValueInvalid,
)
from moderation.prompts import PromptRule, language_problem, pattern_problem
from moderation.reasons import (
    REASONS,
    Action,
    action_rank,
    floor_of,
    prompt_score_code,
    score_code,
)
from moderation.signals import Signal  # noqa: TC001 - msgspec reads annotations at runtime
from verifier.uses import USES, is_known_use

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_POLICY_BYTES",
    "HashBands",
    "Policy",
    "PromptScoreRule",
    "ProvenanceRule",
    "ReviewRules",
    "ReviewTier",
    "ScoreRule",
    "SourceRule",
    "StopCondition",
    "StopSignal",
    "StopSubject",
    "UseRule",
    "default_policy",
    "load_policy",
]

MAX_POLICY_BYTES = 1024 * 1024
_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_LIST_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_USE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_LABEL_CHARS = 200
_Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Cap = Annotated[float, msgspec.Meta(ge=0.0, le=0.5)]
_Distance = Annotated[int, msgspec.Meta(ge=0, le=64)]
_PdqDistance = Annotated[int, msgspec.Meta(ge=0, le=256)]
_T = TypeVar("_T")


class UseRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """From ``at_least`` on, every real-person source's consent must grant ``use``."""

    at_least: _Unit
    use: str


class ScoreRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One score category's bands. ``required`` is ``true`` (always), ``"real_person"``
    (when a source is a real person's photo) or ``false``; a category with ``enabled =
    false`` is known (its scores are no ``score_unknown_category``) but does not count."""

    category: str = ""
    review: _Unit
    block: _Unit
    required: bool | Literal["real_person"] = False
    enabled: bool = True
    uses: tuple[UseRule, ...] = ()
    waived_by_use: str | None = None

    def required_for(self, *, real_person: bool) -> bool:
        """Whether a decision may not be taken without this score."""
        if not self.enabled:
            return False
        return real_person if self.required == "real_person" else self.required


class PromptScoreRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The bands of one supplied prompt-intent score (``prompt_scores`` in a request)."""

    category: str = ""
    review: _Unit
    block: _Unit


class PdqBands(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """PDQ's bands (of 256 bits) and the quality below which its hash proves little.

    The defaults are the hash-sharing programmes' practice: a match within 31 bits. A
    policy file without ``[hashes.pdq]`` gets them.
    """

    block_distance: _PdqDistance = 24
    review_distance: _PdqDistance = 31
    quality_floor: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50


class HashBands(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``block_distance`` and ``review_distance`` are pHash's (of 64 bits); ``pdq`` PDQ's."""

    block_distance: _Distance
    review_distance: _Distance
    consent_exempt_lists: tuple[str, ...] = ()
    pdq: PdqBands = PdqBands()

    def bands(self, signal: Signal) -> tuple[int, int]:
        """(block distance, review distance) of ``signal``."""
        if signal == "pdq":
            return self.pdq.block_distance, self.pdq.review_distance
        return self.block_distance, self.review_distance


class MinorRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """From a ``minor_presence`` score of ``threshold`` on, the image likely shows a minor:
    made from a real person's photo it is ``minor_real_person`` (block) unless every such
    source's consent was signed by a guardian and covers the request, then
    ``minor_guardian_review`` (review, a floor no policy lowers); with a ``sexual_content``
    score of ``sexual_threshold`` on it is ``minor_sexual`` (block), whatever the consent.
    """

    # At most 0.5: a policy may tune what "likely" means, not define likely minors away.
    threshold: _Cap = 0.25
    sexual_threshold: _Cap = 0.3


class SourceRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: str = ""
    consent_required: bool
    publish_uses: tuple[str, ...] = ()


class ProvenanceRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    absent_allowed_when_consented: bool


class ReviewTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    deadline_minutes: Annotated[int, msgspec.Meta(gt=0, le=60 * 24 * 365)]


class ReviewRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tiers: tuple[ReviewTier, ...]
    default_tier: str
    reason_tiers: dict[str, str] = msgspec.field(default_factory=dict)

    def tier_for(self, code: str) -> tuple[int, ReviewTier]:
        """The rank (0 is most urgent) and tier of ``code``."""
        name = self.reason_tiers.get(code, self.default_tier)
        for rank, tier in enumerate(self.tiers):
            if tier.name == name:
                return rank, tier
        # load_policy checks every name, so this only guards a hand-built value.
        return len(self.tiers) - 1, self.tiers[-1]


StopSubject: TypeAlias = Literal["client", "model"]
StopSignal: TypeAlias = Literal["blocked_rate", "hash_matches"]


class StopCondition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A kill-switch: when ``subject`` (each client, or each model a request names) shows
    ``signal`` at ``threshold`` or more over the last ``window_minutes``, it is suspended
    (its decisions are never ``allowed``, it signs nothing) until an admin lifts it.

    ``blocked_rate`` is the share of its gate decisions (prompt checks and publish checks)
    that were blocked, counted once it has ``min_decisions``; ``hash_matches`` the number
    of its decisions that matched a protected hash list (``threshold`` is then a count).
    A model is named by whoever calls the gate, so a model's figures count only once they
    come from ``min_clients`` different clients: one client cannot get a model everyone
    uses suspended by naming it in its own bad requests.
    """

    id: str
    subject: StopSubject
    signal: StopSignal
    threshold: Annotated[float, msgspec.Meta(gt=0.0, le=10_000.0)]
    window_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)] = 60
    min_decisions: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    min_clients: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 3


class _StopConditions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rules: tuple[Any, ...] = ()


class _Prompt(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rules: tuple[Any, ...] = ()
    scores: dict[str, Any] = msgspec.field(default_factory=dict)


class _Document(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: str
    scores: dict[str, Any]
    hashes: HashBands
    sources: dict[str, Any]
    provenance: ProvenanceRule
    review: ReviewRules
    actions: dict[str, Any] = msgspec.field(default_factory=dict)
    prompt: _Prompt = msgspec.field(default_factory=_Prompt)
    minors: MinorRules = MinorRules()
    stop_conditions: _StopConditions = msgspec.field(default_factory=_StopConditions)


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """A validated policy. Build it with :func:`load_policy`, never by hand."""

    version: str
    label: str
    text: str
    actions: Mapping[str, Action]
    scores: tuple[ScoreRule, ...]
    hashes: HashBands
    sources: tuple[SourceRule, ...]
    provenance: ProvenanceRule
    review: ReviewRules
    prompt_rules: tuple[PromptRule, ...]
    prompt_scores: tuple[PromptScoreRule, ...] = ()
    minors: MinorRules = MinorRules()
    stop_conditions: tuple[StopCondition, ...] = ()

    def action(self, code: str) -> Action:
        """The action for ``code``; a code this policy does not know blocks (fail closed)."""
        return self.actions.get(code, "block")

    def score_rule(self, category: str) -> ScoreRule | None:
        return next((rule for rule in self.scores if rule.category == category), None)

    def prompt_score_rule(self, category: str) -> PromptScoreRule | None:
        return next((rule for rule in self.prompt_scores if rule.category == category), None)

    def source_rule(self, source_type: str) -> SourceRule | None:
        return next((rule for rule in self.sources if rule.type == source_type), None)

    def prompt_rule(self, rule_id: str) -> PromptRule | None:
        return next((rule for rule in self.prompt_rules if rule.id == rule_id), None)


def load_policy(source: str | bytes | os.PathLike[str]) -> Policy:
    """Validate and load a policy: a path (``os.PathLike``), the file's bytes, or its text."""
    if isinstance(source, os.PathLike):
        try:
            with open(source, "rb") as handle:  # noqa: PTH123 - any PathLike, not only Path
                data = handle.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise PolicySyntaxInvalid(f"cannot read the policy file: {exc.strerror}") from None
    elif isinstance(source, bytes):
        data = source
    else:
        data = source.encode("utf-8")
    return _load(data)


def default_policy() -> Policy:
    """The strict policy shipped with the package (``moderation/default_policy.toml``)."""
    data = importlib.resources.files("moderation").joinpath("default_policy.toml").read_bytes()
    return _load(data)


def _load(data: bytes) -> Policy:
    if len(data) > MAX_POLICY_BYTES:
        raise PolicySyntaxInvalid(f"a policy file is at most {MAX_POLICY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PolicySyntaxInvalid("the policy file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicySyntaxInvalid(f"the policy file is not valid TOML: {exc}") from None
    document = _convert(raw, _Document, "")
    label = document.version.strip()
    if not label or len(label) > _LABEL_CHARS:
        raise PolicyValueInvalid(f"must be 1..{_LABEL_CHARS} characters", key="version")
    scores = _scores(document.scores)
    categories = {rule.category for rule in scores}
    hashes = _hashes(document.hashes)
    sources = _sources(document.sources)
    prompt_scores = _prompt_scores(document.prompt.scores)
    actions = _actions(document.actions, categories, {rule.category for rule in prompt_scores})
    _check_review(document.review, actions)
    prompt_rules = _prompt_rules(document.prompt.rules)
    stop_conditions = _stop_conditions(document.stop_conditions.rules)
    return Policy(
        version=hashlib.sha256(data).hexdigest(),
        label=label,
        text=text,
        actions=MappingProxyType(actions),
        scores=scores,
        hashes=hashes,
        sources=sources,
        provenance=document.provenance,
        review=document.review,
        prompt_rules=prompt_rules,
        prompt_scores=prompt_scores,
        minors=document.minors,
        stop_conditions=stop_conditions,
    )


def _scores(raw: dict[str, Any]) -> tuple[ScoreRule, ...]:
    rules = []
    for category, value in raw.items():
        key = f"scores.{category}"
        _require_name(category, key)
        rule = _convert(value, ScoreRule, key)
        if "category" in value:
            raise PolicyUnknownKey("the category is the table's name", key=f"{key}.category")
        if rule.review > rule.block:
            raise PolicyValueInvalid(
                f"review threshold {rule.review} is above block threshold {rule.block}",
                key=f"{key}.review",
            )
        for i, use_rule in enumerate(rule.uses):
            _require_use(use_rule.use, f"{key}.uses[{i}].use")
        if rule.waived_by_use is not None:
            _require_use(rule.waived_by_use, f"{key}.waived_by_use")
        rules.append(msgspec.structs.replace(rule, category=category))
    return tuple(rules)


def _prompt_scores(raw: dict[str, Any]) -> tuple[PromptScoreRule, ...]:
    rules = []
    for category, value in raw.items():
        key = f"prompt.scores.{category}"
        _require_name(category, key)
        if isinstance(value, dict) and "category" in value:
            raise PolicyUnknownKey("the category is the table's name", key=f"{key}.category")
        rule = _convert(value, PromptScoreRule, key)
        if rule.review > rule.block:
            raise PolicyValueInvalid(
                f"review threshold {rule.review} is above block threshold {rule.block}",
                key=f"{key}.review",
            )
        rules.append(msgspec.structs.replace(rule, category=category))
    return tuple(rules)


def _hashes(bands: HashBands) -> HashBands:
    if bands.block_distance > bands.review_distance:
        raise PolicyValueInvalid(
            f"block distance {bands.block_distance} is above review distance "
            f"{bands.review_distance}",
            key="hashes.block_distance",
        )
    if bands.pdq.block_distance > bands.pdq.review_distance:
        raise PolicyValueInvalid(
            f"block distance {bands.pdq.block_distance} is above review distance "
            f"{bands.pdq.review_distance}",
            key="hashes.pdq.block_distance",
        )
    for i, name in enumerate(bands.consent_exempt_lists):
        if _LIST_NAME.fullmatch(name) is None:
            raise PolicyValueInvalid(
                "not a hash-list name", key=f"hashes.consent_exempt_lists[{i}]"
            )
    return bands


def _sources(raw: dict[str, Any]) -> tuple[SourceRule, ...]:
    rules = []
    for source_type, value in raw.items():
        key = f"sources.{source_type}"
        _require_name(source_type, key)
        if "type" in value:
            raise PolicyUnknownKey("the type is the table's name", key=f"{key}.type")
        rule = _convert(value, SourceRule, key)
        for i, use in enumerate(rule.publish_uses):
            _require_use(use, f"{key}.publish_uses[{i}]")
        rules.append(msgspec.structs.replace(rule, type=source_type))
    return tuple(rules)


def _actions(
    raw: dict[str, Any], categories: set[str], prompt_categories: set[str]
) -> dict[str, Action]:
    actions: dict[str, Action] = {code: info.default for code, info in REASONS.items()}
    for category in sorted(categories):
        actions[score_code(category, "review")] = "review"
        actions[score_code(category, "block")] = "block"
    for category in sorted(prompt_categories):
        actions[prompt_score_code(category, "review")] = "review"
        actions[prompt_score_code(category, "block")] = "block"
    for code, value in raw.items():
        key = f"actions.{code}"
        if code not in actions:
            raise PolicyUnknownKey(
                "not a reason code (score codes need their category under [scores] or "
                "[prompt.scores])",
                key=key,
            )
        if value not in {"allow", "review", "block"}:
            raise PolicyValueInvalid("must be 'allow', 'review' or 'block'", key=key)
        action: Action = value
        floor = floor_of(code)
        if action_rank(action) < action_rank(floor):
            raise PolicyValueInvalid(
                f"may not be milder than {floor!r}: this reason means evidence is missing or "
                "a real person's consent does not cover the request",
                key=key,
            )
        actions[code] = action
    return actions


def _check_review(review: ReviewRules, actions: Mapping[str, Action]) -> None:
    if not review.tiers:
        raise PolicyValueInvalid("at least one tier is needed", key="review.tiers")
    names: set[str] = set()
    previous = 0
    for i, tier in enumerate(review.tiers):
        key = f"review.tiers[{i}]"
        _require_name(tier.name, f"{key}.name")
        if tier.name in names:
            raise PolicyValueInvalid(f"tier {tier.name!r} is listed twice", key=f"{key}.name")
        if tier.deadline_minutes < previous:
            raise PolicyValueInvalid(
                "tiers are listed most urgent first (deadlines must not decrease)",
                key=f"{key}.deadline_minutes",
            )
        names.add(tier.name)
        previous = tier.deadline_minutes
    if review.default_tier not in names:
        raise PolicyValueInvalid("names no tier", key="review.default_tier")
    for code, tier_name in review.reason_tiers.items():
        key = f"review.reason_tiers.{code}"
        if code not in actions:
            raise PolicyUnknownKey("not a reason code", key=key)
        if tier_name not in names:
            raise PolicyValueInvalid("names no tier", key=key)


def _prompt_rules(raw: tuple[Any, ...]) -> tuple[PromptRule, ...]:
    rules = []
    seen: set[str] = set()
    for i, value in enumerate(raw):
        key = f"prompt.rules[{i}]"
        rule = _convert(value, PromptRule, key)
        _require_name(rule.id, f"{key}.id")
        if rule.id in seen:
            raise PolicyValueInvalid(f"rule id {rule.id!r} is used twice", key=f"{key}.id")
        seen.add(rule.id)
        if bool(rule.any) == bool(rule.all):
            raise PolicyValueInvalid(
                "a rule has either 'any' or 'all', not both or neither", key=key
            )
        _check_patterns(rule, key)
        if rule.requires_use is not None:
            _require_use(rule.requires_use, f"{key}.requires_use")
        elif not rule.abusive:
            # It would match and do nothing: no use to ask for, no intent to hold against.
            raise PolicyKeyMissing(
                "a rule with abusive = false names the use it needs", key=f"{key}.requires_use"
            )
        for j, tag in enumerate(rule.languages):
            problem = language_problem(tag)
            if problem is not None:
                raise PolicyValueInvalid(problem, key=f"{key}.languages[{j}]")
        rules.append(rule)
    return tuple(rules)


def _check_patterns(rule: PromptRule, key: str) -> None:
    groups = {"any": (rule.any,)} if rule.any else {"all": rule.all}
    for field, patterns_by_group in groups.items():
        for g, patterns in enumerate(patterns_by_group):
            if not patterns:
                raise PolicyValueInvalid("an empty group", key=f"{key}.{field}[{g}]")
            for p, pattern in enumerate(patterns):
                problem = pattern_problem(pattern)
                where = f"{key}.{field}[{p}]" if field == "any" else f"{key}.all[{g}][{p}]"
                if problem is not None:
                    raise PolicyValueInvalid(problem, key=where)


def _stop_conditions(raw: tuple[Any, ...]) -> tuple[StopCondition, ...]:
    conditions = []
    seen: set[str] = set()
    for i, value in enumerate(raw):
        key = f"stop_conditions.rules[{i}]"
        condition = _convert(value, StopCondition, key)
        _require_name(condition.id, f"{key}.id")
        if condition.id in seen:
            raise PolicyValueInvalid(
                f"condition id {condition.id!r} is used twice", key=f"{key}.id"
            )
        seen.add(condition.id)
        if condition.signal == "blocked_rate" and condition.threshold > 1:
            raise PolicyValueInvalid("a blocked rate lies in (0, 1]", key=f"{key}.threshold")
        if condition.subject == "client" and "min_clients" in value:
            # A client's own figures come from one client.
            raise PolicyUnknownKey(
                "only a model's figures come from several clients", key=f"{key}.min_clients"
            )
        if condition.signal == "hash_matches":
            if condition.threshold != int(condition.threshold):
                raise PolicyValueInvalid(
                    "a number of hash-list matches is a whole number", key=f"{key}.threshold"
                )
            if "min_decisions" in value:
                # It would read as if it did something: a burst of matches counts alone.
                raise PolicyUnknownKey(
                    "hash_matches counts matches, not a rate", key=f"{key}.min_decisions"
                )
        conditions.append(condition)
    return tuple(conditions)


def _require_name(name: str, key: str) -> None:
    if _NAME.fullmatch(name) is None:
        raise PolicyValueInvalid(
            "names are 1..48 characters of a-z, 0-9 and _, starting with a letter", key=key
        )


def _require_use(use: str, key: str) -> None:
    if _USE.fullmatch(use) is None:
        raise PolicyValueInvalid("not a consent use name (e.g. 'content.explicit')", key=key)
    # A misspelt use ('content.explicitt') would load and then fail closed on every image:
    # no consent can ever grant it. Refuse it here, naming it.
    if not is_known_use(use):
        known = ", ".join(USES)
        raise PolicyValueInvalid(f"{use!r} is not a use of the vocabulary ({known})", key=key)


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def _convert(value: object, kind: type[_T], key: str) -> _T:
    """``msgspec.convert`` with its errors turned into policy errors naming the full key."""
    if not isinstance(value, dict):
        raise PolicyValueInvalid("must be a table", key=key or None)
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _policy_error(str(exc), key) from None


def _policy_error(text: str, prefix: str) -> PolicyError:
    found = _AT.match(text)
    message, path = (found.group("message"), found.group("path") or "") if found else (text, "")
    where = _join(prefix, path.lstrip("."))
    field = _FIELD.search(message)
    if message.startswith("Object contains unknown field") and field:
        return PolicyUnknownKey("unknown key", key=_join(where, field.group("field")))
    if message.startswith("Object missing required field") and field:
        return PolicyKeyMissing("required key is missing", key=_join(where, field.group("field")))
    return PolicyValueInvalid(message, key=where or None)


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"
