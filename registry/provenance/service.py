"""Provenance of generated outputs: sign them, record them, and find them again.

The shell opens connections and transactions and appends the audit events these
operations return; everything blocking (Pillow, the C2PA SDK, hashing) runs in
``BoundedWork`` threads with a time bound.

Signing is three steps so that no connection is held during the C2PA work:
``plan_signing`` checks the request and every consent token (signature, expiry, audience and
live status from the database), ``sign`` embeds the manifest and signs the detached
assertion, and ``record`` stores the output in the transaction that appends its audit
event, after share-locking the tokens' rows and reading their status again, so a withdrawal
either commits first (and the output is refused) or waits and then lists the output.
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import msgspec

from registry.core.audit import AuditRecord
from registry.provenance import repository
from registry.provenance.errors import (
    ConsentTokenExpired,
    ConsentTokenRejected,
    DecisionNotAllowed,
    DecisionUnknown,
    GenerationAlreadySigned,
    WatermarkKeyInvalid,
    WatermarkKeyUnknown,
)
from registry.provenance.images import ImageCheck, Upload, inspect, sign_image, verify_image
from registry.provenance.index import PhashIndex
from verifier import (
    ConsentRef,
    DecisionRef,
    GenerationFacts,
    ImageLimits,
    IngredientRef,
    ProvenanceClaims,
    Report,
    TrustSettings,
    sign_assertion,
)
from verifier.imaging import hamming
from verifier.sign import TRAINING_USE
from verifier.tokens import ConsentTokenClaims, Reason
from verifier.watermark import new_key as new_watermark_key
from verifier.watermark import valid_key as valid_watermark_key

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import asyncpg

    from keys import KeyRing
    from keys.c2pa_identity import C2paIdentity
    from registry.core.auth import Client
    from registry.provenance.timestamps import Timestamping
    from registry.provenance.work import BoundedWork

__all__ = [
    "LOOKUP_LIMIT",
    "ConsentStatusView",
    "DecisionSource",
    "Lookup",
    "LookupMatch",
    "OutputRecord",
    "ProvenanceService",
    "ProvenanceSettings",
    "RegistryMatch",
    "SignMetadata",
    "SignPlan",
    "Signed",
    "TokenCheckResult",
    "TokenChecker",
    "Verification",
    "WatermarkFinding",
    "WatermarkOutput",
    "affected_outputs",
]

LOOKUP_LIMIT = 20
_KEY_DRAWS = 3
MAX_CONSENT_TOKENS = 100
_MAX_TOKEN_CHARS = 8192
# No C0 controls or DEL: these strings go into the manifest, the JWS and logs.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
_Token = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_TOKEN_CHARS)]


class SignMetadata(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The ``metadata`` part of ``POST /v1/provenance/sign``."""

    generation_id: _Text
    """The generator's id for this output; signed once per generator client."""
    model: _Text
    """The generator model, named as the manifest's software agent."""
    consent_tokens: Annotated[list[_Token], msgspec.Meta(max_length=MAX_CONSENT_TOKENS)]
    """Consent tokens (issued to the caller) for every reference photo used; may be empty."""
    decision_id: _Text | None = None
    """The publish gate's decision for this output."""
    edited_reference: bool = False
    """A reference photo was edited (composite) rather than the image made from scratch."""


class ProvenanceSettings(msgspec.Struct, kw_only=True, frozen=True):
    """What the provenance domain needs from the service settings, composed by the shell."""

    issuer: str
    image_limits: ImageLimits
    lookup_max_distance: int
    thumbnails: bool = False
    watermark: bool = True
    """Mark signed outputs with the invisible watermark (a ``c2pa.soft-binding``)."""


class TokenCheckResult(Protocol):
    """The outcome of checking one consent token (``registry.consent.TokenVerification``)."""

    @property
    def valid(self) -> bool: ...
    @property
    def reasons(self) -> Sequence[str]: ...
    @property
    def claims(self) -> ConsentTokenClaims | None: ...


class TokenChecker(Protocol):
    """Online consent-token verification: signature, time, audience, live status.

    The consent domain owns the tokens' rows (``issued_tokens``); provenance, its sibling,
    reads their status only through these methods (``registry.consent.ConsentService``,
    injected by the composition root).
    """

    async def verify(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        token: str,
        use: str | None,
        asset_sha256: str | None,
        audience: str | None,
    ) -> TokenCheckResult: ...

    async def token_statuses(
        self, conn: asyncpg.Connection, jtis: Sequence[str]
    ) -> Mapping[str, int]:
        """The status now (0 valid, 1 revoked, 2 suspended) of each of these tokens that
        was issued here; others are absent."""
        ...

    async def lock_token_statuses(
        self, conn: asyncpg.Connection, jtis: Sequence[str]
    ) -> Mapping[str, int]:
        """Like ``token_statuses``, share-locked until the transaction ends, so a revocation
        cannot commit between this read and the output's insert."""
        ...


class DecisionSource(Protocol):
    """The publish gate's recorded decisions, so a manifest states only what was decided."""

    async def decision_ref(
        self, conn: asyncpg.Connection, decision_id: str, *, tenant: str
    ) -> DecisionRef | None: ...


class ConsentStatusView(msgspec.Struct, kw_only=True, frozen=True):
    """A consent token an output used, and its status now (from the database)."""

    jti: str
    status_list_uri: str
    status_idx: int
    status: repository.IssuedTokenStatus


class OutputRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One of our signed outputs, as shown to anyone (no tenant, client or consent ids)."""

    output_id: str
    generation_id: str
    model: str
    media_type: str
    width: int
    height: int
    sha256: str
    phash: str
    decision_id: str | None
    signed_at: datetime
    consents: tuple[ConsentStatusView, ...]
    assertion: str
    """The detached provenance assertion (compact JWS, ``typ: provenance+jwt``)."""


class RegistryMatch(msgspec.Struct, kw_only=True, frozen=True):
    match: Literal["sha256", "perceptual", "watermark"]
    """``sha256``: these exact bytes; ``perceptual``: the pixels are close (metadata stripped,
    re-encoded or resized); ``watermark``: no output is that close, but the pixels carry an
    output's watermark key (found by watermark)."""
    distance: int
    """Bits of the 64-bit pHash that differ (0 for an exact match)."""
    output: OutputRecord


class WatermarkOutput(msgspec.Struct, kw_only=True, frozen=True):
    key: str
    """The watermark key asked about."""
    output: OutputRecord
    """The signed output whose pixels carry it."""


class WatermarkFinding(msgspec.Struct, kw_only=True, frozen=True):
    """Our invisible watermark, read from the pixels (its 24-bit check held)."""

    key: str
    """The 40-bit lookup key it carries (10 hex characters)."""
    output_id: str | None
    """The signed output that carries this key; None when no output of ours does."""
    found_by: Literal["watermark"] = "watermark"


class Verification(Report, kw_only=True, frozen=True):
    """The C2PA report, plus the registry's record when the image is one of our outputs.

    The report stands whether or not the pixels decode (a broken manifest is ``invalid`` with
    C2PA's codes either way); ``image`` says whether they did.
    """

    image: ImageCheck
    registry: RegistryMatch | None = None
    watermark: WatermarkFinding | None = None
    """Set when the pixels carry our watermark: the output it names, whether or not
    ``registry`` already found that output by its bytes or pHash."""


class LookupMatch(msgspec.Struct, kw_only=True, frozen=True):
    distance: int
    """Bits of the 64-bit pHash that differ."""
    output: OutputRecord
    found_by: Literal["perceptual", "watermark"] = "perceptual"
    """``watermark``: the image carries this output's watermark key (found by watermark,
    whatever its pHash distance); ``perceptual``: found by its pHash alone."""


class Lookup(msgspec.Struct, kw_only=True, frozen=True):
    sha256: str
    phash: str
    max_distance: int
    matches: tuple[LookupMatch, ...]
    """Nearest first, at most ``LOOKUP_LIMIT``; an output found by its watermark alone (its
    pHash further than ``max_distance``) comes before them."""
    watermark_key: str | None = None
    """The key our watermark in the image carries (a valid read), whether or not it names
    one of our outputs; None when the image carries none."""


class SignPlan(msgspec.Struct, kw_only=True, frozen=True):
    """A checked signing request: what the manifest and the record will say."""

    facts: GenerationFacts
    consents: tuple[repository.ConsentUse, ...]
    watermark_key: str | None = None
    """A fresh key no output carries yet, for the watermark (None: no watermark)."""


class Signed(msgspec.Struct, kw_only=True, frozen=True):
    output_id: str
    media_type: str
    data: bytes
    assertion: str
    sha256: str
    phash: str
    width: int
    height: int
    watermark_key: str | None = None
    """The key the signed pixels carry; None when the image could not carry the mark."""

    def __repr__(self) -> str:
        return f"Signed({self.output_id!r}, {len(self.data)} bytes, sha256={self.sha256})"


class ProvenanceService:
    """Provenance operations, bound to this process's keys, trust, workers and hash index."""

    def __init__(
        self,
        *,
        settings: ProvenanceSettings,
        trust: TrustSettings,
        identity: C2paIdentity,
        keyring: KeyRing,
        tokens: TokenChecker,
        work: BoundedWork,
        decisions: DecisionSource | None = None,
        timestamping: Timestamping | None = None,
    ) -> None:
        self.settings = settings
        self.trust = trust
        self.work = work
        self.index = PhashIndex()
        self._identity = identity
        self._keyring = keyring
        self._tokens = tokens
        self._decisions = decisions
        self._timestamping = timestamping

    def __repr__(self) -> str:
        return f"ProvenanceService(issuer={self.settings.issuer!r})"

    def close(self) -> None:
        self.work.close()

    # Verification and lookup (public).

    async def verify(self, conn: asyncpg.Connection, upload: Upload) -> Verification:
        """The C2PA report of the image and, when it is one of our outputs, its record."""
        verified = await self.work.run(verify_image, upload, self.settings.image_limits, self.trust)
        marked = await self.output_by_watermark(conn, verified.watermark_key)
        finding = None
        if verified.watermark_key is not None:
            finding = WatermarkFinding(
                key=verified.watermark_key,
                output_id=marked.output_id if marked is not None else None,
            )
        return Verification(
            **msgspec.structs.asdict(verified.report),
            image=verified.image,
            registry=await self._registry_match(conn, verified.sha256, verified.phash, marked),
            watermark=finding,
        )

    async def lookup(self, conn: asyncpg.Connection, upload: Upload) -> Lookup:
        """Our outputs whose pHash is within the threshold of the image's, nearest first, and
        the one our watermark in its pixels names (``found_by``)."""
        inspected = await self.work.run(
            functools.partial(inspect, read_watermark=True), upload, self.settings.image_limits
        )
        marked = await self.output_by_watermark(conn, inspected.watermark_key)
        await self.index.refresh(conn)
        hits = self.index.nearest(
            int(inspected.phash, 16),
            max_distance=self.settings.lookup_max_distance,
            limit=LOOKUP_LIMIT,
        )
        rows = await repository.outputs_by_ids(conn, [row_id for row_id, _ in hits])
        found = list(rows.values())
        if marked is not None and marked.id not in rows:
            found.append(marked)
        records = await self._records(conn, found)
        matches = tuple(
            LookupMatch(
                distance=distance,
                output=records[rows[row_id].output_id],
                found_by="watermark"
                if marked is not None and row_id == marked.id
                else "perceptual",
            )
            for row_id, distance in hits
            if row_id in rows
        )
        if marked is not None and marked.id not in rows:
            # Found by its watermark alone (its pHash is further than max_distance): first.
            first = LookupMatch(
                distance=hamming(inspected.phash, marked.phash),
                output=records[marked.output_id],
                found_by="watermark",
            )
            matches = (first, *matches[: LOOKUP_LIMIT - 1])
        return Lookup(
            sha256=inspected.sha256,
            phash=inspected.phash,
            max_distance=self.settings.lookup_max_distance,
            matches=matches,
            watermark_key=inspected.watermark_key,
        )

    async def watermark(self, conn: asyncpg.Connection, key: str) -> WatermarkOutput:
        """The output whose watermark key this is: for a key read offline
        (``python -m verifier watermark``), without sending the image."""
        if not valid_watermark_key(key):
            raise WatermarkKeyInvalid("a watermark key is 10 lower-case hex characters")
        row = await repository.output_by_watermark(conn, key)
        if row is None:
            raise WatermarkKeyUnknown("no output of ours carries this watermark key")
        records = await self._records(conn, [row])
        return WatermarkOutput(key=key, output=records[row.output_id])

    async def output_by_watermark(
        self, conn: asyncpg.Connection, key: str | None
    ) -> repository.OutputRow | None:
        """Our output whose watermark key this is (None for no key, or a key not ours)."""
        if key is None:
            return None
        return await repository.output_by_watermark(conn, key)

    async def _registry_match(
        self,
        conn: asyncpg.Connection,
        sha256: str,
        phash: str | None,
        marked: repository.OutputRow | None = None,
    ) -> RegistryMatch | None:
        """Our output with these bytes, else (when the pixels decoded) the nearest by pHash,
        else the one whose watermark the pixels carry (``marked``)."""
        exact = await repository.outputs_by_sha256(conn, sha256)
        if exact:
            records = await self._records(conn, exact[:1])
            return RegistryMatch(match="sha256", distance=0, output=records[exact[0].output_id])
        if phash is None:
            return None
        found = await self._nearest(conn, phash)
        if found is not None:
            return found
        if marked is None:
            return None
        records = await self._records(conn, [marked])
        return RegistryMatch(
            match="watermark",
            distance=hamming(phash, marked.phash),
            output=records[marked.output_id],
        )

    async def _nearest(self, conn: asyncpg.Connection, phash: str) -> RegistryMatch | None:
        await self.index.refresh(conn)
        hits = self.index.nearest(
            int(phash, 16), max_distance=self.settings.lookup_max_distance, limit=1
        )
        if not hits:
            return None
        row_id, distance = hits[0]
        rows = await repository.outputs_by_ids(conn, [row_id])
        if row_id not in rows:
            return None
        records = await self._records(conn, [rows[row_id]])
        return RegistryMatch(
            match="perceptual", distance=distance, output=records[rows[row_id].output_id]
        )

    async def _records(
        self, conn: asyncpg.Connection, rows: Sequence[repository.OutputRow]
    ) -> dict[str, OutputRecord]:
        consents = await repository.consents_of(conn, [row.output_id for row in rows])
        statuses = await self._tokens.token_statuses(
            conn, [use.jti for uses in consents.values() for use in uses]
        )
        return {
            row.output_id: OutputRecord(
                output_id=row.output_id,
                generation_id=row.generation_id,
                model=row.model,
                media_type=row.media_type,
                width=row.width,
                height=row.height,
                sha256=row.sha256,
                phash=row.phash,
                decision_id=row.decision_id,
                signed_at=row.created_at,
                consents=tuple(
                    ConsentStatusView(
                        jti=use.jti,
                        status_list_uri=use.status_list_uri,
                        status_idx=use.status_idx,
                        status=repository.status_name(statuses.get(use.jti)),
                    )
                    for use in consents[row.output_id]
                ),
                assertion=row.assertion,
            )
            for row in rows
        }

    # Signing (generators).

    async def plan_signing(
        self, conn: asyncpg.Connection, *, actor: Client, metadata: SignMetadata
    ) -> SignPlan:
        """Check the request before any image work.

        Raises generation_already_signed, token_expired (every failing token only expired),
        consent_token_invalid, decision_unknown or decision_not_allowed.
        """
        if await repository.generation_signed(conn, actor.client_id, metadata.generation_id):
            raise GenerationAlreadySigned(
                "this client already signed an output for this generation_id"
            )
        consents, ingredients, training = await self._check_tokens(
            conn, actor, metadata.consent_tokens
        )
        decision = None
        if metadata.decision_id is not None:
            decision = await self._decision(conn, metadata.decision_id, actor.tenant)
        facts = GenerationFacts(
            generation_id=metadata.generation_id,
            model=metadata.model,
            edited_reference=metadata.edited_reference,
            ingredients=ingredients,
            consent_refs=tuple(
                ConsentRef(
                    jti=use.jti, status_list_uri=use.status_list_uri, status_idx=use.status_idx
                )
                for use in consents
            ),
            decision=decision,
            training_granted=training,
        )
        return SignPlan(
            facts=facts, consents=consents, watermark_key=await self._fresh_watermark_key(conn)
        )

    async def _fresh_watermark_key(self, conn: asyncpg.Connection) -> str | None:
        """A random key no output carries (40 bits: a draw is taken with probability N/2^40,
        so a second draw is rare and a third all but never needed)."""
        if not self.settings.watermark:
            return None
        for _ in range(_KEY_DRAWS):
            key = new_watermark_key()
            if not await repository.watermark_key_taken(conn, key):
                return key
        return None

    async def sign(self, upload: Upload, plan: SignPlan) -> Signed:
        """Embed a signed C2PA manifest and sign the detached assertion; records nothing.

        With a timestamp authority, raises timestamp_unavailable (503) unless the signature
        carries its trusted timestamp.
        """
        stamping = self._timestamping
        if stamping is not None:
            await stamping.check()
        signed = await self.work.run(
            functools.partial(
                sign_image,
                thumbnail=self.settings.thumbnails,
                timestamp=stamping.authority if stamping is not None else None,
                watermark_key=plan.watermark_key,
            ),
            upload,
            self.settings.image_limits,
            plan.facts,
            self._identity,
        )
        output_id = "out_" + secrets.token_urlsafe(16)
        claims = ProvenanceClaims.build(
            iss=self.settings.issuer,
            jti=output_id,
            sha256=signed.inspected.sha256,
            phash=signed.inspected.phash,
            generation_id=plan.facts.generation_id,
            consents=plan.facts.consent_refs,
            decision=plan.facts.decision,
        )
        return Signed(
            output_id=output_id,
            media_type=signed.inspected.media_type,
            data=signed.data,
            assertion=sign_assertion(claims, self._keyring.signer()),
            sha256=signed.inspected.sha256,
            phash=signed.inspected.phash,
            width=signed.inspected.width,
            height=signed.inspected.height,
            watermark_key=signed.inspected.watermark_key,
        )

    async def record(
        self, conn: asyncpg.Connection, *, actor: Client, plan: SignPlan, signed: Signed
    ) -> AuditRecord:
        """Store the output; call in the transaction that appends the returned event.

        Raises consent_token_invalid when a token was revoked since ``plan_signing``, and
        generation_already_signed when another request for the generation won the race.
        """
        jtis = [use.jti for use in plan.consents]
        statuses = await self._tokens.lock_token_statuses(conn, jtis)
        revoked = [
            {
                "index": position,
                "reasons": [Reason.REVOKED if statuses.get(jti) == 1 else Reason.SUSPENDED],
            }
            for position, jti in enumerate(jtis)
            if statuses.get(jti, 0) != 0
        ]
        if revoked:
            raise ConsentTokenRejected(
                "a consent token was revoked while the output was being signed", tokens=revoked
            )
        decision = plan.facts.decision
        row_id = await repository.insert_output(
            conn,
            repository.NewOutput(
                output_id=signed.output_id,
                tenant=actor.tenant,
                client_id=actor.client_id,
                generation_id=plan.facts.generation_id,
                model=plan.facts.model,
                media_type=signed.media_type,
                width=signed.width,
                height=signed.height,
                sha256=signed.sha256,
                phash=signed.phash,
                decision_id=decision.id if decision is not None else None,
                assertion=signed.assertion,
                consents=plan.consents,
                watermark_key=signed.watermark_key,
            ),
        )
        if row_id is None:
            raise GenerationAlreadySigned(
                "this client already signed an output for this generation_id"
            )
        return AuditRecord(
            action="provenance.output_signed",
            subject_type="signed_output",
            subject_id=signed.output_id,
            payload={
                "generation_id": plan.facts.generation_id,
                "sha256": signed.sha256,
                # No pHash: an output made from a person's photo hashes close to the photo,
                # and the append-only log keeps it after the consent is erased (issue 18).
                # The signed_outputs row keeps it, for lookups of stripped copies.
                "consent_jtis": jtis,
                "decision_id": decision.id if decision is not None else None,
            },
        )

    async def _check_tokens(
        self, conn: asyncpg.Connection, actor: Client, tokens: Sequence[str]
    ) -> tuple[tuple[repository.ConsentUse, ...], tuple[IngredientRef, ...], bool]:
        """The consents and reference assets of the tokens, and whether AI training is
        granted: there is a token, and every one carries ``ai.training`` among its uses (a
        token carries only uses its consent permits)."""
        failures: list[dict[str, Any]] = []
        uses: list[repository.ConsentUse] = []
        ingredients: dict[str, IngredientRef] = {}
        seen: set[str] = set()
        training = bool(tokens)
        for position, token in enumerate(tokens):
            # The audience is the caller: a token issued to another generator never signs.
            check = await self._tokens.verify(
                conn, actor=actor, token=token, use=None, asset_sha256=None, audience=None
            )
            use = _consent_use(check.claims) if check.valid else None
            if use is None:
                failures.append({"index": position, "reasons": [str(r) for r in check.reasons]})
                continue
            if use.jti in seen:
                failures.append({"index": position, "reasons": ["duplicate"]})
                continue
            seen.add(use.jti)
            uses.append(use)
            training = training and TRAINING_USE in _token_uses(check.claims)
            for ingredient in _ingredients(check.claims):
                ingredients.setdefault(ingredient.instance_id, ingredient)
        if failures:
            detail = f"{len(failures)} of {len(tokens)} consent token(s) cannot be used"
            # Expiry alone has a remedy of its own (fresh tokens); any other failure does not.
            if all(failure["reasons"] == [Reason.EXPIRED] for failure in failures):
                raise ConsentTokenExpired(detail + ": expired", tokens=failures)
            raise ConsentTokenRejected(detail, tokens=failures)
        return tuple(uses), tuple(ingredients.values()), training

    async def _decision(
        self, conn: asyncpg.Connection, decision_id: str, tenant: str
    ) -> DecisionRef:
        found = None
        if self._decisions is not None:
            found = await self._decisions.decision_ref(conn, decision_id, tenant=tenant)
        if found is None:
            raise DecisionUnknown("no gate decision with this id for this tenant")
        # The pipeline signs only what the gate allowed: a manifest never vouches for an
        # output under review or blocked.
        if found.outcome != "allowed":
            raise DecisionNotAllowed(f"the gate decision is {found.outcome[:32]!r}, not 'allowed'")
        return found


def _consent_use(claims: ConsentTokenClaims | None) -> repository.ConsentUse | None:
    if claims is None:
        return None
    return repository.ConsentUse(
        jti=claims.jti,
        consent_id=claims.cid,
        status_list_uri=claims.status.status_list.uri,
        status_idx=claims.status.status_list.idx,
        status="valid",
    )


def _token_uses(claims: ConsentTokenClaims | None) -> list[str]:
    return claims.uses if claims is not None else []


def _ingredients(claims: ConsentTokenClaims | None) -> list[IngredientRef]:
    """The token's assets as ingredients: by consent and status list, never by hash (a
    manifest is public and can never be erased)."""
    if claims is None:
        return []
    return [
        IngredientRef(
            title="reference",
            consent_id=claims.cid,
            asset_id=asset.id,
            status_list_uri=claims.status.status_list.uri,
        )
        for asset in claims.assets
    ]


async def affected_outputs(conn: asyncpg.Connection, consent_id: str) -> list[dict[str, Any]]:
    """The outputs signed with any token of ``consent_id``, for a withdrawal's takedown list."""
    rows = await repository.outputs_for_consent(conn, consent_id)
    return [
        {
            "output_id": row.output_id,
            "generation_id": row.generation_id,
            "client_id": row.client_id,
            "sha256": row.sha256,
            "phash": row.phash,
            "signed_at": row.created_at.astimezone(UTC).isoformat(),
        }
        for row in rows
    ]
