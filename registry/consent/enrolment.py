"""Enrolment: the consent texts (templates) forms are signed over, and signer keys enrolled ahead.

A template is registered once under its id, with the SHA-256 of its text and the uses it
offers; changed text needs a new id, so a signed form's ``template`` never changes meaning.
An enrolled signer key is stored sealed with the subject and role it is bound to, so forms
signed with it (naming it by ``kid``) get ``enrolled`` assurance.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any, Final

import msgspec

from keys.errors import KeysError
from keys.jwk import load_public_jwk, public_jwk, thumbprint
from registry.consent import repository
from registry.consent.crypto import text_sha256
from registry.consent.errors import (
    SignerExistsError,
    SignerKeyInvalidError,
    TemplateExistsError,
    TemplateNotFoundError,
    TemplateTextInvalidError,
    UsesEmptyError,
)
from registry.consent.forms import EnrolledSigner, SignerRole, TemplateRef
from registry.consent.records import check_ref
from registry.consent.uses import require_known_uses
from registry.consent.views import SignerEnrolled, TemplateRegistered, TemplateView
from registry.core.audit import AuditRecord

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import asyncpg

    from registry.consent.records import DataKeys
    from registry.core.auth import Client

__all__ = [
    "Enrolled",
    "enroll_signer",
    "enrolled_signer",
    "get_template",
    "register_template",
    "template_ref",
]

_TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAX_TITLE: Final = 200
_MAX_TEMPLATE_TEXT: Final = 100_000
# A stored role, typed: the column's CHECK constraint admits exactly these.
_SIGNER_ROLES: Final[Mapping[str, SignerRole]] = {
    "subject": "subject",
    "guardian": "guardian",
    "agent": "agent",
    "rights_holder": "rights_holder",
}


class Enrolled(msgspec.Struct, kw_only=True, frozen=True):
    """An enrolled signer as form verification takes it, and the id of its row."""

    signer_id: str
    signer: EnrolledSigner


class _SignerData(msgspec.Struct, kw_only=True, frozen=True):
    """The sealed part of an enrolled signer."""

    jwk: dict[str, str]
    subject_ref: str


# Templates.


async def register_template(
    conn: asyncpg.Connection,
    *,
    actor: Client,
    template_id: str,
    title: str,
    text: str,
    uses: Sequence[str],
) -> TemplateRegistered:
    offered = _check_template(template_id, title, text, uses)
    digest = text_sha256(text)
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


def _check_template(
    template_id: str, title: str, text: str, uses: Sequence[str]
) -> tuple[str, ...]:
    """The uses the template offers, once its id, title and text are acceptable."""
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
    return require_known_uses(uses)


async def get_template(conn: asyncpg.Connection, template_id: str) -> TemplateView:
    row = await _template_row(conn, template_id)
    if row is None:
        raise TemplateNotFoundError("no template has this id")
    return _template_view(row)


async def template_ref(conn: asyncpg.Connection, template_id: str | None) -> TemplateRef | None:
    """The registered template a form names, as form verification takes it; None if none."""
    row = await _template_row(conn, template_id) if template_id is not None else None
    if row is None:
        return None
    return TemplateRef(id=row.template_id, sha256=row.sha256, uses=frozenset(row.uses))


async def _template_row(
    conn: asyncpg.Connection, template_id: str
) -> repository.TemplateRow | None:
    if not _TEMPLATE_ID.fullmatch(template_id):
        return None
    return await repository.get_template(conn, template_id)


def _template_view(row: repository.TemplateRow) -> TemplateView:
    return TemplateView(
        id=row.template_id,
        title=row.title,
        text=row.body,
        sha256=row.sha256,
        uses=row.uses,
        created_at=row.created_at,
    )


# Signers.


async def enroll_signer(
    conn: asyncpg.Connection,
    keys: DataKeys,
    *,
    actor: Client,
    jwk: Mapping[str, Any],
    subject_ref: str,
    role: SignerRole,
) -> SignerEnrolled:
    check_ref(subject_ref)
    try:
        normalized = public_jwk(load_public_jwk(jwk))
    except KeysError as exc:
        raise SignerKeyInvalidError(f"signer key: {exc.message}") from None
    kid = thumbprint(normalized)
    signer_id = "sgn_" + secrets.token_urlsafe(16)
    data_key = await keys.new(conn)
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


async def enrolled_signer(
    conn: asyncpg.Connection, keys: DataKeys, tenant: str, kid: str | None
) -> Enrolled | None:
    """The tenant's signer enrolled under ``kid``, unsealed; None if none (or it was erased)."""
    if kid is None:
        return None
    row = await repository.signer_by_kid(conn, tenant, kid)
    if row is None or not row.sealed or not row.data_key_id:
        return None
    key = await keys.get(conn, row.data_key_id)
    data = msgspec.convert(key.open(row.sealed, aad=row.signer_id), _SignerData)
    signer = EnrolledSigner(
        kid=kid, jwk=dict(data.jwk), subject_ref=data.subject_ref, role=_SIGNER_ROLES[row.role]
    )
    return Enrolled(signer_id=row.signer_id, signer=signer)
