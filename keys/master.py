"""The master key: AES-256-GCM over the signing keys stored in the database.

The database alone never holds a usable private key; an operator keeps the master key in a
file or a secret store, and a database dump without it reveals nothing but public keys.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeyDecryptionFailed, MasterKeyInvalid

if TYPE_CHECKING:
    from pathlib import Path

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_EXPECTED = (
    "master key must be 32 bytes written as base64url or base64 (43 or 44 characters) "
    "or as 64 hexadecimal characters"
)
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{43}=?")


class MasterKey:
    """A 256-bit AES-GCM key; its bytes never appear in repr, str or errors."""

    __slots__ = ("_aead", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyInvalid(_EXPECTED)
        self._key = bytes(key)
        self._aead = AESGCM(self._key)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """Parse base64url/base64 of exactly 32 bytes, or 64 hex characters."""
        value = text.strip()
        if _HEX.fullmatch(value):
            return cls(bytes.fromhex(value))
        if _BASE64.fullmatch(value):
            standard = value.rstrip("=").replace("-", "+").replace("_", "/") + "="
            try:
                return cls(base64.b64decode(standard, validate=True))
            except binascii.Error:
                pass
        raise MasterKeyInvalid(_EXPECTED)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[MasterKey, bool]:
        """Read the key at ``path``, or create it there (mode 0600); True when created.

        The new file appears atomically and never replaces one that another process created
        in the meantime: that one wins and is returned.
        """
        existing = cls._read(path)
        if existing is not None:
            return existing, False
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = cls.generate()
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(key.to_text() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                existing = cls._read(path)
                if existing is None:
                    raise
                return existing, False
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return key, True

    @classmethod
    def _read(cls, path: Path) -> MasterKey | None:
        try:
            return cls.from_text(path.read_text(encoding="ascii"))
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, MasterKeyInvalid):
            raise MasterKeyInvalid(f"{path.name}: {_EXPECTED}") from None

    def to_text(self) -> str:
        """Unpadded base64url, the form :meth:`from_text` reads first."""
        return base64.urlsafe_b64encode(self._key).rstrip(b"=").decode("ascii")

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """``nonce || ciphertext || tag`` with a fresh random 96-bit nonce."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        if len(blob) < NONCE_BYTES + _TAG_BYTES:
            raise KeyDecryptionFailed("encrypted key is too short")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise KeyDecryptionFailed(
                "encrypted key does not decrypt: wrong master key, or the data was altered"
            ) from None

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("MasterKey cannot be pickled")
