"""Signers: the external-signer interface and the local implementation.

Anything that can produce a JWS signature for a public key it can name is a Signer; a
KMS or HSM backend implements the same four members and the rest of the code cannot tell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, get_args

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys import jwk
from keys.errors import InvalidJWK

if TYPE_CHECKING:
    from pathlib import Path

    from keys.jwk import PublicKey

Alg: TypeAlias = Literal["EdDSA", "ES256"]
SIGNING_ALGORITHMS: frozenset[str] = frozenset(get_args(Alg))
_P256_BYTES = 32

_PrivateKey: TypeAlias = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class Signer(Protocol):
    """Signs JWS signing input with one key it never reveals."""

    @property
    def kid(self) -> str: ...

    @property
    def alg(self) -> str: ...

    def public_key(self) -> PublicKey: ...

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with ``kid``, ``alg`` and ``use: sig``."""
        ...

    def sign(self, data: bytes) -> bytes:
        """A JWS signature over ``data``: raw 64 bytes for EdDSA, raw r||s for ECDSA."""
        ...


class LocalSigner:
    """A Signer over a private key held in this process; its kid is the RFC 7638 thumbprint."""

    __slots__ = ("_alg", "_jwk", "_key", "_kid")

    def __init__(self, key: _PrivateKey, alg: Alg) -> None:
        _check_key_alg(key, alg)
        self._key = key
        self._alg: Alg = alg
        public = jwk.public_jwk(key.public_key())
        self._kid = jwk.thumbprint(public)
        self._jwk = {**public, "kid": self._kid, "alg": alg, "use": "sig"}

    @classmethod
    def generate(cls, alg: Alg) -> LocalSigner:
        if alg == "EdDSA":
            return cls(Ed25519PrivateKey.generate(), alg)
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()), alg)
        raise InvalidJWK(f"cannot generate keys for algorithm {alg!r}; expected EdDSA or ES256")

    @classmethod
    def from_private_key(cls, key: object, alg: Alg) -> LocalSigner:
        if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidJWK("private key must be Ed25519 or EC P-256")
        return cls(key, alg)

    @classmethod
    def from_pkcs8_der(cls, der: bytes, alg: Alg) -> LocalSigner:
        """Load a key written by :meth:`private_pkcs8_der`."""
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError):
            raise InvalidJWK("private key is not unencrypted PKCS#8 DER") from None
        return cls.from_private_key(key, alg)

    @classmethod
    def from_pem_file(cls, path: Path, alg: Alg | None = None) -> LocalSigner:
        """Load an unencrypted PEM private key; ``alg`` defaults to the one the key fits."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError):
            raise InvalidJWK(f"{path.name} is not an unencrypted PEM private key") from None
        if alg is None:
            alg = "EdDSA" if isinstance(key, Ed25519PrivateKey) else "ES256"
        return cls.from_private_key(key, alg)

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def alg(self) -> Alg:
        return self._alg

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.sign(data)
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")

    def private_pkcs8_der(self) -> bytes:
        """The private key as PKCS#8 DER, for encrypted storage only."""
        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"LocalSigner(kid={self._kid!r}, alg={self._alg!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the private key wherever the pickle goes.
        raise TypeError("LocalSigner cannot be pickled")


def _check_key_alg(key: _PrivateKey, alg: str) -> None:
    if alg == "EdDSA" and isinstance(key, Ed25519PrivateKey):
        return
    if (
        alg == "ES256"
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1)
    ):
        return
    raise InvalidJWK(f"key does not fit algorithm {alg!r}; EdDSA needs Ed25519, ES256 needs P-256")
