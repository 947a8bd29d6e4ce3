"""Per-record encryption of personal data, so that erasing a record is deleting one key.

Each consent record (and each enrolled signer) gets its own random AES-256-GCM data key. The
personal fields are sealed under it; the data key is stored wrapped under the master key, in a
row of its own. Erasure deletes that row: the ciphertext may stay (in backups, say) and is
still unreadable, because nobody holds the data key any more. Searching by subject reference
uses a blind index: an HMAC under a key that never leaves the service in clear. Texts are
named by their plain SHA-256 (``text_sha256``): a template's, a form's, a withdrawal's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from registry.consent.errors import DataUnavailableError

if TYPE_CHECKING:
    from keys import MasterKey

__all__ = ["DataKey", "FieldCipher", "SubjectIndex", "text_sha256"]

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_WRAP_AAD: Final = b"consent-data-key:"


def text_sha256(text: str) -> str:
    """SHA-256 of ``text`` as UTF-8, in lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DataKey:
    """One record's data key; its bytes never appear in repr or errors."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self._aead = AESGCM(key)

    def seal(self, value: Any, *, aad: str) -> bytes:
        """``nonce || ciphertext`` of the JSON of ``value``, bound to ``aad`` (the row's id)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, msgspec.json.encode(value), aad.encode())

    def open(self, blob: bytes, *, aad: str) -> Any:
        try:
            plain = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad.encode())
        except InvalidTag:
            raise DataUnavailableError("sealed personal data does not decrypt") from None
        return msgspec.json.decode(plain)

    def seal_bytes(self, data: bytes, *, aad: bytes) -> bytes:
        """``nonce || ciphertext`` of ``data`` itself (an image, say), bound to ``aad``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def open_bytes(self, blob: bytes, *, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise DataUnavailableError("sealed personal data does not decrypt") from None

    def __repr__(self) -> str:
        return f"DataKey({self.key_id!r}, <hidden>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("DataKey cannot be pickled")


class FieldCipher:
    """Makes, wraps and unwraps data keys with the master key."""

    __slots__ = ("_master",)

    def __init__(self, master_key: MasterKey) -> None:
        self._master = master_key

    def new_key(self) -> tuple[DataKey, bytes]:
        """A fresh data key and its wrapped form, to be stored under ``key.key_id``."""
        key_id = "dk_" + secrets.token_urlsafe(16)
        raw = secrets.token_bytes(_KEY_BYTES)
        wrapped = self._master.encrypt(raw, aad=_WRAP_AAD + key_id.encode())
        return DataKey(key_id, raw), wrapped

    def unwrap(self, key_id: str, wrapped: bytes) -> DataKey:
        raw = self._master.decrypt(wrapped, aad=_WRAP_AAD + key_id.encode())
        return DataKey(key_id, raw)

    def wrap_secret(self, name: str, secret: bytes) -> bytes:
        return self._master.encrypt(secret, aad=b"consent-secret:" + name.encode())

    def unwrap_secret(self, name: str, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped, aad=b"consent-secret:" + name.encode())

    def __repr__(self) -> str:
        return "FieldCipher(<hidden>)"


class SubjectIndex:
    """Blind index of subject references: equal references give equal values, per tenant."""

    __slots__ = ("_key",)

    NAME: Final = "subject_index"

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError("the subject index key is 32 bytes")
        self._key = key

    @classmethod
    def generate_key(cls) -> bytes:
        return secrets.token_bytes(_KEY_BYTES)

    def of(self, tenant: str, subject_ref: str) -> bytes:
        message = msgspec.json.encode([tenant, subject_ref])
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def idempotency_key(self, tenant: str, key: str) -> str:
        """What is stored of a caller's ``Idempotency-Key`` (which may name a person): its
        HMAC under the same key, apart from subject references by a label."""
        message = msgspec.json.encode(["idempotency-key", tenant, key])
        return "hk1:" + hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def end_user(self, tenant: str, user_id: str) -> str:
        """What the gate keeps in clear of a request's ``user_id`` so the KPIs can count
        repeat offenders: its HMAC under the same key, apart by a label."""
        message = msgspec.json.encode(["end-user", tenant, user_id])
        return "eu1:" + hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "SubjectIndex(<hidden>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SubjectIndex cannot be pickled")
