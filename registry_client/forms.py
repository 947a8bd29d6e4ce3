"""The person's side of consent: an Ed25519 key, signed consent forms and withdrawals.

What README's ``sign_consent.py`` does, as a library. The forms are compact JWS documents the
service verifies as ``registry.consent.forms`` and ``registry.consent.withdrawal`` read them:
header ``{alg: EdDSA, kid, typ}``, where ``kid`` is the key's RFC 7638 thumbprint (the kid the
registry gives the key when it is enrolled), and a payload of exactly the members it knows.
Signing uses the project's own JWS code (``keys``), so the bytes are those the service's
verifier was written against. The key never leaves this object except through ``save`` and
``private_pem``.

    signer = FormSigner.load_or_create(Path("signer.pem"))
    client.enrol_signer(signer.public_jwk(), subject_ref="alice-4711")
    form = signer.sign_form(template_id=..., template_sha256=..., subject_ref="alice-4711",
                            assets=[FormAsset.of(photo)], permitted_uses=[...],
                            valid_until=..., jurisdiction="DE")
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence  # noqa: TC003 - msgspec reads it at runtime
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import LocalSigner, public_jwk, sign_compact

if TYPE_CHECKING:
    from pathlib import Path

    from registry_client.models import SignerRole

__all__ = ["FORM_TYP", "WITHDRAWAL_TYP", "FormAsset", "FormSigner", "template_sha256"]

FORM_TYP: Final = "consent-form+jws"
WITHDRAWAL_TYP: Final = "consent-withdrawal+jws"
FORM_VERSION: Final = 1


def template_sha256(text: str) -> str:
    """The SHA-256 of a consent text as the registry computes it (UTF-8, lowercase hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FormAsset(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A photo a form covers, by the SHA-256 of its file; for a form sent without its photos,
    optionally their perceptual hashes too (pHash: 16 hex digits, PDQ: 64)."""

    sha256: str
    label: str | None = None
    phash: str | None = None
    pdq: str | None = None

    @classmethod
    def of(cls, photo: bytes, label: str | None = None) -> FormAsset:
        """The asset entry for these exact bytes (the file you will upload)."""
        return cls(sha256=hashlib.sha256(photo).hexdigest(), label=label)


class _Template(msgspec.Struct, frozen=True):
    id: str
    sha256: str


class _Form(msgspec.Struct, kw_only=True, frozen=True):
    version: int
    template: _Template
    subject_ref: str
    signer_role: str
    assets: Sequence[FormAsset]
    permitted_uses: Sequence[str]
    prohibited_uses: Sequence[str]
    valid_from: datetime
    valid_until: datetime
    jurisdiction: str
    signed_at: datetime
    nonce: str


class _Withdrawal(msgspec.Struct, kw_only=True, frozen=True):
    type: Literal["consent-withdrawal"]
    consent_id: str
    withdrawn_at: datetime


def _moment(value: datetime | None, name: str) -> datetime:
    if value is None:
        value = datetime.now(UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (the registry refuses local times)")
    # Whole seconds, in UTC: "2026-03-01T12:00:00Z", as forms are usually written.
    return value.astimezone(UTC).replace(microsecond=0)


class FormSigner:
    """A person's Ed25519 signing key, which signs their consent forms and withdrawals."""

    __slots__ = ("_key", "_signer")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._signer = LocalSigner(private_key, "EdDSA")

    @classmethod
    def generate(cls) -> FormSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> FormSigner:
        """A key from unencrypted PKCS#8 PEM (what ``private_pem`` and ``save`` write)."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the PEM holds no Ed25519 private key")  # noqa: TRY004 - bad data
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> FormSigner:
        return cls.from_pem(path.read_bytes())

    @classmethod
    def load_or_create(cls, path: Path) -> FormSigner:
        """The key in ``path``, made and saved there (readable by the owner only) first when
        the file does not exist."""
        if path.exists():
            return cls.load(path)
        signer = cls.generate()
        signer.save(path)
        return signer

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: Path) -> None:
        """Write the key to a new file readable by its owner only; an existing file is never
        overwritten (``FileExistsError``)."""
        # Created with mode 0600 before the key is written into it, so it is never readable
        # by others, not even for a moment.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(self.private_pem())

    @property
    def kid(self) -> str:
        """The key's RFC 7638 thumbprint: the kid its forms name and enrolment returns."""
        return self._signer.kid

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (``kty``, ``crv``, ``x``), to enrol."""
        return public_jwk(self._key.public_key())

    def sign_form(
        self,
        *,
        template_id: str,
        template_sha256: str,
        subject_ref: str,
        assets: Sequence[FormAsset],
        permitted_uses: Sequence[str],
        valid_until: datetime,
        jurisdiction: str,
        prohibited_uses: Sequence[str] = (),
        signer_role: SignerRole = "subject",
        valid_from: datetime | None = None,
        signed_at: datetime | None = None,
        nonce: str | None = None,
    ) -> str:
        """A consent form (compact JWS, ``typ: consent-form+jws``) naming this key by kid.

        ``template_sha256`` is the registered text's hash (``get_template(...).sha256``);
        ``assets`` every photo the consent covers; ``valid_from`` and ``signed_at`` default to
        now, ``nonce`` to 16 random bytes. ``jurisdiction`` is an ISO 3166 code (``DE``,
        ``US-CA``). The service checks the rest (known uses, the template's uses, the
        validity window) and names what it refuses.
        """
        form = _Form(
            version=FORM_VERSION,
            template=_Template(template_id, template_sha256),
            subject_ref=subject_ref,
            signer_role=signer_role,
            assets=assets,
            permitted_uses=permitted_uses,
            prohibited_uses=prohibited_uses,
            valid_from=_moment(valid_from, "valid_from"),
            valid_until=_moment(valid_until, "valid_until"),
            jurisdiction=jurisdiction,
            signed_at=_moment(signed_at, "signed_at"),
            nonce=nonce or secrets.token_urlsafe(16),
        )
        return sign_compact(msgspec.json.encode(form), self._signer, typ=FORM_TYP)

    def sign_withdrawal(self, consent_id: str, *, withdrawn_at: datetime | None = None) -> str:
        """A withdrawal of ``consent_id`` (``typ: consent-withdrawal+jws``); the service
        accepts it only signed by the key that signed the consent's form."""
        payload = _Withdrawal(
            type="consent-withdrawal",
            consent_id=consent_id,
            withdrawn_at=_moment(withdrawn_at, "withdrawn_at"),
        )
        return sign_compact(msgspec.json.encode(payload), self._signer, typ=WITHDRAWAL_TYP)

    def __repr__(self) -> str:
        return f"FormSigner(kid={self.kid!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the private key wherever the pickle goes.
        raise TypeError("FormSigner cannot be pickled; use save() or private_pem()")
