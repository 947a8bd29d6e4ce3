"""The publish gate: collect evidence, decide under the policy, record, answer.

Evidence is collected step by step, each step bounded in time and unable to raise: a step
that fails or runs late becomes evidence saying so (``timeout``, ``unavailable``), which the
policy turns into ``review`` or ``block``. The order follows the data each step needs:

1. the image, decoded safely and hashed (PDQ and pHash, each in all eight flips and
   rotations) in the provenance service's bounded image workers;
2. the prompt's intent (policy rules);
3. at once: the output's C2PA report (same workers), the classifiers (supplied scores, and
   the configured classifier), and the protected hash lists (this process's index);
4. the consent of every source asset, asking for the uses the scores and prompt imply;
5. ``moderation.decide``.

The decision is stored with its evidence, its review ticket and its audit event in one
transaction before the response is written; if that transaction fails, the caller gets a
503 problem (``decision_not_recorded``) and never a decision, so no ``allowed`` exists that
is not on record. A generation is decided once per client and stage: the same request
again gets the stored decision; the same ``generation_id`` with another image (or, for the
prompt check, another request) is a conflict.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import asyncpg
import msgspec

from moderation import (
    ClassifierResult,
    Decision,
    Evidence,
    HashFacts,
    ImageFacts,
    ImageInput,
    PromptFacts,
    ProvenanceFacts,
    Restriction,
    SourceAsset,
    SourceEvidence,
    StepTiming,
    SuppliedScores,
    WatermarkFacts,
    check_sources,
    compile_rules,
    decide,
    effective_scores,
    hash_facts,
    image_facts,
    image_hits,
    required_uses,
    run_classifiers,
    source_matches,
    validate_scores,
)
from moderation.signals import ImageSignals, image_signals
from registry.consent.evidence import RegistryConsentEvidence
from registry.consent.uses import require_known_uses
from registry.core import db
from registry.core.outbound import UrlNotAllowed
from registry.core.uow import unit_of_work
from registry.gate import misuse, repository
from registry.gate.errors import (
    DecisionNotRecorded,
    GateBusy,
    GenerationConflict,
    GeneratorClientRequired,
    ImageMissing,
    PromptScoreInvalid,
)
from registry.gate.requests import (
    CheckRequest,
    GateResponse,
    PromptCheckRequest,
    SourceAssetIn,
    request_record,
    request_sha256,
)
from registry.gate.vault import DecisionVault
from registry.provenance import ImageWorkBusy
from registry.provenance import repository as provenance_repository
from verifier import (
    DecisionRef,
    DecodedImage,
    ImageError,
    ImageLimits,
    Report,
    TrustSettings,
    decode,
    sha256_hex,
    verify,
    watermark,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from moderation import Classifier, Policy
    from moderation.evidence import Stage
    from registry.consent.service import ConsentService
    from registry.core.auth import Client
    from registry.core.outbound import ImageFetcher
    from registry.gate.hashlists import HashLists
    from registry.provenance import BoundedWork

__all__ = ["GateOutcome", "GateService", "GateSettings", "StoredDecisions"]

_T = TypeVar("_T")
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, db.DatabaseError)


class GateSettings(msgspec.Struct, kw_only=True, frozen=True):
    """What the gate needs from the service settings, composed by the shell."""

    image_limits: ImageLimits
    image_timeout: float
    provenance_timeout: float
    classifier_timeout: float
    consent_timeout: float
    hashes_timeout: float
    acquire_timeout: float


class GateOutcome(msgspec.Struct, kw_only=True, frozen=True):
    response: GateResponse
    replayed: bool
    """True when this is the stored decision of an earlier identical request."""


class StoredDecisions:
    """``registry.provenance.DecisionSource`` on the decisions table: what a signed manifest
    says about the publish decision (its id, current outcome and policy version)."""

    async def decision_ref(
        self, conn: asyncpg.Connection, decision_id: str, *, tenant: str
    ) -> DecisionRef | None:
        row = await repository.get_decision(conn, decision_id)
        if row is None or row.tenant != tenant or row.stage != "publish":
            return None
        return DecisionRef(
            id=row.decision_id, outcome=row.current_status, policy_version=row.policy_version
        )


class _Timings:
    def __init__(self) -> None:
        self.steps: list[StepTiming] = []

    async def run(self, step: str, work: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            self.steps.append(
                StepTiming(step=step, ms=round((time.perf_counter() - started) * 1000.0, 3))
            )

    def mark_timeout(self, step: str) -> None:
        self.steps = [
            msgspec.structs.replace(t, timed_out=True) if t.step == step else t for t in self.steps
        ]


ImageKeeper = Callable[["asyncpg.Connection", str, str, bytes], Awaitable[None]]
"""Keeps a `review` decision's image for the reviewer (connection, decision id, media type,
bytes), in the decision's transaction; the web console's encrypted store in this service."""


class GateService:
    """The gate of this process: its policy, classifiers, hash index and image workers."""

    def __init__(
        self,
        *,
        settings: GateSettings,
        policy: Policy,
        pool: asyncpg.Pool,
        consent: ConsentService,
        trust: TrustSettings,
        work: BoundedWork,
        hash_lists: HashLists,
        classifiers: Sequence[Classifier] = (),
        fetcher: ImageFetcher | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        keep_review_image: ImageKeeper | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.hash_lists = hash_lists
        self._pool = pool
        self._consent = consent
        self.vault = DecisionVault(consent.data_keys)
        self._trust = trust
        self._work = work
        self._classifiers = tuple(classifiers)
        self._fetcher = fetcher
        self._closers = tuple(closers)
        self._keep_review_image = keep_review_image
        self._prompt_rules = compile_rules(policy.prompt_rules)

    def __repr__(self) -> str:
        return f"GateService(policy={self.policy.label!r}, classifiers={len(self._classifiers)})"

    async def aclose(self) -> None:
        for close in self._closers:
            await close()

    # The publish gate.

    async def check(
        self, *, actor: Client, request: CheckRequest, image: bytes | None
    ) -> GateOutcome:
        """Decide on a generated image before publication.

        Raises image_missing, generator_client_id_required, image_url_not_allowed,
        image_fetch_failed, image_too_large, generation_conflict, gate_busy or
        decision_not_recorded; every other fault is evidence in the decision.
        """
        received_at = datetime.now(UTC)
        if (image is None) == (request.image_url is None):
            raise ImageMissing("send the image either as the 'image' part or as image_url")
        if _has_tokens(request.source_assets) and request.metadata.generator_client_id is None:
            raise GeneratorClientRequired(
                "metadata.generator_client_id names the generator the consent tokens are for"
            )
        prompt_scores = _prompt_scores(request.prompt_scores)
        data = image if image is not None else await self._fetch(request.image_url or "")
        image_sha256 = sha256_hex(data)
        existing = await self._existing(
            actor, request.generation_id, "publish", lambda row: row.image_sha256 == image_sha256
        )
        if existing is not None:
            return existing
        restrictions = await self._restrictions(
            [actor.client_id, request.metadata.generator_client_id or ""],
            request.metadata.model,
            "publish",
        )
        evidence = await self._publish_evidence(actor, request, data, received_at, prompt_scores)
        return await self._record(
            actor,
            generation_id=request.generation_id,
            evidence=msgspec.structs.replace(evidence, restrictions=restrictions),
            image=data,
            request=request_record(request),
            request_hash=request_sha256(request),
            image_sha256=image_sha256,
            model=request.metadata.model,
        )

    async def _restrictions(
        self, clients: Sequence[str], model: str | None, feature: misuse.Feature
    ) -> tuple[Restriction, ...]:
        """The kill-switches in force (``registry.gate.misuse``). Never skipped: a database
        that cannot answer cannot record a decision either, so its fault reaches the caller
        as a 503 (as in ``_existing``) and nothing goes unchecked."""
        async with db.acquire(self._pool, wait=self.settings.acquire_timeout) as conn:
            return await misuse.restrictions(conn, clients=clients, model=model, feature=feature)

    async def _fetch(self, url: str) -> bytes:
        if self._fetcher is None:
            raise UrlNotAllowed(
                "image_url is not accepted: no host is allow-listed "
                "(REGISTRY_IMAGE_FETCH_ALLOWED_HOSTS); upload the image instead"
            )
        return (await self._fetcher.fetch(url)).data

    async def _publish_evidence(
        self,
        actor: Client,
        request: CheckRequest,
        data: bytes,
        received_at: datetime,
        prompt_scores: dict[str, float],
    ) -> Evidence:
        timings = _Timings()
        facts, decoded, signals = await self._image(data, timings)
        prompt = await timings.run("prompt", self._prompt(request.prompt, prompt_scores))
        supplied = (SuppliedScores(request.scores).result(),) if request.scores is not None else ()
        provenance: ProvenanceFacts | None = None
        hashes: HashFacts | None = None
        computed: tuple[ClassifierResult, ...] = ()
        if decoded is not None and signals is not None:
            provenance, computed, hashes = await asyncio.gather(
                timings.run("provenance", self._provenance(data, decoded, timings)),
                timings.run("classifiers", self._classify(data, decoded)),
                timings.run("hashes", self._hashes(signals, actor.tenant, timings)),
            )
        classifiers = supplied + computed
        sources = await timings.run(
            "consent",
            self._sources(
                actor,
                request.source_assets,
                generator=request.metadata.generator_client_id or "",
                stage="publish",
                scores=effective_scores(classifiers),
                prompt_rules=prompt.matched,
                declared_uses=(),
            ),
        )
        if hashes is not None and hashes.error is None:
            hashes = msgspec.structs.replace(hashes, sources=source_matches(facts, sources))
        return Evidence(
            stage="publish",
            received_at=received_at,
            image=facts,
            prompt=prompt,
            sources=sources,
            provenance=provenance,
            classifiers=classifiers,
            hashes=hashes,
            timings=tuple(timings.steps),
        )

    async def _image(self, data: bytes, timings: _Timings) -> _Analysis:
        try:
            async with asyncio.timeout(self.settings.image_timeout):
                return await timings.run(
                    "image", self._work.run(_analyse, data, self.settings.image_limits)
                )
        except ImageWorkBusy:
            raise GateBusy("every image worker is busy; nothing was decided, try again") from None
        except TimeoutError:
            timings.mark_timeout("image")
            return _Analysis(ImageFacts(decoded=False, sha256=sha256_hex(data), error="timeout"))
        except Exception:  # noqa: BLE001 - any failure is evidence (image_unreadable), never a 500
            facts = ImageFacts(decoded=False, sha256=sha256_hex(data), error="unavailable")
            return _Analysis(facts)

    async def _prompt(self, prompt: str, scores: dict[str, float]) -> PromptFacts:
        try:
            intent = self._prompt_rules.check(prompt)
        except Exception:  # noqa: BLE001 - recorded as evidence_unavailable
            return PromptFacts(scores=scores, error="unavailable")
        return PromptFacts(matched=intent.matched, matches=intent.matches, scores=scores)

    async def _provenance(
        self, data: bytes, decoded: DecodedImage, timings: _Timings
    ) -> ProvenanceFacts:
        try:
            async with asyncio.timeout(self.settings.provenance_timeout):
                report, key = await self._work.run(_verify_and_read, data, decoded, self._trust)
                facts = ProvenanceFacts.from_report(report)
                if key is None:
                    return facts
                return msgspec.structs.replace(facts, watermark=await self._watermark(key))
        except TimeoutError:
            timings.mark_timeout("provenance")
            return ProvenanceFacts(error="timeout")
        except Exception:  # noqa: BLE001 - recorded as evidence_unavailable
            return ProvenanceFacts(error="unavailable")

    async def _watermark(self, key: str) -> WatermarkFacts:
        """The signed output our watermark key names (a stripped copy of one of ours)."""
        async with db.acquire(self._pool, wait=self.settings.acquire_timeout) as conn:
            row = await provenance_repository.output_by_watermark(conn, key)
        if row is None:
            return WatermarkFacts(key=key)
        return WatermarkFacts(key=key, output_id=row.output_id, generation_id=row.generation_id)

    async def _classify(self, data: bytes, decoded: DecodedImage) -> tuple[ClassifierResult, ...]:
        if not self._classifiers:
            return ()
        return await run_classifiers(
            self._classifiers,
            ImageInput(data=data, decoded=decoded),
            timeout=self.settings.classifier_timeout,
        )

    async def _hashes(self, signals: ImageSignals, tenant: str, timings: _Timings) -> HashFacts:
        try:
            async with asyncio.timeout(self.settings.hashes_timeout):
                async with db.acquire(self._pool, wait=self.settings.acquire_timeout) as conn:
                    index = await self.hash_lists.index(conn)
                # A scan of a million entries takes milliseconds: off the event loop.
                hits = await asyncio.to_thread(
                    image_hits, index, signals, self.policy.hashes, tenant=tenant
                )
                entries = await self.hash_lists.entries(hits)
                return hash_facts(index, signals, hits, entries, tenant=tenant)
        except TimeoutError:
            timings.mark_timeout("hashes")
            return HashFacts(error="timeout")
        except Exception:  # noqa: BLE001 - recorded as evidence_unavailable
            return HashFacts(error="unavailable")

    async def _sources(
        self,
        actor: Client,
        assets: Sequence[SourceAssetIn],
        *,
        generator: str,
        stage: Stage,
        scores: dict[str, float],
        prompt_rules: tuple[str, ...],
        declared_uses: tuple[str, ...],
    ) -> tuple[SourceEvidence, ...]:
        if not assets:
            return ()
        declared = tuple(
            SourceAsset(
                type=asset.type,
                asset_id=asset.asset_id,
                sha256=asset.sha256.lower() if asset.sha256 else None,
                consent_token=asset.consent_token,
            )
            for asset in assets
        )
        uses_by_type = {
            asset.type: required_uses(
                self.policy,
                stage=stage,
                source_type=asset.type,
                scores=scores,
                prompt_rules=prompt_rules,
                declared_uses=declared_uses,
            )
            for asset in declared
        }
        source = RegistryConsentEvidence(
            self._consent,
            pool=self._pool,
            acquire_timeout=self.settings.acquire_timeout,
            actor=actor,
        )
        return await check_sources(
            source,
            declared,
            generator_client_id=generator,
            uses_by_type=uses_by_type,
            timeout=self.settings.consent_timeout,
        )

    # The pre-generation check.

    async def prompt_check(self, *, actor: Client, request: PromptCheckRequest) -> GateOutcome:
        """Decide on a prompt and its sources before any image exists.

        The caller is the generator, so every consent token must name the caller as its
        audience. Raises use_unknown, uses_duplicate, generation_conflict or
        decision_not_recorded.
        """
        received_at = datetime.now(UTC)
        declared_uses = require_known_uses(request.intended_uses)
        prompt_scores = _prompt_scores(request.prompt_scores)
        request_hash = request_sha256(request)
        existing = await self._existing(
            actor, request.generation_id, "prompt", lambda row: row.request_sha256 == request_hash
        )
        if existing is not None:
            return existing
        restrictions = await self._restrictions([actor.client_id], request.model, "prompt_check")
        timings = _Timings()
        prompt = await timings.run("prompt", self._prompt(request.prompt, prompt_scores))
        sources = await timings.run(
            "consent",
            self._sources(
                actor,
                request.source_assets,
                generator=actor.client_id,
                stage="prompt",
                scores={},
                prompt_rules=prompt.matched,
                declared_uses=declared_uses,
            ),
        )
        evidence = Evidence(
            stage="prompt",
            received_at=received_at,
            prompt=prompt,
            sources=sources,
            declared_uses=declared_uses,
            timings=tuple(timings.steps),
            restrictions=restrictions,
        )
        return await self._record(
            actor,
            generation_id=request.generation_id,
            evidence=evidence,
            request=request_record(request),
            request_hash=request_hash,
            image_sha256=None,
            model=request.model,
        )

    # Recording.

    async def _existing(
        self,
        actor: Client,
        generation_id: str,
        stage: Stage,
        same: Callable[[repository.DecisionRow], bool],
    ) -> GateOutcome | None:
        async with db.acquire(self._pool, wait=self.settings.acquire_timeout) as conn:
            row = await repository.find_decision(conn, actor.client_id, generation_id, stage)
        if row is None:
            return None
        if not same(row):
            what = "image" if stage == "publish" else "request"
            raise GenerationConflict(
                f"this generation_id was already decided ({row.decision_id}) for another {what}",
                decision_id=row.decision_id,
            )
        return GateOutcome(response=_stored_response(row), replayed=True)

    async def _record(
        self,
        actor: Client,
        *,
        generation_id: str,
        evidence: Evidence,
        request: dict[str, Any],
        request_hash: str,
        image_sha256: str | None,
        image: bytes | None = None,
        model: str | None = None,
    ) -> GateOutcome:
        decision = decide(evidence, self.policy)
        new = repository.NewDecision(
            decision_id="dec_" + secrets.token_urlsafe(16),
            generation_id=generation_id,
            stage=evidence.stage,
            client_id=actor.client_id,
            tenant=actor.tenant,
            image_sha256=image_sha256,
            image_phash=evidence.image.phash if evidence.image is not None else None,
            request_sha256=request_hash,
            status=decision.status,
            reasons=decision.reasons,
            scores=decision.scores,
            evidence=evidence,
            request=request,
            policy_version=decision.policy_version,
            policy_label=decision.policy_label,
            consents=_consents(evidence.sources),
            legal_report=decision.legal_report,
            notes=decision.notes,
            user_ref=self._user_ref(actor, request),
            model=model,
        )
        try:
            inserted, ticket = await self._store(actor, new, decision, image)
        except _DB_ERRORS:
            raise DecisionNotRecorded(
                "the decision could not be recorded; nothing was decided, try again"
            ) from None
        if not inserted:
            # Another request for this generation committed first: answer with its decision.
            same = (
                (lambda row: row.image_sha256 == image_sha256)
                if image_sha256 is not None
                else (lambda row: row.request_sha256 == request_hash)
            )
            existing = await self._existing(actor, generation_id, evidence.stage, same)
            if existing is None:
                raise DecisionNotRecorded("the decision could not be recorded; try again")
            return existing
        return GateOutcome(
            response=GateResponse(
                generation_id=generation_id,
                decision_id=new.decision_id,
                safety_status=decision.status,
                scores=decision.scores,
                reasons=list(decision.reasons),
                review_ticket=ticket,
                policy_version=decision.policy_version,
            ),
            replayed=False,
        )

    def _user_ref(self, actor: Client, request: dict[str, Any]) -> str | None:
        """The end user's blind index, for the recidivism KPIs (None when not given)."""
        user_id = request.get("user_id")
        return self._consent.end_user_ref(actor.tenant, user_id) if user_id else None

    async def _store(
        self,
        actor: Client,
        new: repository.NewDecision,
        decision: Decision,
        image: bytes | None,
    ) -> tuple[bool, str | None]:
        """Whether the decision was stored (False: the generation already has one), and its
        review ticket."""
        async with (
            db.acquire(self._pool, wait=self.settings.acquire_timeout) as conn,
            unit_of_work(conn, actor=actor.client_id, tenant=actor.tenant) as uow,
        ):
            # No decision without its record: both commit in this unit of work or neither does.
            sealed, data_key_id = await self.vault.seal(
                conn, new.decision_id, new.request, new.evidence
            )
            if not await repository.insert_decision(
                conn, new, sealed=sealed, data_key_id=data_key_id
            ):
                # Another request for this generation won: the key sealed nothing stored.
                await self._consent.data_keys.forget(conn, data_key_id)
                return False, None
            ticket = None
            if decision.review is not None:
                ticket = await repository.open_review_ticket(
                    conn,
                    decision_id=new.decision_id,
                    kind="review",
                    tier=decision.review.tier,
                    rank=decision.review.rank,
                    deadline=decision.review.deadline,
                )
                media_type = new.evidence.image.media_type if new.evidence.image else None
                if self._keep_review_image is not None and image is not None and media_type:
                    await self._keep_review_image(conn, new.decision_id, media_type, image)
            uow.record(
                "moderation.decided",
                subject_type="moderation_decision",
                subject_id=new.decision_id,
                payload={
                    "generation_id": new.generation_id,
                    "stage": new.stage,
                    "status": new.status,
                    "reasons": list(new.reasons),
                    "policy_version": new.policy_version,
                    # No image hash: when the image is a person's photo, its hash would stay
                    # in the append-only log after the consent is erased (issue 18).
                    "consent_jtis": [c.jti for c in new.consents],
                    "review_ticket": ticket,
                    # Rule ids only: the fragment a rule matched may hold a name within its
                    # gap ("remove jane's clothes"), and this log outlives an erasure; the
                    # fragments are in the sealed evidence.
                    "prompt_rules": list(new.evidence.prompt.matched)
                    if new.evidence.prompt is not None
                    else [],
                },
            )
            return True, ticket


def _prompt_scores(raw: dict[str, Any] | None) -> dict[str, float]:
    """The request's prompt-intent scores, or PromptScoreInvalid naming the first bad one."""
    if raw is None:
        return {}
    scores, invalid = validate_scores(raw)
    if invalid:
        bad = invalid[0]
        raise PromptScoreInvalid(
            f"prompt_scores.{bad.category}: {bad.raw} is not a number between 0 and 1"
            if bad.raw != "not a category name"
            else f"prompt_scores: {bad.category!r} is not a category name (a-z, 0-9, _)"
        )
    return scores


def _has_tokens(assets: Sequence[SourceAssetIn]) -> bool:
    return any(asset.consent_token is not None for asset in assets)


def _consents(sources: Sequence[SourceEvidence]) -> tuple[repository.DecisionConsent, ...]:
    return tuple(
        repository.DecisionConsent(
            position=position,
            asset_id=source.asset_id,
            consent_id=source.check.consent_id,
            jti=source.check.jti,
        )
        for position, source in enumerate(sources)
        if source.check is not None
        and source.check.consent_id is not None
        and source.check.jti is not None
    )


def _stored_response(row: repository.DecisionRow) -> GateResponse:
    return GateResponse(
        generation_id=row.generation_id,
        decision_id=row.decision_id,
        safety_status=row.current_status,
        scores=row.scores,
        reasons=list(row.reasons),
        review_ticket=row.review_ticket,
        policy_version=row.policy_version,
    )


class _Analysis(NamedTuple):
    """What the image worker found: the facts, and for a decoded image its pixels and hashes
    (every flip and rotation of both signals; the evidence keeps all pHash variants, and only
    the first PDQ hash)."""

    facts: ImageFacts
    decoded: DecodedImage | None = None
    signals: ImageSignals | None = None


def _verify_and_read(
    data: bytes, decoded: DecodedImage, trust: TrustSettings
) -> tuple[Report, str | None]:
    """The C2PA report, and when the image carries no manifest, the key of our watermark in
    its pixels (blocking: runs in a bounded image worker; the read never raises)."""
    report = verify(data, decoded.media_type, trust)
    key = watermark.read(decoded.image).key if report.state == "absent" else None
    return report, key


def _analyse(data: bytes, limits: ImageLimits) -> _Analysis:
    """Decode and hash the image (blocking: runs in a bounded image worker)."""
    sha256 = sha256_hex(data)
    try:
        decoded = decode(data, limits, hash_only=True)
    except ImageError as exc:
        return _Analysis(ImageFacts(decoded=False, sha256=sha256, error=exc.code))
    signals = image_signals(decoded.image)
    return _Analysis(image_facts(decoded, sha256=sha256, signals=signals), decoded, signals)
