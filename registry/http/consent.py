"""The consent registry over HTTP: templates, signers, consents, grants, tokens, status lists.

Handlers read and check the request, open one transaction, call the consent service, append
the audit events it returns in that same transaction, and shape the response. Decisions live
in ``registry.consent.service``.
"""

from __future__ import annotations

import re
from datetime import datetime  # noqa: TC003 - msgspec and Litestar read annotations at runtime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath, QueryParameter

from registry.consent.forms import MAX_FORM_ASSETS
from registry.consent.service import (
    ConsentStatus,
    ConsentView,
    SubmittedAsset,
    TemplateView,
    Upload,
    Withdrawn,
    prepare_uploads,
)
from registry.consent.tokens import Reason  # noqa: TC001 - msgspec reads it at runtime
from registry.consent.uses import Vocabulary, vocabulary
from registry.core.auth import Client, Role
from registry.core.errors import Malformed, UnsupportedMediaType
from registry.http.deps import AppServices, read_payload
from registry.http.security import BEARER, allow, public
from registry.services import Services  # noqa: TC001 - Litestar reads annotations at runtime
from verifier.statuslist import STATUS_LIST_TYP

STATUS_LIST_MEDIA_TYPE = f"application/{STATUS_LIST_TYP}"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_FORM_PARTS = frozenset({"form", "assets"})

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
ConsentId = FromPath[str]
SubjectRef = Annotated[
    str, QueryParameter(description="The subject reference the signed form names")
]


# Request bodies.


class CreateTemplate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str
    title: str
    text: str
    uses: list[str]


class EnrollSigner(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    jwk: dict[str, Any]
    """The signer's public key as a JWK (OKP Ed25519, EC P-256/P-384, or RSA 2048+)."""
    subject_ref: str
    role: Literal["subject", "guardian", "agent", "rights_holder"]


class SubmitConsent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    form: str
    """The consent form: a compact JWS of type ``consent-form+jws``."""


class CreateGrant(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    client_id: _Id


class RequestToken(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    consent_id: _Id
    uses: list[str]
    asset_ids: list[str] | None = None
    ttl_seconds: int | None = None


class VerifyToken(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    token: str
    use: str | None = None
    asset_sha256: str | None = None
    audience: _Id | None = None
    """Publishers: the generator client the token must be for (default: the caller)."""


class Withdraw(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    withdrawal: str | None = None
    """A compact JWS of type ``consent-withdrawal+jws`` signed by the consent's signer key."""
    reason: str | None = None
    """Admins only, instead of a signed withdrawal."""


class Suspension(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: str | None = None
    """Why, in 1-1000 characters; only its SHA-256 is kept (in the audit log)."""


_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["form"],
    "properties": {
        "form": {"type": "string", "description": "The consent form (compact JWS)."},
        "assets": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "Reference photos (JPEG, PNG or WebP); each file's SHA-256 must be "
            "listed in the form. Only hashes are kept.",
        },
    },
}


# Responses.


class SignerCreated(msgspec.Struct, kw_only=True, frozen=True):
    signer_id: str
    kid: str
    role: str


class ConsentCreated(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    assets: list[SubmittedAsset]
    receipt: str | None


class ConsentList(msgspec.Struct, kw_only=True, frozen=True):
    consents: list[ConsentView]


class GrantCreated(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    client_id: str


class TokenIssued(msgspec.Struct, kw_only=True, frozen=True):
    token: str
    expires_at: datetime
    jti: str


class TokenChecked(msgspec.Struct, kw_only=True, frozen=True):
    valid: bool
    reasons: list[Reason]
    claims: dict[str, Any] | None


class ConsentWithdrawn(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    withdrawn_at: datetime
    withdrawn_by: str
    revoked_tokens: list[str]
    """Tokens revoked by this withdrawal."""
    tokens: list[str]
    """Every token ever issued from the consent."""
    outputs: list[dict[str, Any]]
    """Signed outputs made with those tokens, to take down."""
    decisions: list[dict[str, Any]]
    """Gate decisions that relied on those tokens."""


class ConsentSuspended(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: Literal["suspended"]
    suspended_at: datetime
    suspended_by: str
    suspended_tokens: list[str]
    """Tokens now suspended (status 2): valid again when the consent is resumed."""
    revoked_tokens: list[str]
    """Tokens of 1-bit status lists (issued before suspension existed): revoked for good."""


class ConsentResumed(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: ConsentStatus
    resumed_at: datetime
    restored_tokens: list[str]
    """Tokens valid (status 0) again."""


class ConsentErased(msgspec.Struct, kw_only=True, frozen=True):
    consent_id: str
    status: str
    erased_at: datetime
    signer_erased: bool
    withdrawal: ConsentWithdrawn | None
    """The withdrawal this erasure made (the consent was active); None when it was withdrawn
    before, or erased before (a repeated erasure answers with the tombstone only)."""


def _withdrawn(result: Withdrawn) -> ConsentWithdrawn:
    return ConsentWithdrawn(
        consent_id=result.consent_id,
        status="withdrawn",
        withdrawn_at=result.withdrawn_at,
        withdrawn_by=result.withdrawn_by,
        revoked_tokens=result.revoked_tokens,
        tokens=result.affected.tokens,
        outputs=result.affected.outputs,
        decisions=result.affected.decisions,
    )


async def _read_submission(
    request: Request[Any, Any, Any], services: Services
) -> tuple[str, list[Upload]]:
    """The form and any uploaded photos, from a JSON or a multipart/form-data body."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        body: SubmitConsent = await read_payload(request, services)
        return body.form, []
    try:
        data = await request.form()
    except UnicodeDecodeError:
        raise Malformed("a multipart text part is not UTF-8") from None
    parts = list(data.multi_items())
    try:
        return await _parts(parts)
    except UnicodeDecodeError:
        raise Malformed("the 'form' part is not UTF-8") from None
    finally:
        for _, value in parts:
            if isinstance(value, UploadFile):
                await value.close()


async def _parts(parts: list[tuple[str, Any]]) -> tuple[str, list[Upload]]:
    unknown = sorted({name for name, _ in parts} - _FORM_PARTS)
    if unknown:
        raise Malformed(f"unknown multipart part {unknown[0][:64]!r}; send form and assets")
    forms = [value for name, value in parts if name == "form"]
    if len(forms) != 1:
        raise Malformed("send exactly one 'form' part")
    form = forms[0]
    text = (await form.read()).decode("utf-8") if isinstance(form, UploadFile) else str(form)
    # `curl -F form=<form.jws` sends the file's final newline; a compact JWS holds no
    # whitespace, so trimming it cannot change what was signed.
    text = text.strip(" \t\r\n")
    files = [value for name, value in parts if name == "assets"]
    if len(files) > MAX_FORM_ASSETS:
        raise Malformed(f"at most {MAX_FORM_ASSETS} asset files")
    uploads = []
    for file in files:
        if not isinstance(file, UploadFile):
            raise UnsupportedMediaType("each 'assets' part must be a file upload")
        uploads.append(Upload(data=await file.read(), media_type=file.content_type))
    return text, uploads


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Malformed("Idempotency-Key must be 1-200 visible ASCII characters")
    return key


class ConsentController(Controller):
    tags = ["consent"]  # noqa: RUF012 - Litestar reads class attributes

    # Vocabulary and templates.

    @get("/v1/uses", summary="The controlled vocabulary of uses (versioned)", guards=[public])
    async def uses(self) -> Vocabulary:
        return vocabulary()

    @post(
        "/v1/consent-templates",
        summary="Register a consent text shown to people (stored with its SHA-256)",
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        opt={"body": CreateTemplate},
    )
    async def create_template(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[CreateTemplate],
    ) -> TemplateView:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.register_template(
                uow.conn,
                actor=caller,
                template_id=payload.id,
                title=payload.title,
                text=payload.text,
                uses=payload.uses,
            )
            uow.record_all(result.events)
        return result.template

    @get(
        "/v1/consent-templates/{template_id:str}",
        summary="A consent template: its text, SHA-256 and the uses it offers",
        guards=[public],
    )
    async def get_template(self, services: AppServices, template_id: FromPath[str]) -> TemplateView:
        async with services.connection() as conn:
            return await services.consent.get_template(conn, template_id)

    # Signers.

    @post(
        "/v1/signers",
        summary="Enroll a signer's public key; forms then name it by kid",
        guards=[allow(Role.UPLOADER)],
        security=BEARER,
        opt={"body": EnrollSigner},
    )
    async def enroll_signer(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[EnrollSigner],
    ) -> SignerCreated:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.enroll_signer(
                uow.conn,
                actor=caller,
                jwk=payload.jwk,
                subject_ref=payload.subject_ref,
                role=payload.role,
            )
            uow.record_all(result.events)
        return SignerCreated(signer_id=result.signer_id, kid=result.kid, role=result.role)

    # Consents.

    @post(
        "/v1/consents",
        summary="Submit a signed consent form, with its photos or only their hashes",
        description=(
            'Either `application/json` `{"form": "<compact JWS>"}` (hash-only: the photos '
            "never leave the uploader) or `multipart/form-data` with a `form` part and one or "
            "more `assets` image parts. Photos are decoded safely and only their SHA-256 and "
            "perceptual hashes are kept. The same `Idempotency-Key` with the same body returns "
            "the same record; with another body, 409."
        ),
        guards=[allow(Role.UPLOADER)],
        security=BEARER,
        opt={"body": SubmitConsent, "multipart": _MULTIPART_SCHEMA},
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
    ) -> ConsentCreated:
        key = _idempotency_key(request)
        form, uploads = await _read_submission(request, services)
        prepared = await prepare_uploads(uploads, services.consent.settings.image_limits)
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.submit(
                uow.conn, actor=caller, form=form, uploads=prepared, idempotency_key=key
            )
            uow.record_all(result.events)
        return ConsentCreated(
            consent_id=result.consent_id,
            status=result.status,
            assets=result.assets,
            receipt=result.receipt,
        )

    @get(
        "/v1/consents/{consent_id:str}",
        summary="A consent record of the caller's tenant",
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
    )
    async def get_consent(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        consent_id: ConsentId,
    ) -> ConsentView:
        async with services.connection() as conn:
            return await services.consent.get_consent(conn, actor=caller, consent_id=consent_id)

    @get(
        "/v1/consents",
        summary="The caller's tenant's consent records for a subject reference",
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
    )
    async def find_consents(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        subject_ref: SubjectRef,
    ) -> ConsentList:
        async with services.connection() as conn:
            found = await services.consent.find_consents(
                conn, actor=caller, subject_ref=subject_ref
            )
        return ConsentList(consents=found)

    @post(
        "/v1/consents/{consent_id:str}/grants",
        summary="Let a generator client obtain tokens for this consent",
        guards=[allow(Role.UPLOADER)],
        security=BEARER,
        opt={"body": CreateGrant},
    )
    async def grant(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[CreateGrant],
        consent_id: ConsentId,
    ) -> Response[GrantCreated]:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.grant(
                uow.conn, actor=caller, consent_id=consent_id, client_id=payload.client_id
            )
            uow.record_all(result.events)
        return Response(
            GrantCreated(consent_id=result.consent_id, client_id=result.client_id),
            status_code=201 if result.created else 200,
        )

    @post(
        "/v1/consents/{consent_id:str}/withdraw",
        summary="Withdraw a consent: its tokens are revoked at once, new ones refused",
        description=(
            "Send the withdrawal signed by the consent's signer key (`typ: "
            "consent-withdrawal+jws`), or, as an admin, a reason. The response lists what was "
            "produced with the consent's tokens, so a publisher can take it down."
        ),
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
        status_code=200,
        opt={"body": Withdraw},
    )
    async def withdraw(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[Withdraw],
        consent_id: ConsentId,
    ) -> ConsentWithdrawn:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.withdraw(
                uow.conn,
                actor=caller,
                consent_id=consent_id,
                withdrawal=payload.withdrawal,
                reason=payload.reason,
            )
            uow.record_all(result.events)
        return _withdrawn(result)

    @post(
        "/v1/consents/{consent_id:str}/suspend",
        summary="Suspend a consent: its tokens read suspended until it is resumed",
        description=(
            "A reversible stop, e.g. while a dispute about the consent is investigated: the "
            "consent's tokens fail verification with `suspended` at once (status 2 in their "
            "status lists) and no new token is issued. An optional `reason` (1-1000 "
            "characters) is kept only as its SHA-256. A withdrawn or erased consent, or one "
            "suspended already, is 409."
        ),
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
        status_code=200,
        opt={"body": Suspension},
    )
    async def suspend(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[Suspension],
        consent_id: ConsentId,
    ) -> ConsentSuspended:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.suspend(
                uow.conn, actor=caller, consent_id=consent_id, reason=payload.reason
            )
            uow.record_all(result.events)
        return ConsentSuspended(
            consent_id=result.consent_id,
            status="suspended",
            suspended_at=result.suspended_at,
            suspended_by=result.suspended_by,
            suspended_tokens=result.suspended_tokens,
            revoked_tokens=result.revoked_tokens,
        )

    @post(
        "/v1/consents/{consent_id:str}/resume",
        summary="End a consent's suspension: its suspended tokens are valid again",
        description=(
            "A consent that is not suspended is 409 (`consent_not_suspended`), a withdrawn or "
            "erased one 409 (`consent_not_active`)."
        ),
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
        status_code=200,
        opt={"body": Suspension},
    )
    async def resume(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[Suspension],
        consent_id: ConsentId,
    ) -> ConsentResumed:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.resume(
                uow.conn, actor=caller, consent_id=consent_id, reason=payload.reason
            )
            uow.record_all(result.events)
        return ConsentResumed(
            consent_id=result.consent_id,
            status=result.status,
            resumed_at=result.resumed_at,
            restored_tokens=result.restored_tokens,
        )

    @post(
        "/v1/consents/{consent_id:str}/erase",
        summary="Withdraw, then destroy the record's personal data beyond recovery",
        guards=[allow(Role.UPLOADER, Role.ADMIN)],
        security=BEARER,
        status_code=200,
    )
    async def erase(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        consent_id: ConsentId,
    ) -> ConsentErased:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.erase(uow.conn, actor=caller, consent_id=consent_id)
            uow.record_all(result.events)
        return ConsentErased(
            consent_id=result.consent_id,
            status="erased",
            erased_at=result.erased_at,
            signer_erased=result.signer_erased,
            withdrawal=_withdrawn(result.withdrawal) if result.withdrawal else None,
        )

    # Tokens and status lists.

    @post(
        "/v1/tokens",
        summary="Obtain a consent token for a consent this generator was granted",
        guards=[allow(Role.GENERATOR)],
        security=BEARER,
        opt={"body": RequestToken},
    )
    async def issue_token(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[RequestToken],
    ) -> TokenIssued:
        async with services.unit_of_work(caller) as uow:
            result = await services.consent.issue_token(
                uow.conn,
                actor=caller,
                consent_id=payload.consent_id,
                uses=payload.uses,
                asset_ids=payload.asset_ids,
                ttl_seconds=payload.ttl_seconds,
            )
            uow.record_all(result.events)
        return TokenIssued(token=result.token, expires_at=result.expires_at, jti=result.jti)

    @post(
        "/v1/tokens/verify",
        summary="Verify a consent token online, including its live revocation status",
        description=(
            "Always 200 for a token that was checked: `valid` says the outcome and `reasons` "
            "the stable codes of every failed check (signature, expired, not_yet_valid, "
            "revoked, audience, asset_mismatch, use_not_permitted, malformed, ...)."
        ),
        guards=[allow(Role.GENERATOR, Role.PUBLISHER)],
        security=BEARER,
        status_code=200,
        opt={"body": VerifyToken},
    )
    async def verify_token(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[VerifyToken],
    ) -> TokenChecked:
        async with services.connection() as conn:
            result = await services.consent.verify(
                conn,
                actor=caller,
                token=payload.token,
                use=payload.use,
                asset_sha256=payload.asset_sha256,
                audience=payload.audience,
            )
        return TokenChecked(valid=result.valid, reasons=list(result.reasons), claims=result.payload)

    @get(
        "/v1/status-lists/{list_id:str}",
        summary="A token status list (IETF OAuth Token Status List JWT)",
        guards=[public],
        media_type=STATUS_LIST_MEDIA_TYPE,
    )
    async def status_list(self, services: AppServices, list_id: FromPath[str]) -> Response[str]:
        async with services.connection() as conn:
            token = await services.consent.status_list_token(conn, list_id)
        max_age = services.consent.status_lists.max_age_seconds
        return Response(
            token,
            media_type=STATUS_LIST_MEDIA_TYPE,
            headers={"Cache-Control": f"public, max-age={max_age}"},
        )
