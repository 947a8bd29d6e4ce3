"""The red-team corpus: adversarial cases replayed through the gate's decision engine.

A corpus is a directory of TOML files (``moderation/redteam_corpus`` ships one). A file may
hold ``[[case]]`` entries, ``[image.NAME]`` tables (the perceptual hashes of an output image,
in every flip and rotation, as the gate computes them) and ``[[list]]`` entries (protected
hash lists and their entries). Names of cases, images and lists are unique across the corpus.
``docs/redteam.md`` documents every key.

Each case is turned into the gate's ``Evidence`` with the gate's own parts, then decided by
``moderation.decide``, the pure function the gate service calls: the prompt through the
policy's compiled prompt rules, the consent answers through ``check_sources`` with the uses
``required_uses`` asks for, the scores as supplied scores, the image's hashes through
``image_hits`` and ``hash_facts`` against an index of the corpus's lists under the policy's
bands. What the corpus states instead of computing is only what the gate learns from
outside: the consent registry's answer about each token (its state, uses and signer) and
the output's C2PA state.

A case holds when its outcome is the one expected and every expected reason is among the
decision's reasons. A case decided more permissively than expected (``allowed`` where
``review`` or ``blocked`` was expected, ``review`` where ``blocked`` was) is a hole the
policy opened: ``Report.more_permissive`` counts them and ``registry policy redteam`` exits
non-zero on any. A stricter outcome is reported but does not fail the run: tightening a
policy is a deliberate trade of reviewer time the corpus cannot judge, and the case's
expectation is updated when the trade is accepted.

A case may carry ``gap``: a hole known in the policy, documented there (what is missing and
where it is tracked). Gaps are reported apart; they count neither as holding nor as holes,
and once a gap case holds the report says so, so the mark is removed.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

import msgspec

from moderation.classifiers import SuppliedScores
from moderation.consent import ConsentCheck, SourceAsset, SourceEvidence, check_sources
from moderation.decision import Decision, decide, effective_scores, required_uses
from moderation.errors import HashValueInvalid, RedteamCaseInvalid
from moderation.evidence import (
    Evidence,
    HashFacts,
    ImageFacts,
    PromptFacts,
    ProvenanceFacts,
    Stage,
    image_facts,
)
from moderation.hashlists import (
    HashEntry,
    HashIndex,
    IndexRows,
    ListAction,
    ListSpec,
    check_list_name,
    hash_facts,
    image_hits,
    source_matches,
)
from moderation.prompts import compile_rules
from moderation.reasons import REASONS
from moderation.signals import (
    DIHEDRAL,
    ImageSignals,
    Signal,
    SignalHashes,
    image_signals,
    parse_hash,
)
from verifier import ImageError, ImageLimits, decode, sha256_hex
from verifier.tokens import Reason
from verifier.uses import is_known_use

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from moderation.policy import Policy

__all__ = [
    "CORPUS_DIR",
    "Case",
    "CaseResult",
    "Corpus",
    "Report",
    "decide_case",
    "load_corpus",
    "run_corpus",
    "shipped_corpus",
]

Status: TypeAlias = Literal["allowed", "review", "blocked"]
Change: TypeAlias = Literal["more_permissive", "stricter", "reasons_missing", "gap_holds"]
ConsentState: TypeAlias = Literal[
    "valid",
    "withdrawn",
    "suspended",
    "expired",
    "not_yet_valid",
    "forged",
    "wrong_issuer",
    "wrong_audience",
    "asset_mismatch",
    "status_unknown",
    "malformed",
]
Signer: TypeAlias = Literal["subject", "guardian", "agent", "rights_holder"]
ProvenanceState: TypeAlias = Literal[
    "trusted", "valid_untrusted", "invalid", "absent", "remote_manifest", "unsupported"
]

CORPUS_DIR = "redteam_corpus"
_RANK: dict[Status, int] = {"allowed": 0, "review": 1, "blocked": 2}
# The registry's answer for each state a case may give a consent token (what
# registry.consent.evidence answers: USE_NOT_PERMITTED is added from the uses below).
_STATE_REASONS: dict[ConsentState, tuple[Reason, ...]] = {
    "valid": (),
    "withdrawn": (Reason.REVOKED,),
    "suspended": (Reason.SUSPENDED,),
    "expired": (Reason.EXPIRED,),
    "not_yet_valid": (Reason.NOT_YET_VALID,),
    "forged": (Reason.SIGNATURE,),
    "wrong_issuer": (Reason.ISSUER,),
    "wrong_audience": (Reason.AUDIENCE,),
    "asset_mismatch": (Reason.ASSET_MISMATCH,),
    "status_unknown": (Reason.STATUS_UNKNOWN,),
    "malformed": (Reason.MALFORMED,),
}
# States in which the registry could not read the token's claims: no uses, no consent id.
_UNREAD: frozenset[ConsentState] = frozenset({"forged", "malformed"})
_ID = r"^[a-z0-9][a-z0-9_.-]{0,95}$"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,95}")
_IMAGE_FILE = re.compile(r".*\.(png|jpe?g|webp)$", re.IGNORECASE)
_CASE_HEADER = re.compile(r"^\s*\[\[\s*case\s*\]\]")
# A case's image file is decoded within these bounds (the gate's own defaults).
_LIMITS = ImageLimits(max_bytes=20_000_000, max_pixels=40_000_000)
_TENANT = "system"
# Decisions are pure: a fixed receipt time keeps every review deadline reproducible.
_RECEIVED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_T = TypeVar("_T")
_Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class ConsentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The registry's answer about a source's consent token, as the case states it."""

    uses: tuple[str, ...] = ()
    signer: Signer = "subject"
    state: ConsentState = "valid"


class SourceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A declared source asset; without ``consent`` it came with no token."""

    type: _Name = "photo"
    asset_id: str = ""
    consent: ConsentIn | None = None
    check: Literal["answered", "timeout", "unavailable"] = "answered"
    """Whether the registry answered about the token at all."""


class Case(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=_ID)]
    expect: Status
    stage: Stage = "publish"
    prompt: Annotated[str, msgspec.Meta(max_length=20_000)] = ""
    sources: tuple[SourceIn, ...] = ()
    intended_uses: tuple[str, ...] = ()
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    image: str | None = None
    """An ``[image.NAME]`` of the corpus, or an image file beside the case's file."""
    provenance: ProvenanceState = "absent"
    reasons: tuple[str, ...] = ()
    """Reason codes the decision must give (others may come with them)."""
    gap: str | None = None
    note: str = ""
    file: str = ""
    line: int = 0


class ImageIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An output image as its hashes: eight of each signal in ``DIHEDRAL`` order (sixteen
    when a border was trimmed), PDQ's quality, and how it was made (``fixture``, ``edit``)."""

    phash: tuple[str, ...]
    pdq: tuple[str, ...]
    pdq_quality: Annotated[int, msgspec.Meta(ge=0, le=100)]
    border_trimmed: bool = False
    fixture: str = ""
    edit: str = ""


class EntryIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    hash: str
    label: str
    source: str | None = None
    crop: str | None = None


class ListIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    signal: Signal
    action: ListAction
    entries: tuple[EntryIn, ...]


class _File(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    case: tuple[dict[str, Any], ...] = ()
    image: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    list: tuple[dict[str, Any], ...] = ()


class Corpus(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded corpus: its cases in file order, its images by name, its hash index."""

    root: str
    cases: tuple[Case, ...]
    images: dict[str, ImageSignals]
    index: HashIndex
    entries: dict[int, HashEntry]


class CaseResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    file: str
    line: int
    expected: Status
    actual: Status
    change: Change
    reasons: tuple[str, ...]
    missing_reasons: tuple[str, ...] = ()
    gap: str | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The cases that did not hold (and gap cases that now do), with counts."""

    ok: bool
    """No case became more permissive than expected."""
    policy_label: str
    policy_version: str
    cases: int
    holding: int
    gaps: int
    more_permissive: int
    stricter: int
    reasons_missing: int
    differences: tuple[CaseResult, ...]

    def lines(self) -> list[str]:
        """A table of the differences, then the counts."""
        out = []
        if self.differences:
            rows = [("case", "expected", "actual", "change", "where")]
            for result in self.differences:
                change = result.change.replace("_", " ")
                if result.missing_reasons:
                    change += ": " + ",".join(result.missing_reasons)
                where = f"{result.file}:{result.line}"
                rows.append((result.id, result.expected, result.actual, change, where))
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                out.append("  ".join([*cells, row[4]]).rstrip())
        out.append(
            f"{self.cases} case(s) under policy {self.policy_label} "
            f"(version {self.policy_version[:12]}): {self.holding} hold, "
            f"{self.more_permissive} more permissive, {self.stricter} stricter, "
            f"{self.reasons_missing} missing reasons, {self.gaps} known gap(s)"
        )
        return out


def shipped_corpus() -> Path:
    """The directory of the corpus shipped in the package."""
    return Path(str(importlib.resources.files("moderation").joinpath(CORPUS_DIR)))


def load_corpus(directory: str | Path) -> Corpus:
    """Read and validate every ``*.toml`` file of ``directory`` (sorted by name).

    Refuses the whole corpus (``RedteamCaseInvalid``) at the first bad file or case, naming
    the file, the line its case starts on and the key.
    """
    root = Path(directory)
    files = sorted(root.glob("*.toml"))
    if not files:
        raise RedteamCaseInvalid("no *.toml file in the corpus directory", file=str(root))
    cases: list[Case] = []
    raw_images: dict[str, tuple[str, ImageIn]] = {}
    lists: list[tuple[str, ListIn]] = []
    for path in files:
        name = path.name
        text = _read(path)
        try:
            document = msgspec.convert(tomllib.loads(text), _File)
        except tomllib.TOMLDecodeError as exc:
            raise RedteamCaseInvalid(f"not valid TOML: {exc}", file=name) from None
        except msgspec.ValidationError as exc:
            raise RedteamCaseInvalid(str(exc), file=name) from None
        lines = _case_lines(text)
        for position, raw in enumerate(document.case):
            line = lines[position] if position < len(lines) else None
            cases.append(_case(raw, name, line, path.parent))
        for image_name, raw in document.image.items():
            key = f"image.{image_name}"
            if image_name in raw_images:
                raise RedteamCaseInvalid(
                    f"also defined in {raw_images[image_name][0]}", file=name, key=key
                )
            raw_images[image_name] = (name, _convert(raw, ImageIn, name, None, key))
        for position, raw in enumerate(document.list):
            lists.append((name, _convert(raw, ListIn, name, None, f"list[{position}]")))
    images = {
        n: _image_signals(image, file, f"image.{n}") for n, (file, image) in raw_images.items()
    }
    index, entries = _index(lists)
    _check_references(cases, images, root)
    return Corpus(root=str(root), cases=tuple(cases), images=images, index=index, entries=entries)


async def run_corpus(corpus: Corpus, policy: Policy) -> Report:
    """Every case of ``corpus`` decided under ``policy``, against its expectation."""
    differences: list[CaseResult] = []
    holding = gaps = 0
    for case in corpus.cases:
        decision = await decide_case(corpus, case, policy)
        result = _compare(case, decision)
        if case.gap is not None:
            gaps += 1
            if result is None:
                differences.append(_gap_holds(case, decision))
            continue
        if result is None:
            holding += 1
        else:
            differences.append(result)
    changes = [d.change for d in differences]
    return Report(
        ok="more_permissive" not in changes,
        policy_label=policy.label,
        policy_version=policy.version,
        cases=len(corpus.cases),
        holding=holding,
        gaps=gaps,
        more_permissive=changes.count("more_permissive"),
        stricter=changes.count("stricter"),
        reasons_missing=changes.count("reasons_missing"),
        differences=tuple(differences),
    )


async def decide_case(corpus: Corpus, case: Case, policy: Policy) -> Decision:
    """The gate's decision on ``case`` under ``policy``."""
    return decide(await _evidence(corpus, case, policy), policy)


# Evidence, built as the gate builds it (registry.gate.service).


async def _evidence(corpus: Corpus, case: Case, policy: Policy) -> Evidence:
    received_at = _RECEIVED_AT
    prompt = PromptFacts(matched=compile_rules(policy.prompt_rules).check(case.prompt).matched)
    declared = tuple(_asset(case, i, source) for i, source in enumerate(case.sources))
    answers = _Answers(case)
    if case.stage == "prompt":
        sources = await _sources(
            answers,
            declared=declared,
            policy=policy,
            stage="prompt",
            scores={},
            prompt=prompt,
            case=case,
        )
        return Evidence(
            stage="prompt",
            received_at=received_at,
            prompt=prompt,
            sources=sources,
            declared_uses=case.intended_uses,
        )
    facts, signals = _output(corpus, case)
    classifiers = (SuppliedScores(case.scores).result(),)
    scores = effective_scores(classifiers)
    sources = await _sources(
        answers,
        declared=declared,
        policy=policy,
        stage="publish",
        scores=scores,
        prompt=prompt,
        case=case,
    )
    hashes = HashFacts()
    if signals is not None:
        hits = image_hits(corpus.index, signals, policy.hashes, tenant=_TENANT)
        hashes = hash_facts(corpus.index, signals, hits, corpus.entries, tenant=_TENANT)
        hashes = msgspec.structs.replace(hashes, sources=source_matches(facts, sources))
    return Evidence(
        stage="publish",
        received_at=received_at,
        image=facts,
        prompt=prompt,
        sources=sources,
        provenance=ProvenanceFacts(state=case.provenance),
        classifiers=classifiers,
        hashes=hashes,
    )


async def _sources(
    answers: _Answers,
    *,
    declared: tuple[SourceAsset, ...],
    policy: Policy,
    stage: Stage,
    scores: dict[str, float],
    prompt: PromptFacts,
    case: Case,
) -> tuple[SourceEvidence, ...]:
    uses_by_type = {
        asset.type: required_uses(
            policy,
            stage=stage,
            source_type=asset.type,
            scores=scores,
            prompt_rules=prompt.matched,
            declared_uses=case.intended_uses,
        )
        for asset in declared
    }
    # The answers are in memory: the bound is never reached.
    return await check_sources(
        answers, declared, generator_client_id="generator", uses_by_type=uses_by_type, timeout=5.0
    )


def _asset(case: Case, position: int, source: SourceIn) -> SourceAsset:
    token = None if source.consent is None else f"token-{position}"
    return SourceAsset(type=source.type, asset_id=_asset_id(case, position), consent_token=token)


def _asset_id(case: Case, position: int) -> str:
    return case.sources[position].asset_id or f"asset-{position}"


class _Answers:
    """The consent registry's answers as the case states them (``ConsentEvidenceSource``)."""

    def __init__(self, case: Case) -> None:
        self._by_token = {
            f"token-{i}": source for i, source in enumerate(case.sources) if source.consent
        }

    async def check(
        self,
        *,
        token: str,
        asset_id: str,
        asset_sha256: str | None,
        generator_client_id: str,
        uses_needed: Collection[str],
    ) -> ConsentCheck:
        del asset_sha256, generator_client_id
        source = self._by_token[token]
        if source.check == "timeout":
            raise TimeoutError
        if source.check == "unavailable":
            # check_sources records any other failure of the source as "unavailable".
            raise _NoAnswer
        consent = source.consent
        assert consent is not None  # noqa: S101 - only token-bearing sources are asked
        reasons = list(_STATE_REASONS[consent.state])
        if consent.state in _UNREAD:
            return ConsentCheck(valid=False, reasons=tuple(reasons))
        if any(use not in consent.uses for use in uses_needed):
            reasons.append(Reason.USE_NOT_PERMITTED)
        return ConsentCheck(
            valid=not reasons,
            reasons=tuple(reasons),
            consent_id=f"consent-{asset_id}",
            jti=f"jti-{asset_id}",
            uses=consent.uses,
            signer_role=consent.signer,
        )


class _NoAnswer(Exception):
    pass


def _output(corpus: Corpus, case: Case) -> tuple[ImageFacts, ImageSignals | None]:
    """The output image's facts and signals (None: an image that matches no list)."""
    if case.image is None:
        return ImageFacts(decoded=True, media_type="image/png", width=512, height=512), None
    if _IMAGE_FILE.fullmatch(case.image):
        data = (Path(corpus.root) / case.image).read_bytes()
        try:
            decoded = decode(data, _LIMITS, hash_only=True)
        except ImageError as exc:
            return ImageFacts(decoded=False, sha256=sha256_hex(data), error=exc.code), None
        signals = image_signals(decoded.image)
        return image_facts(decoded, sha256=sha256_hex(data), signals=signals), signals
    signals = corpus.images[case.image]
    facts = ImageFacts(
        decoded=True,
        phash=signals.phash.hashes[0],
        variants=signals.phash.hashes[1:],
        pdq=signals.pdq.hashes[0],
        pdq_quality=signals.pdq.quality,
        border_trimmed=signals.border_trimmed,
        media_type="image/png",
    )
    return facts, signals


# Comparison.


def _compare(case: Case, decision: Decision) -> CaseResult | None:
    missing = tuple(code for code in case.reasons if code not in decision.reasons)
    change: Change
    if _RANK[decision.status] < _RANK[case.expect]:
        change = "more_permissive"
    elif _RANK[decision.status] > _RANK[case.expect]:
        change = "stricter"
    elif missing:
        change = "reasons_missing"
    else:
        return None
    return CaseResult(
        id=case.id,
        file=case.file,
        line=case.line,
        expected=case.expect,
        actual=decision.status,
        change=change,
        reasons=decision.reasons,
        missing_reasons=missing,
        gap=case.gap,
    )


def _gap_holds(case: Case, decision: Decision) -> CaseResult:
    return CaseResult(
        id=case.id,
        file=case.file,
        line=case.line,
        expected=case.expect,
        actual=decision.status,
        change="gap_holds",
        reasons=decision.reasons,
        gap=case.gap,
    )


# Loading.


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RedteamCaseInvalid("not UTF-8", file=path.name) from None
    except OSError as exc:
        raise RedteamCaseInvalid(f"cannot be read: {exc.strerror}", file=path.name) from None


def _case_lines(text: str) -> list[int]:
    """The line (1-based) of each ``[[case]]`` header, in order."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if _CASE_HEADER.match(line)]


def _convert(raw: object, kind: type[_T], file: str, line: int | None, key: str) -> _T:
    if not isinstance(raw, dict):
        raise RedteamCaseInvalid("must be a table", file=file, line=line, key=key)
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        where = key + (("." + path.rstrip("`").lstrip(".")) if path else "")
        raise RedteamCaseInvalid(message, file=file, line=line, key=where) from None


def _case(raw: dict[str, Any], file: str, line: int | None, folder: Path) -> Case:
    for reserved in ("file", "line"):
        if reserved in raw:
            raise RedteamCaseInvalid("unknown key", file=file, line=line, key=f"case.{reserved}")
    key = f"case {raw.get('id', '?')!r}" if isinstance(raw.get("id"), str) else "case"
    case = _convert(raw, Case, file, line, key)
    key = f"case {case.id!r}"
    _check_uses(case, file, line, key)
    for category, value in case.scores.items():
        # Checked here, not by the type, so that the error names the category.
        if not 0.0 <= value <= 1.0:
            raise RedteamCaseInvalid(
                "a score lies in 0..1", file=file, line=line, key=f"{key}.scores.{category}"
            )
    for code in case.reasons:
        if code not in REASONS and not (code.startswith("score_") and _CODE.fullmatch(code)):
            raise RedteamCaseInvalid(
                f"{code!r} is not a reason code", file=file, line=line, key=f"{key}.reasons"
            )
    if case.stage == "prompt" and (case.scores or case.image is not None):
        raise RedteamCaseInvalid(
            "a prompt-stage case has no image and no scores", file=file, line=line, key=key
        )
    if case.stage == "publish" and case.intended_uses:
        # The publish gate takes no declared uses: the key would be silently ignored.
        raise RedteamCaseInvalid(
            "only a prompt-stage case declares uses",
            file=file,
            line=line,
            key=f"{key}.intended_uses",
        )
    image_file = case.image is not None and _IMAGE_FILE.fullmatch(case.image)
    if image_file and not (folder / str(case.image)).is_file():
        raise RedteamCaseInvalid(
            f"no image file {case.image!r} beside this file",
            file=file,
            line=line,
            key=f"{key}.image",
        )
    return msgspec.structs.replace(case, file=file, line=line or 0)


def _check_uses(case: Case, file: str, line: int | None, key: str) -> None:
    named = [("intended_uses", case.intended_uses)]
    named += [
        (f"sources[{i}].consent.uses", source.consent.uses)
        for i, source in enumerate(case.sources)
        if source.consent is not None
    ]
    for field, uses in named:
        for use in uses:
            if not is_known_use(use):
                raise RedteamCaseInvalid(
                    f"{use!r} is not a consent use", file=file, line=line, key=f"{key}.{field}"
                )


def _image_signals(image: ImageIn, file: str, key: str) -> ImageSignals:
    for signal, hashes in (("phash", image.phash), ("pdq", image.pdq)):
        expected = 2 * len(DIHEDRAL) if image.border_trimmed else len(DIHEDRAL)
        if len(hashes) != expected:
            order = "DIHEDRAL order, then trimmed" if image.border_trimmed else "DIHEDRAL order"
            raise RedteamCaseInvalid(
                f"{expected} hashes ({order})",
                file=file,
                key=f"{key}.{signal}",
            )
        for value in hashes:
            _parse(signal, value, file, f"{key}.{signal}")  # type: ignore[arg-type]
    return ImageSignals(
        pdq=SignalHashes(signal="pdq", hashes=image.pdq, quality=image.pdq_quality),
        phash=SignalHashes(signal="phash", hashes=image.phash),
        border_trimmed=image.border_trimmed,
    )


def _parse(signal: Signal, value: str, file: str, key: str) -> bytes:
    try:
        return parse_hash(signal, value)
    except HashValueInvalid as exc:
        raise RedteamCaseInvalid(exc.message, file=file, key=key) from None


def _index(lists: Iterable[tuple[str, ListIn]]) -> tuple[HashIndex, dict[int, HashEntry]]:
    index = HashIndex()
    specs: list[ListSpec] = []
    entries: dict[int, HashEntry] = {}
    rows: dict[Signal, list[tuple[int, int, bytes, bool, bool]]] = {"pdq": [], "phash": []}
    names: set[str] = set()
    for list_id, (file, item) in enumerate(lists, start=1):
        key = f"list {item.name!r}"
        try:
            check_list_name(item.name)
        except HashValueInvalid as exc:
            raise RedteamCaseInvalid(exc.message, file=file, key=f"{key}.name") from None
        if item.name in names:
            raise RedteamCaseInvalid("a list of this name is defined twice", file=file, key=key)
        names.add(item.name)
        specs.append(
            ListSpec(list_id=list_id, name=item.name, signal=item.signal, action=item.action)
        )
        for position, entry in enumerate(item.entries):
            value = _parse(item.signal, entry.hash, file, f"{key}.entries[{position}].hash")
            entry_id = len(entries) + 1
            entries[entry_id] = HashEntry(
                entry_id=entry_id,
                hash=value,
                label=entry.label,
                source=entry.source,
                crop=entry.crop,
            )
            rows[item.signal].append((entry_id, list_id, value, True, True))
    index.set_lists(specs)
    for signal, signal_rows in rows.items():
        index.upsert(signal, IndexRows.of(signal, signal_rows))
    return index, entries


def _check_references(cases: Sequence[Case], images: dict[str, ImageSignals], root: Path) -> None:
    seen: dict[str, Case] = {}
    for case in cases:
        if case.id in seen:
            first = seen[case.id]
            raise RedteamCaseInvalid(
                f"case id also used at {first.file}:{first.line}",
                file=case.file,
                line=case.line,
                key=f"case {case.id!r}.id",
            )
        seen[case.id] = case
        named = case.image is not None and not _IMAGE_FILE.fullmatch(case.image)
        if named and case.image not in images:
            raise RedteamCaseInvalid(
                f"no [image.{case.image}] in {root.name}",
                file=case.file,
                line=case.line,
                key=f"case {case.id!r}.image",
            )
