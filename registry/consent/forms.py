"""Consent forms: a JSON document signed by its signer as a compact JWS (DESIGN §4).

The header is ``typ: consent-form+jws`` with an asymmetric algorithm, and names the signer's
key in exactly one of three ways, which becomes the record's assurance:

- ``kid`` of an enrolled signer key: ``enrolled``;
- ``x5c``, a chain to a configured consent-signer anchor (the leaf key signs): ``x509``;
- ``jwk``, the key itself: ``self_asserted``.

``jku`` and ``x5u`` are never followed. The payload is read strictly (no duplicate members at
any depth, no unknown members, no loose types) from the exact bytes the signature covers.

A caller that must look up the enrolled key and the template a form names before verifying
it reads the form once with ``read_form`` and hands that ``UnverifiedForm`` to
``verify_form``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias, TypeVar

import msgspec

from keys.errors import KeysError
from keys.jwk import is_valid_kid, load_public_jwk, public_jwk, thumbprint
from keys.jws import ALLOWED_ALGORITHMS, parse_compact, verify_compact
from registry.consent.errors import (
    AlgorithmNotAllowedError,
    AssetInvalidError,
    ConsentError,
    FormMalformedError,
    FormSignatureInvalidError,
    SignedPayloadError,
    SignerAmbiguousError,
    SignerKeyInvalidError,
    SignerKeyMismatchError,
    SignerUnknownError,
    TemplateHashMismatchError,
    TemplateUnknownError,
    UseNotOfferedError,
    UsesOverlapError,
    ValidityExpiredError,
    ValidityInvalidError,
    ValidityTooLongError,
    VersionUnsupportedError,
)
from registry.consent.uses import require_known_uses
from registry.consent.x509 import verify_x5c
from registry.core.strictjson import JsonError, parse_strict_json

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from cryptography import x509

    from keys.jwk import PublicKey

__all__ = [
    "FORM_TYP",
    "FORM_VERSION",
    "MAX_FORM_ASSETS",
    "Assurance",
    "ConsentForm",
    "EnrolledSigner",
    "FormAsset",
    "FormTemplate",
    "SignerRole",
    "TemplateRef",
    "UnverifiedForm",
    "VerifiedForm",
    "read_form",
    "verify_form",
]

FORM_TYP: Final = "consent-form+jws"
FORM_VERSION: Final = 1
MAX_FORM_ASSETS: Final = 100
# Clocks of signing devices drift; a signing time this far ahead of ours is still believable.
DEFAULT_MAX_SKEW: Final = timedelta(minutes=5)

SignerRole: TypeAlias = Literal["subject", "guardian", "agent", "rights_holder"]
Assurance: TypeAlias = Literal["enrolled", "x509", "self_asserted"]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_HEADERS = ("kid", "x5c", "jwk")

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
_Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class FormTemplate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The consent text the signer was shown: template id and SHA-256 of its text."""

    id: _Text
    sha256: _Sha256


class FormAsset(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A reference photo, by the SHA-256 of its file (lowercase hex), and optionally its
    perceptual hashes, for a form whose photos are not uploaded: pHash (16 hex digits) and
    PDQ (64)."""

    sha256: str
    label: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    phash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$")] | None = None
    pdq: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None


class ConsentForm(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The signed payload of a consent form, version 1."""

    version: int
    template: FormTemplate
    subject_ref: _Text
    signer_role: SignerRole
    assets: Annotated[tuple[FormAsset, ...], msgspec.Meta(min_length=1, max_length=MAX_FORM_ASSETS)]
    permitted_uses: Annotated[tuple[str, ...], msgspec.Meta(min_length=1, max_length=64)]
    prohibited_uses: Annotated[tuple[str, ...], msgspec.Meta(max_length=64)]
    valid_from: _Timestamp
    valid_until: _Timestamp
    # ISO 3166-1 alpha-2 country, optionally with an ISO 3166-2 subdivision ("US-CA").
    jurisdiction: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
    signed_at: _Timestamp
    nonce: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{16,128}$")]


class EnrolledSigner(msgspec.Struct, kw_only=True, frozen=True):
    """A signer key enrolled ahead of time; subject and role, when stated, bind its forms."""

    kid: str
    jwk: dict[str, Any]
    subject_ref: str | None = None
    role: SignerRole | None = None


class TemplateRef(msgspec.Struct, kw_only=True, frozen=True):
    """A registered template; ``uses``, when given, are the only uses its forms may permit."""

    id: str
    sha256: str
    uses: frozenset[str] | None = None


class VerifiedForm(msgspec.Struct, kw_only=True, frozen=True):
    """A consent form whose signature, key, template, uses and validity all checked out."""

    form: ConsentForm
    header: dict[str, Any]
    assurance: Assurance
    signer_thumbprint: str
    signer_jwk: dict[str, str]
    enrolled: EnrolledSigner | None
    token: str


class UnverifiedForm(msgspec.Struct, kw_only=True, frozen=True):
    """A consent form decoded by :func:`read_form`; nothing in it is verified yet.

    ``kid`` and ``template_id`` only say what to look up before :func:`verify_form` checks
    the form against what was found. A payload that is not strict JSON of a form is kept as
    its error, raised once the signature has verified, so signature faults are reported first.
    Make one with ``read_form`` only: ``verify_form`` checks ``payload`` as what ``token`` says.
    """

    token: str
    header: dict[str, Any]
    payload: ConsentForm | ConsentError

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) and is_valid_kid(kid) else None

    @property
    def template_id(self) -> str | None:
        return self.payload.template.id if isinstance(self.payload, ConsentForm) else None


class _Signer(msgspec.Struct, kw_only=True, frozen=True):
    key: PublicKey
    assurance: Assurance
    enrolled: EnrolledSigner | None = None


_KEYS_ERRORS: Mapping[str, type[ConsentError]] = {
    "algorithm_not_allowed": AlgorithmNotAllowedError,
    "signature_invalid": FormSignatureInvalidError,
    "unknown_key": SignerUnknownError,
    "invalid_jwk": SignerKeyInvalidError,
}


def parse_signed_payload(payload: bytes, type_: type[T]) -> T:
    """Strict JSON of a signed payload, failing only with ConsentError."""
    try:
        return parse_strict_json(payload, type_)
    except JsonError as exc:
        raise SignedPayloadError(f"signed payload: {exc}", code=exc.code) from None


def read_form(token: str) -> UnverifiedForm:
    """Decode a consent form's header and payload; raise form_malformed if it is no JWS."""
    try:
        header, payload, _, _ = parse_compact(token)
    except KeysError as exc:
        raise _form_error(exc) from None
    content: ConsentForm | ConsentError
    try:
        content = parse_signed_payload(payload, ConsentForm)
    except ConsentError as exc:
        content = exc
    return UnverifiedForm(token=token, header=header, payload=content)


def verify_form(
    form: str | UnverifiedForm,
    *,
    resolve_enrolled: Callable[[str], EnrolledSigner | None],
    anchors: Sequence[x509.Certificate],
    templates: Callable[[str], TemplateRef | None],
    max_validity: timedelta,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> VerifiedForm:
    """Verify a consent form JWS and its payload; raise a ConsentError with a code if not.

    ``form`` is the compact JWS, or what :func:`read_form` made of it.
    """
    unverified = form if isinstance(form, UnverifiedForm) else read_form(form)
    found: list[_Signer] = []

    def resolve_key(header: Mapping[str, Any]) -> PublicKey:
        signer = _resolve_signer(
            header, resolve_enrolled=resolve_enrolled, anchors=anchors, now=now
        )
        found.append(signer)
        return signer.key

    try:
        # keys.jws verifies whole compact tokens only, so it splits this one again; the
        # payload checked below is the one read_form decoded from the same text.
        verified = verify_compact(
            unverified.token, resolve_key=resolve_key, typ=FORM_TYP, algorithms=ALLOWED_ALGORITHMS
        )
    except KeysError as exc:
        raise _form_error(exc) from None
    signer = found[0]
    if isinstance(unverified.payload, ConsentError):
        raise unverified.payload
    content = unverified.payload
    _check_payload(
        content, templates=templates, max_validity=max_validity, now=now, max_skew=max_skew
    )
    if signer.enrolled is not None:
        _check_enrollment(content, signer.enrolled)
    jwk = public_jwk(signer.key)
    return VerifiedForm(
        form=content,
        header=verified.header,
        assurance=signer.assurance,
        signer_thumbprint=thumbprint(jwk),
        signer_jwk=jwk,
        enrolled=signer.enrolled,
        token=unverified.token,
    )


def _form_error(exc: KeysError) -> ConsentError:
    return _KEYS_ERRORS.get(exc.code, FormMalformedError)(f"consent form: {exc.message}")


def _resolve_signer(
    header: Mapping[str, Any],
    *,
    resolve_enrolled: Callable[[str], EnrolledSigner | None],
    anchors: Sequence[x509.Certificate],
    now: datetime,
) -> _Signer:
    named = [name for name in _KEY_HEADERS if name in header]
    if not named:
        raise SignerUnknownError("the header names no key: send one of kid, x5c or jwk")
    if len(named) > 1:
        raise SignerAmbiguousError(
            f"the header names its key as {' and '.join(named)}; send exactly one"
        )
    if named[0] == "x5c":
        key, _leaf = verify_x5c(header["x5c"], anchors=anchors, now=now)
        return _Signer(key=key, assurance="x509")
    if named[0] == "jwk":
        return _Signer(key=_load_key(header["jwk"]), assurance="self_asserted")
    kid = header["kid"]
    if not is_valid_kid(kid):
        raise SignerUnknownError("kid must be 1 to 128 characters of [A-Za-z0-9_.-]")
    enrolled = resolve_enrolled(kid)
    if enrolled is None:
        raise SignerUnknownError("no enrolled signer has this kid")
    return _Signer(key=_load_key(enrolled.jwk), assurance="enrolled", enrolled=enrolled)


def _load_key(jwk: Any) -> PublicKey:
    try:
        return load_public_jwk(jwk)
    except KeysError as exc:
        raise SignerKeyInvalidError(f"signer key: {exc.message}") from None


def _check_payload(
    form: ConsentForm,
    *,
    templates: Callable[[str], TemplateRef | None],
    max_validity: timedelta,
    now: datetime,
    max_skew: timedelta,
) -> None:
    if form.version != FORM_VERSION:
        raise VersionUnsupportedError(f"form version must be {FORM_VERSION}")
    _check_assets(form.assets)
    permitted = _check_uses(form)
    _check_validity(form, max_validity=max_validity, now=now, max_skew=max_skew)
    template = templates(form.template.id)
    if template is None:
        raise TemplateUnknownError("the form names a template that is not registered")
    if template.sha256 != form.template.sha256:
        raise TemplateHashMismatchError("the template hash differs from the registered text")
    if template.uses is not None and not permitted <= template.uses:
        outside = ", ".join(sorted(permitted - template.uses))
        raise UseNotOfferedError(f"the template does not offer {outside}")


def _check_assets(assets: Sequence[FormAsset]) -> None:
    hashes = [asset.sha256 for asset in assets]
    if not all(_SHA256_HEX.fullmatch(value) for value in hashes):
        raise AssetInvalidError("asset sha256 must be 64 lowercase hex digits")
    if len(set(hashes)) != len(hashes):
        raise AssetInvalidError("an asset is listed more than once")


def _check_uses(form: ConsentForm) -> set[str]:
    permitted = set(require_known_uses(form.permitted_uses))
    overlap = permitted.intersection(require_known_uses(form.prohibited_uses))
    if overlap:
        raise UsesOverlapError(f"uses both permitted and prohibited: {', '.join(sorted(overlap))}")
    return permitted


def _check_validity(
    form: ConsentForm, *, max_validity: timedelta, now: datetime, max_skew: timedelta
) -> None:
    if form.valid_until <= form.valid_from:
        raise ValidityInvalidError("valid_until must be after valid_from")
    if form.valid_until <= now:
        raise ValidityExpiredError("valid_until has passed")
    if form.valid_until - form.valid_from > max_validity:
        raise ValidityTooLongError(f"the validity window may be at most {max_validity}")
    if form.signed_at > now + max_skew:
        raise ValidityInvalidError("signed_at lies in the future")


def _check_enrollment(form: ConsentForm, enrolled: EnrolledSigner) -> None:
    if enrolled.subject_ref is not None and enrolled.subject_ref != form.subject_ref:
        raise SignerKeyMismatchError("the enrolled key is bound to another subject")
    if enrolled.role is not None and enrolled.role != form.signer_role:
        raise SignerKeyMismatchError("the enrolled key is bound to another signer role")
