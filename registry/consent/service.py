"""Operations of the consent registry: templates, signers, records, grants, tokens, withdrawal.

Each operation takes the caller's connection (inside the caller's transaction) and returns a
value saying what changed, including the audit events to append (``events``). The shell opens
the transaction, calls the operation, appends those events and commits, so a change and its
audit record are committed together or not at all. Operations raise consent errors with
stable codes and never know about HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from keys.errors import KeysError
from keys.jwk import is_valid_kid, load_public_jwk, public_jwk, thumbprint
from keys.jws import parse_compact
from registry.audit import AuditRecord
from registry.auth import Role, get_client
from registry.consent import repository, status
from registry.consent.crypto import FieldCipher, SubjectIndex
from registry.consent.errors import (
    AssetIdsInvalidError,
    AssetNotInFormError,
    AssetUnknownError,
    AssetUploadDuplicateError,
    AudienceNotAllowedError,
    ConsentNotActiveError,
    ConsentNotFoundError,
    DataUnavailableError,
    FormReplayedError,
    GrantClientInvalidError,
    GrantMissingError,
    IdempotencyConflictError,
    SignerExistsError,
    SignerKeyInvalidError,
    StatusListNotFoundError,
    SubjectRefInvalidError,
    TemplateExistsError,
    TemplateNotFoundError,
    TemplateTextInvalidError,
    TtlInvalidError,
    UsesEmptyError,
    WithdrawalRequiredError,
)
from registry.consent.forms import EnrolledSigner, SignerRole, TemplateRef, verify_form
from registry.consent.receipts import RECEIPT_TYP, ReceiptAsset, receipt_claims
from registry.consent.tokens import (
    CONSENT_TOKEN_TYP,
    TokenAsset,
    TokenVerification,
    build_claims,
    verify_token,
)
from registry.consent.uses import VERSION as USES_VERSION
from registry.consent.uses import require_known_uses, require_permitted_uses
from registry.consent.withdrawal import verify_withdrawal
from verifier import imaging

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import asyncpg
    from cryptography import x509

    from keys import KeyRing, MasterKey
    from registry.auth import Client
    from registry.consent.crypto import DataKey

__all__ = [
    "MAX_LISTED",
    "Affected",
    "AssetView",
    "ConsentService",
    "ConsentSettings",
    "ConsentView",
    "Erased",
    "Granted",
    "IssuedToken",
    "PreparedAsset",
    "ProducedUnder",
    "SignerEnrolled",
    "Submitted",
    "SubmittedAsset",
    "TemplateRegistered",
    "TemplateView",
    "Upload",
    "WithdrawalListers",
    "Withdrawn",
    "prepare_uploads",
]

MAX_LISTED: Final = 100
_TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAX_TITLE: Final = 200
_MAX_TEMPLATE_TEXT: Final = 100_000
_MAX_REF: Final = 256
_MAX_REASON: Final = 1000


# Settings and values.


@dataclass(frozen=True, kw_only=True)
class ConsentSettings:
    """What the consent registry needs from the service settings, composed by the shell."""

    issuer: str
    token_default_ttl: int
    token_max_ttl: int
    max_validity: timedelta
    status_list_size: int
    status_list_ttl: int
    image_limits: imaging.ImageLimits
    token_leeway_seconds: int
    """REGISTRY_TOKEN_LEEWAY: clock skew allowed on a token's ``exp``, ``nbf`` and ``iat``."""
    signer_anchors: tuple[x509.Certificate, ...] = ()


class TemplateView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    title: str
    text: str
    sha256: str
    uses: list[str]
    created_at: datetime


class TemplateRegistered(msgspec.Struct, kw_only=True, frozen=True):
    template: TemplateView
    events: tuple[AuditRecord, ...]


class SignerEnrolled(msgspec.Struct, kw_only=True, frozen=True):
    signer_id: str
    kid: str
    role: str
    events: tuple[AuditRecord, ...]


class Upload(msgspec.Struct, kw_only=True, frozen=True):
    """An uploaded reference photo as received: its bytes and the media type it was sent as."""

    data: bytes
    media_type: str | None = None


class PreparedAsset(msgspec.Struct, kw_only=True, frozen=True):
    """An uploaded photo, decoded safely and hashed; the bytes themselves are not kept."""

    sha256: str
    phash: str
    dhash: str
    media_type: str
    width: int
    height: int


class SubmittedAsset(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    sha256: str | None
    phash: str | None


class Submitted(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    assets: list[SubmittedAsset]
    receipt: str | None
    replayed: bool
    events: tuple[AuditRecord, ...]


class AssetView(msgspec.Struct, kw_only=True, frozen=True):
    asset_id: str
    uploaded: bool
    sha256: str | None = None
    phash: str | None = None
    dhash: str | None = None
    label: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None


class SignerView(msgspec.Struct, kw_only=True, frozen=True):
    role: str
    assurance: str
    signer_id: str | None = None
    key_thumbprint: str | None = None


class TemplateRefView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    sha256: str


ConsentStatus = Literal["active", "pending", "expired", "withdrawn", "erased"]


class ConsentView(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    tenant: str
    status: ConsentStatus
    template: TemplateRefView
    subject_ref: str | None
    signer: SignerView
    assets: list[AssetView]
    permitted_uses: list[str]
    prohibited_uses: list[str]
    uses_version: int
    valid_from: datetime
    valid_until: datetime
    jurisdiction: str
    signed_at: datetime
    created_at: datetime
    withdrawn_at: datetime | None
    erased_at: datetime | None
    grants: list[str]
    receipt: str | None


class Granted(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    client_id: str
    created: bool
    events: tuple[AuditRecord, ...]


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    jti: str
    expires_at: datetime
    events: tuple[AuditRecord, ...]


class Affected(msgspec.Struct, kw_only=True, frozen=True):
    """What was produced with a consent's tokens, so a publisher can take it down."""

    tokens: list[str]
    outputs: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


class Withdrawn(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    withdrawn_at: datetime
    withdrawn_by: str
    revoked_tokens: list[str]
    affected: Affected
    events: tuple[AuditRecord, ...]


class Erased(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    erased_at: datetime
    withdrawal: Withdrawn | None
    signer_erased: bool
    events: tuple[AuditRecord, ...]


class _Personal(msgspec.Struct, kw_only=True, frozen=True):
    """The sealed part of a consent record."""

    subject_ref: str
    form: str
    signer_jwk: dict[str, str]
    signer_thumbprint: str
    receipt: str


class _AssetData(msgspec.Struct, kw_only=True, frozen=True):
    """The sealed part of an asset."""

    sha256: str
    phash: str | None = None
    dhash: str | None = None
    label: str | None = None


class _SignerData(msgspec.Struct, kw_only=True, frozen=True):
    jwk: dict[str, str]
    subject_ref: str


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(16)


# Work done before the transaction: decoding images costs milliseconds of CPU each.


async def prepare_uploads(
    uploads: Sequence[Upload], limits: imaging.ImageLimits
) -> list[PreparedAsset]:
    """Decode each upload within ``limits`` off the event loop and hash it; keep no pixels."""
    return [await asyncio.to_thread(_prepare, upload, limits) for upload in uploads]


def _prepare(upload: Upload, limits: imaging.ImageLimits) -> PreparedAsset:
    declared = upload.media_type
    # Generic types (application/octet-stream, say) tell nothing; only a claimed image
    # type is held against the bytes.
    if declared is not None and not declared.lower().startswith("image/"):
        declared = None
    decoded = imaging.decode(upload.data, limits, declared, hash_only=True)
    hashes = imaging.perceptual_hashes(decoded.image)
    return PreparedAsset(
        sha256=imaging.sha256_hex(upload.data),
        phash=hashes.phash,
        dhash=hashes.dhash,
        media_type=decoded.media_type,
        width=decoded.width,
        height=decoded.height,
    )


ProducedUnder = Callable[["asyncpg.Connection", str], Awaitable[list[dict[str, Any]]]]
"""Lists what one part of the service made with a consent's tokens (JSON values)."""


@dataclass(frozen=True, kw_only=True)
class WithdrawalListers:
    """The parts of the service built on consent that report what a withdrawal affects.

    Injected by the composition root, so this domain never imports the features that sit on
    top of it: provenance lists signed outputs, moderation the gate decisions.
    """

    outputs: ProducedUnder | None = None
    decisions: ProducedUnder | None = None


class ConsentService:
    """The consent registry's operations, bound to this process's keys and settings."""

    def __init__(
        self,
        *,
        settings: ConsentSettings,
        keyring: KeyRing,
        cipher: FieldCipher,
        subject_index: SubjectIndex,
        produced_under: WithdrawalListers | None = None,
    ) -> None:
        self.settings = settings
        self._keyring = keyring
        self._cipher = cipher
        self._index = subject_index
        self._produced_under = produced_under or WithdrawalListers()
        self.status_lists = status.StatusListCache(
            issuer=settings.issuer, ttl_seconds=settings.status_list_ttl
        )

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        *,
        settings: ConsentSettings,
        keyring: KeyRing,
        master_key: MasterKey,
        produced_under: WithdrawalListers | None = None,
    ) -> ConsentService:
        """Load (or create, once for every process) the blind-index key."""
        cipher = FieldCipher(master_key)
        name = SubjectIndex.NAME
        wrapped = await repository.secret(
            conn, name, cipher.wrap_secret(name, SubjectIndex.generate_key())
        )
        index = SubjectIndex(cipher.unwrap_secret(name, wrapped))
        return cls(
            settings=settings,
            keyring=keyring,
            cipher=cipher,
            subject_index=index,
            produced_under=produced_under,
        )

    def __repr__(self) -> str:
        return f"ConsentService(issuer={self.settings.issuer!r})"

    async def affected_by_withdrawal(self, conn: asyncpg.Connection, consent_id: str) -> Affected:
        """Everything produced under the consent's tokens, for takedown."""
        tokens = await repository.tokens_of(conn, consent_id)
        listers = self._produced_under
        return Affected(
            tokens=[t.jti for t in tokens],
            outputs=await listers.outputs(conn, consent_id) if listers.outputs else [],
            decisions=await listers.decisions(conn, consent_id) if listers.decisions else [],
        )

    # Templates.

    async def register_template(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        template_id: str,
        title: str,
        text: str,
        uses: Sequence[str],
    ) -> TemplateRegistered:
        if not _TEMPLATE_ID.fullmatch(template_id):
            raise TemplateTextInvalidError(
                "template id must be 1-128 characters of [A-Za-z0-9_.-], starting alphanumeric"
            )
        if not title.strip() or len(title) > _MAX_TITLE:
            raise TemplateTextInvalidError(f"title must be 1-{_MAX_TITLE} characters")
        if not text.strip() or len(text) > _MAX_TEMPLATE_TEXT:
            raise TemplateTextInvalidError(f"text must be 1-{_MAX_TEMPLATE_TEXT} characters")
        if not uses:
            raise UsesEmptyError("a template offers at least one use")
        offered = require_known_uses(uses)
        digest = _sha256(text)
        row = await repository.insert_template(
            conn,
            template_id=template_id,
            title=title,
            body=text,
            sha256=digest,
            uses=offered,
            created_by=actor.client_id,
        )
        if row is None:
            raise TemplateExistsError(
                "a template with this id exists; register changed text under a new id"
            )
        event = AuditRecord(
            action="consent_template.registered",
            subject_type="consent_template",
            subject_id=template_id,
            payload={"sha256": digest, "uses": list(offered)},
        )
        return TemplateRegistered(template=_template_view(row), events=(event,))

    async def get_template(self, conn: asyncpg.Connection, template_id: str) -> TemplateView:
        row = None
        if _TEMPLATE_ID.fullmatch(template_id):
            row = await repository.get_template(conn, template_id)
        if row is None:
            raise TemplateNotFoundError("no template has this id")
        return _template_view(row)

    # Signers.

    async def enroll_signer(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        jwk: Mapping[str, Any],
        subject_ref: str,
        role: SignerRole,
    ) -> SignerEnrolled:
        _check_ref(subject_ref)
        try:
            key = load_public_jwk(jwk)
            normalized = public_jwk(key)
        except KeysError as exc:
            raise SignerKeyInvalidError(f"signer key: {exc.message}") from None
        kid = thumbprint(normalized)
        signer_id = _new_id("sgn_")
        data_key, wrapped = self._cipher.new_key()
        await repository.insert_data_key(conn, data_key.key_id, wrapped)
        sealed = data_key.seal(_SignerData(jwk=normalized, subject_ref=subject_ref), aad=signer_id)
        inserted = await repository.insert_signer(
            conn,
            signer_id=signer_id,
            tenant=actor.tenant,
            kid=kid,
            role=role,
            sealed=sealed,
            data_key_id=data_key.key_id,
            created_by=actor.client_id,
        )
        if not inserted:
            raise SignerExistsError("this key is already enrolled for this tenant")
        event = AuditRecord(
            action="consent_signer.enrolled",
            subject_type="consent_signer",
            subject_id=signer_id,
            payload={"role": role},
        )
        return SignerEnrolled(signer_id=signer_id, kid=kid, role=role, events=(event,))

    # Submission.

    async def submit(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        form: str,
        uploads: Sequence[PreparedAsset],
        idempotency_key: str | None,
    ) -> Submitted:
        """Verify a signed consent form (and its uploaded photos) and record it."""
        request_sha256 = _request_sha256(form, uploads)
        if idempotency_key is not None:
            await repository.lock_idempotency_key(conn, actor.tenant, idempotency_key)
            earlier = await repository.record_by_idempotency_key(
                conn, actor.tenant, idempotency_key
            )
            if earlier is not None:
                if earlier.request_sha256 != request_sha256:
                    raise IdempotencyConflictError(
                        "this Idempotency-Key was used with a different request"
                    )
                return await self._replay(conn, earlier)
        now = _now()
        signer_row, enrolled, template = await self._prefetch(conn, actor.tenant, form)
        verified = verify_form(
            form,
            resolve_enrolled=lambda kid: enrolled if enrolled and enrolled.kid == kid else None,
            anchors=self.settings.signer_anchors,
            templates=lambda tid: template if template and template.id == tid else None,
            max_validity=self.settings.max_validity,
            now=now,
        )
        signed = verified.form
        uploaded = _match_uploads(uploads, {asset.sha256 for asset in signed.assets})
        form_sha256 = _sha256(form)
        if await repository.form_known(conn, form_sha256):
            raise FormReplayedError("this signed form was submitted before")

        consent_id = _new_id("cns_")
        data_key, wrapped = self._cipher.new_key()
        asset_ids = [_new_id("ast_") for _ in signed.assets]
        receipt = self._keyring.sign_jws(
            receipt_claims(
                issuer=self.settings.issuer,
                receipt_id=_new_id("rcp_"),
                consent_id=consent_id,
                tenant=actor.tenant,
                issued_at=now,
                subject_ref=signed.subject_ref,
                signer_role=signed.signer_role,
                assurance=verified.assurance,
                signer_thumbprint=verified.signer_thumbprint,
                template_id=signed.template.id,
                template_sha256=signed.template.sha256,
                permitted_uses=signed.permitted_uses,
                prohibited_uses=signed.prohibited_uses,
                uses_version=USES_VERSION,
                valid_from=signed.valid_from,
                valid_until=signed.valid_until,
                jurisdiction=signed.jurisdiction,
                signed_at=signed.signed_at,
                form_sha256=form_sha256,
                assets=[
                    ReceiptAsset(asset_id=asset_id, sha256=asset.sha256)
                    for asset_id, asset in zip(asset_ids, signed.assets, strict=True)
                ],
            ),
            typ=RECEIPT_TYP,
        )
        personal = _Personal(
            subject_ref=signed.subject_ref,
            form=form,
            signer_jwk=verified.signer_jwk,
            signer_thumbprint=verified.signer_thumbprint,
            receipt=receipt,
        )
        await repository.insert_data_key(conn, data_key.key_id, wrapped)
        inserted = await repository.insert_record(
            conn,
            consent_id=consent_id,
            tenant=actor.tenant,
            created_by=actor.client_id,
            template_id=signed.template.id,
            template_sha256=signed.template.sha256,
            signer_role=signed.signer_role,
            assurance=verified.assurance,
            signer_id=signer_row.signer_id if verified.enrolled and signer_row else None,
            permitted_uses=signed.permitted_uses,
            prohibited_uses=signed.prohibited_uses,
            uses_version=USES_VERSION,
            valid_from=signed.valid_from,
            valid_until=signed.valid_until,
            jurisdiction=signed.jurisdiction,
            signed_at=signed.signed_at,
            form_sha256=form_sha256,
            subject_pseudonym=_new_id("sub_"),
            subject_index=self._index.of(actor.tenant, signed.subject_ref),
            sealed=data_key.seal(personal, aad=consent_id),
            data_key_id=data_key.key_id,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            created_at=now,
        )
        if not inserted:  # the same form, committed by a concurrent request
            raise FormReplayedError("this signed form was submitted before")
        assets: list[SubmittedAsset] = []
        for position, (asset_id, asset) in enumerate(zip(asset_ids, signed.assets, strict=True)):
            photo = uploaded.get(asset.sha256)
            data = _AssetData(
                sha256=asset.sha256,
                phash=photo.phash if photo else asset.phash,
                dhash=photo.dhash if photo else None,
                label=asset.label,
            )
            await repository.insert_asset(
                conn,
                asset_id=asset_id,
                consent_id=consent_id,
                position=position,
                uploaded=photo is not None,
                media_type=photo.media_type if photo else None,
                width=photo.width if photo else None,
                height=photo.height if photo else None,
                sealed=data_key.seal(data, aad=asset_id),
            )
            assets.append(SubmittedAsset(asset_id=asset_id, sha256=data.sha256, phash=data.phash))
        event = AuditRecord(
            action="consent.submitted",
            subject_type="consent",
            subject_id=consent_id,
            payload={
                "template_id": signed.template.id,
                "template_sha256": signed.template.sha256,
                "form_sha256": form_sha256,
                "assurance": verified.assurance,
                "signer_role": signed.signer_role,
                "asset_ids": asset_ids,
                "uploaded": len(uploaded),
                "permitted_uses": list(signed.permitted_uses),
                "prohibited_uses": list(signed.prohibited_uses),
                "valid_until": signed.valid_until.isoformat(),
            },
        )
        return Submitted(
            consent_id=consent_id,
            status="active",
            assets=assets,
            receipt=receipt,
            replayed=False,
            events=(event,),
        )

    async def _prefetch(
        self, conn: asyncpg.Connection, tenant: str, form: str
    ) -> tuple[repository.SignerRow | None, EnrolledSigner | None, TemplateRef | None]:
        """The enrolled key and template the form names, read before its signature is checked.

        Only lookups: the form is verified afterwards, against what was found here.
        """
        try:
            header, payload, _, _ = parse_compact(form)
        except KeysError:
            return None, None, None
        signer_row: repository.SignerRow | None = None
        enrolled: EnrolledSigner | None = None
        kid = header.get("kid")
        if isinstance(kid, str) and is_valid_kid(kid):
            signer_row = await repository.signer_by_kid(conn, tenant, kid)
            if signer_row is not None and signer_row.sealed and signer_row.data_key_id:
                key = await self._data_key(conn, signer_row.data_key_id)
                data = msgspec.convert(
                    key.open(signer_row.sealed, aad=signer_row.signer_id), _SignerData
                )
                enrolled = EnrolledSigner(
                    kid=kid,
                    jwk=dict(data.jwk),
                    subject_ref=data.subject_ref,
                    role=_signer_role(signer_row.role),
                )
        template: TemplateRef | None = None
        template_id = _template_id_of(payload)
        if template_id is not None and _TEMPLATE_ID.fullmatch(template_id):
            row = await repository.get_template(conn, template_id)
            if row is not None:
                template = TemplateRef(
                    id=row.template_id, sha256=row.sha256, uses=frozenset(row.uses)
                )
        return signer_row, enrolled, template

    async def _replay(self, conn: asyncpg.Connection, record: repository.RecordRow) -> Submitted:
        personal, assets = await self._open(conn, record)
        return Submitted(
            consent_id=record.consent_id,
            status=_status(record, _now()),
            assets=[
                SubmittedAsset(asset_id=a.asset_id, sha256=a.sha256, phash=a.phash) for a in assets
            ],
            receipt=personal.receipt if personal else None,
            replayed=True,
            events=(),
        )

    # Reading.

    async def get_consent(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str
    ) -> ConsentView:
        record = await repository.get_record(conn, consent_id)
        if record is None or record.tenant != actor.tenant:
            raise ConsentNotFoundError("no consent with this id for this tenant")
        return await self._view(conn, record)

    async def find_consents(
        self, conn: asyncpg.Connection, *, actor: Client, subject_ref: str
    ) -> list[ConsentView]:
        _check_ref(subject_ref)
        records = await repository.records_by_subject(
            conn, actor.tenant, self._index.of(actor.tenant, subject_ref), limit=MAX_LISTED
        )
        return [await self._view(conn, record) for record in records]

    async def _view(self, conn: asyncpg.Connection, record: repository.RecordRow) -> ConsentView:
        personal, assets = await self._open(conn, record)
        return ConsentView(
            consent_id=record.consent_id,
            tenant=record.tenant,
            status=_status(record, _now()),
            template=TemplateRefView(id=record.template_id, sha256=record.template_sha256),
            subject_ref=personal.subject_ref if personal else None,
            signer=SignerView(
                role=record.signer_role,
                assurance=record.assurance,
                signer_id=record.signer_id,
                key_thumbprint=personal.signer_thumbprint if personal else None,
            ),
            assets=assets,
            permitted_uses=record.permitted_uses,
            prohibited_uses=record.prohibited_uses,
            uses_version=record.uses_version,
            valid_from=record.valid_from,
            valid_until=record.valid_until,
            jurisdiction=record.jurisdiction,
            signed_at=record.signed_at,
            created_at=record.created_at,
            withdrawn_at=record.withdrawn_at,
            erased_at=record.erased_at,
            grants=await repository.grantees(conn, record.consent_id),
            receipt=personal.receipt if personal else None,
        )

    async def _open(
        self, conn: asyncpg.Connection, record: repository.RecordRow
    ) -> tuple[_Personal | None, list[AssetView]]:
        """The record's personal data and its assets; None and bare ids once erased."""
        rows = await repository.assets_of(conn, record.consent_id)
        if record.sealed is None or record.data_key_id is None:
            return None, [AssetView(asset_id=r.asset_id, uploaded=r.uploaded) for r in rows]
        key = await self._data_key(conn, record.data_key_id)
        personal = msgspec.convert(key.open(record.sealed, aad=record.consent_id), _Personal)
        assets = []
        for row in rows:
            if row.sealed is None:
                raise DataUnavailableError("an asset of a live record has no sealed data")
            data = msgspec.convert(key.open(row.sealed, aad=row.asset_id), _AssetData)
            assets.append(
                AssetView(
                    asset_id=row.asset_id,
                    uploaded=row.uploaded,
                    sha256=data.sha256,
                    phash=data.phash,
                    dhash=data.dhash,
                    label=data.label,
                    media_type=row.media_type,
                    width=row.width,
                    height=row.height,
                )
            )
        return personal, assets

    async def _data_key(self, conn: asyncpg.Connection, key_id: str) -> DataKey:
        wrapped = await repository.get_data_key(conn, key_id)
        if wrapped is None:
            raise DataUnavailableError("the data key of a live record is missing")
        try:
            return self._cipher.unwrap(key_id, wrapped)
        except KeysError:
            raise DataUnavailableError("a data key does not decrypt") from None

    # Grants and tokens.

    async def grant(
        self, conn: asyncpg.Connection, *, actor: Client, consent_id: str, client_id: str
    ) -> Granted:
        record = await repository.get_record(conn, consent_id, lock="share")
        if record is None or record.tenant != actor.tenant:
            raise ConsentNotFoundError("no consent with this id for this tenant")
        if record.status != "active":
            raise ConsentNotActiveError(f"the consent is {record.status}")
        grantee = await get_client(conn, client_id) if len(client_id) <= _MAX_REF else None
        if grantee is None or not grantee.has(Role.GENERATOR):
            raise GrantClientInvalidError("grants go to an existing, enabled generator client")
        created = await repository.insert_grant(conn, consent_id, client_id, actor.client_id)
        events: tuple[AuditRecord, ...] = ()
        if created:
            events = (
                AuditRecord(
                    action="consent.granted",
                    subject_type="consent",
                    subject_id=consent_id,
                    payload={"client_id": client_id},
                ),
            )
        return Granted(consent_id=consent_id, client_id=client_id, created=created, events=events)

    async def issue_token(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        consent_id: str,
        uses: Sequence[str],
        asset_ids: Sequence[str] | None,
        ttl_seconds: int | None,
    ) -> IssuedToken:
        record = await repository.get_record(conn, consent_id, lock="share")
        if record is None:
            raise ConsentNotFoundError("no consent with this id")
        if not await repository.has_grant(conn, consent_id, actor.client_id):
            raise GrantMissingError("this client holds no grant for the consent")
        now = _now()
        if _status(record, now) != "active":
            raise ConsentNotActiveError(f"the consent is {_status(record, now)}")
        ttl = self.settings.token_default_ttl if ttl_seconds is None else ttl_seconds
        if not 0 < ttl <= self.settings.token_max_ttl:
            raise TtlInvalidError(f"ttl_seconds must be 1 to {self.settings.token_max_ttl}")
        if not uses:
            raise UsesEmptyError("name at least one use")
        checked = require_permitted_uses(uses, record.permitted_uses)
        _, assets = await self._open(conn, record)
        bound = _select_assets(assets, asset_ids)
        token_assets = [
            TokenAsset(id=a.asset_id, sha256=a.sha256 or "", phash=a.phash) for a in bound
        ]
        for _ in range(status.MAX_DRAWS):
            target = await status.open_list(conn, size=self.settings.status_list_size)
            for _ in range(status.MAX_DRAWS):
                idx = status.random_index(target.size)
                claims = build_claims(
                    issuer=self.settings.issuer,
                    subject=record.subject_pseudonym,
                    audience=actor.client_id,
                    consent_id=consent_id,
                    assets=token_assets,
                    uses=checked,
                    status_idx=idx,
                    status_uri=status.list_uri(self.settings.issuer, target.list_id),
                    now=now,
                    ttl=timedelta(seconds=ttl),
                    not_after=record.valid_until,
                )
                expires_at = datetime.fromtimestamp(claims["exp"], UTC)
                if await repository.insert_token(
                    conn,
                    jti=claims["jti"],
                    consent_id=consent_id,
                    audience=actor.client_id,
                    uses=checked,
                    asset_ids=[a.asset_id for a in bound],
                    issued_at=now,
                    expires_at=expires_at,
                    status_list_id=target.list_id,
                    status_idx=idx,
                ):
                    token = self._keyring.sign_jws(claims, typ=CONSENT_TOKEN_TYP)
                    event = AuditRecord(
                        action="consent_token.issued",
                        subject_type="consent",
                        subject_id=consent_id,
                        payload={
                            "jti": claims["jti"],
                            "audience": actor.client_id,
                            "uses": list(checked),
                            "asset_ids": [a.asset_id for a in bound],
                            "exp": claims["exp"],
                            "status_list": target.list_id,
                            "status_idx": idx,
                        },
                    )
                    return IssuedToken(
                        token=token, jti=claims["jti"], expires_at=expires_at, events=(event,)
                    )
            await status.close_list(conn, target.list_id)
        msg = "no free status list index after many draws"
        raise RuntimeError(msg)

    async def verify(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        token: str,
        use: str | None,
        asset_sha256: str | None,
        audience: str | None,
    ) -> TokenVerification:
        """Online verification: signature, claims, audience, binding, use and live status.

        The status comes from the token's own row, read now, so a withdrawal committed by
        any process fails the token here at once.
        """
        if use is not None:
            require_known_uses([use])
        audiences = {actor.client_id}
        if audience is not None and audience != actor.client_id:
            if not actor.has(Role.PUBLISHER):
                raise AudienceNotAllowedError("only a publisher may name another audience")
            audiences = {audience}
        kid, reference = _peek(token)
        key = await self._keyring.public_key_fresh(kid) if kid is not None else None
        found: int | None = None
        if reference is not None:
            list_id = status.list_id_of(self.settings.issuer, reference[0])
            if list_id is not None:
                found = await status.status_at(conn, list_id, reference[1])
        return verify_token(
            token,
            resolve_key=lambda k: key if k == kid else None,
            issuer=self.settings.issuer,
            audiences=audiences,
            status_of=lambda uri, idx: found if (uri, idx) == reference else None,
            now=_now(),
            leeway_seconds=self.settings.token_leeway_seconds,
            use=use,
            asset_sha256=asset_sha256,
        )

    # Withdrawal and erasure.

    async def withdraw(
        self,
        conn: asyncpg.Connection,
        *,
        actor: Client,
        consent_id: str,
        withdrawal: str | None,
        reason: str | None,
    ) -> Withdrawn:
        """Withdraw with the signer's signed withdrawal, or as an admin with a reason."""
        record = await self._owned_for_update(conn, actor, consent_id)
        now = _now()
        if withdrawal is not None:
            personal, _ = await self._open(conn, record)
            if personal is None:
                raise ConsentNotActiveError("the consent is erased")
            try:
                signer_key = load_public_jwk(personal.signer_jwk)
            except KeysError:
                raise DataUnavailableError("the stored signer key does not load") from None
            verify_withdrawal(withdrawal, consent_id=consent_id, signer_key=signer_key, now=now)
            return await self._withdraw(
                conn, record, by="signer", withdrawal_sha256=_sha256(withdrawal), now=now
            )
        if actor.has(Role.ADMIN) and reason is not None and 0 < len(reason.strip()) <= _MAX_REASON:
            return await self._withdraw(
                conn,
                record,
                by=f"admin:{actor.client_id}",
                withdrawal_sha256=None,
                now=now,
                reason=reason,
            )
        raise WithdrawalRequiredError(
            "send the withdrawal signed by the consent's signer key"
            + (
                f" (or, as admin, a reason of 1-{_MAX_REASON} characters)"
                if actor.has(Role.ADMIN)
                else ""
            )
        )

    async def _owned_for_update(
        self, conn: asyncpg.Connection, actor: Client, consent_id: str
    ) -> repository.RecordRow:
        record = await repository.get_record(conn, consent_id, lock="update")
        if record is None or not (actor.has(Role.ADMIN) or record.tenant == actor.tenant):
            raise ConsentNotFoundError("no consent with this id for this tenant")
        if record.status not in {"active", "withdrawn"}:
            raise ConsentNotActiveError(f"the consent is {record.status}")
        return record

    async def _withdraw(
        self,
        conn: asyncpg.Connection,
        record: repository.RecordRow,
        *,
        by: str,
        withdrawal_sha256: str | None,
        now: datetime,
        reason: str | None = None,
    ) -> Withdrawn:
        if record.status != "active":
            raise ConsentNotActiveError(f"the consent is {record.status}")
        await repository.mark_withdrawn(
            conn, record.consent_id, at=now, by=by, withdrawal_sha256=withdrawal_sha256
        )
        revoked = await status.revoke_consent_tokens(conn, record.consent_id)
        affected = await self.affected_by_withdrawal(conn, record.consent_id)
        payload: dict[str, Any] = {"by": by, "revoked_tokens": revoked}
        if withdrawal_sha256 is not None:
            payload["withdrawal_sha256"] = withdrawal_sha256
        if reason is not None:
            # The text may name people; the log keeps its hash, the response its text.
            payload["reason_sha256"] = _sha256(reason)
        event = AuditRecord(
            action="consent.withdrawn",
            subject_type="consent",
            subject_id=record.consent_id,
            payload=payload,
        )
        return Withdrawn(
            consent_id=record.consent_id,
            withdrawn_at=now,
            withdrawn_by=by,
            revoked_tokens=revoked,
            affected=affected,
            events=(event,),
        )

    async def erase(self, conn: asyncpg.Connection, *, actor: Client, consent_id: str) -> Erased:
        """Withdraw (if still active), then make the record's personal data unrecoverable."""
        record = await self._owned_for_update(conn, actor, consent_id)
        now = _now()
        withdrawn: Withdrawn | None = None
        events: list[AuditRecord] = []
        if record.status == "active":
            withdrawn = await self._withdraw(
                conn, record, by=f"erasure:{actor.client_id}", withdrawal_sha256=None, now=now
            )
            events.extend(withdrawn.events)
        await repository.mark_erased(conn, consent_id, now)
        if record.data_key_id is not None:
            await repository.delete_data_key(conn, record.data_key_id)
        signer_erased = False
        if record.signer_id is not None and not await repository.signer_in_use(
            conn, record.signer_id, besides=consent_id
        ):
            signer = await repository.signer_by_id(conn, record.signer_id)
            if signer is not None and signer.erased_at is None:
                await repository.erase_signer(conn, signer.signer_id, now)
                if signer.data_key_id is not None:
                    await repository.delete_data_key(conn, signer.data_key_id)
                signer_erased = True
                events.append(
                    AuditRecord(
                        action="consent_signer.erased",
                        subject_type="consent_signer",
                        subject_id=signer.signer_id,
                        payload={"consent_id": consent_id},
                    )
                )
        events.append(
            AuditRecord(
                action="consent.erased",
                subject_type="consent",
                subject_id=consent_id,
                payload={"signer_erased": signer_erased},
            )
        )
        return Erased(
            consent_id=consent_id,
            erased_at=now,
            withdrawal=withdrawn,
            signer_erased=signer_erased,
            events=tuple(events),
        )

    # Status lists.

    async def status_list_token(self, conn: asyncpg.Connection, list_id: str) -> str:
        if not status.valid_list_id(list_id):
            raise StatusListNotFoundError("no such status list")
        return await self.status_lists.token(
            conn, list_id, signer=self._keyring, kid=self._keyring.signer().kid
        )


def _template_view(row: repository.TemplateRow) -> TemplateView:
    return TemplateView(
        id=row.template_id,
        title=row.title,
        text=row.body,
        sha256=row.sha256,
        uses=row.uses,
        created_at=row.created_at,
    )


def _check_ref(subject_ref: str) -> None:
    if not 0 < len(subject_ref) <= _MAX_REF:
        raise SubjectRefInvalidError(f"subject_ref must be 1-{_MAX_REF} characters")


def _signer_role(value: str) -> SignerRole:
    roles: dict[str, SignerRole] = {
        "subject": "subject",
        "guardian": "guardian",
        "agent": "agent",
        "rights_holder": "rights_holder",
    }
    return roles[value]


def _status(record: repository.RecordRow, now: datetime) -> ConsentStatus:
    if record.status == "erased":
        return "erased"
    if record.status == "withdrawn":
        return "withdrawn"
    if now >= record.valid_until:
        return "expired"
    if now < record.valid_from:
        return "pending"
    return "active"


def _request_sha256(form: str, uploads: Sequence[PreparedAsset]) -> str:
    parts = [form, *sorted(upload.sha256 for upload in uploads)]
    return _sha256("\n".join(parts))


def _match_uploads(uploads: Sequence[PreparedAsset], listed: set[str]) -> dict[str, PreparedAsset]:
    matched: dict[str, PreparedAsset] = {}
    for upload in uploads:
        if upload.sha256 not in listed:
            raise AssetNotInFormError(
                f"an uploaded file (sha256 {upload.sha256}) is not listed in the signed form"
            )
        if upload.sha256 in matched:
            raise AssetUploadDuplicateError("the same file was uploaded twice")
        matched[upload.sha256] = upload
    return matched


def _select_assets(assets: Sequence[AssetView], asset_ids: Sequence[str] | None) -> list[AssetView]:
    if asset_ids is None:
        return list(assets)
    if not asset_ids:
        raise AssetIdsInvalidError("asset_ids, when given, names at least one asset")
    if len(set(asset_ids)) != len(asset_ids):
        raise AssetIdsInvalidError("asset_ids names an asset more than once")
    by_id = {a.asset_id: a for a in assets}
    unknown = [a for a in asset_ids if a not in by_id]
    if unknown:
        raise AssetUnknownError("asset_ids names an asset that is not part of this consent")
    return [by_id[a] for a in asset_ids]


def _template_id_of(payload: bytes) -> str | None:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    template = document.get("template") if isinstance(document, dict) else None
    template_id = template.get("id") if isinstance(template, dict) else None
    return template_id if isinstance(template_id, str) else None


def _peek(token: str) -> tuple[str | None, tuple[str, int] | None]:
    """The kid and status reference a token claims, unverified: only to know what to read."""
    try:
        header, payload, _, _ = parse_compact(token)
        claims = json.loads(payload)
    except (KeysError, ValueError, RecursionError):
        return None, None
    kid = header.get("kid")
    kid = kid if is_valid_kid(kid) else None
    reference = None
    status_claim = claims.get("status") if isinstance(claims, dict) else None
    entry = status_claim.get("status_list") if isinstance(status_claim, dict) else None
    if isinstance(entry, dict):
        uri, idx = entry.get("uri"), entry.get("idx")
        if isinstance(uri, str) and type(idx) is int and idx >= 0:
            reference = (uri, idx)
    return kid, reference
