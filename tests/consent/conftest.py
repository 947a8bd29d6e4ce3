"""Real keys and a raw JWS builder for the consent-format tests.

``keys.jws.sign_compact`` always writes ``{alg, kid, typ}``; the tests also need headers it
would never write (``jwk``/``x5c`` instead of ``kid``, ``alg: none``, ``crit``), so they build
compact JWS here by hand and sign with real keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from keys import b64url_encode, public_jwk

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TEMPLATE_TEXT = "I agree that my photo may be used as described above, until I withdraw."
TEMPLATE_SHA256 = hashlib.sha256(TEMPLATE_TEXT.encode()).hexdigest()
ASSET_SHA256 = hashlib.sha256(b"reference photo bytes").hexdigest()


class RawSigner:
    """A private key that signs JWS input for one algorithm, like a client's wallet would."""

    def __init__(self, key: Any, alg: str) -> None:
        self._key = key
        self.alg = alg

    def public_key(self) -> Any:
        return self._key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        if self.alg == "EdDSA":
            return self._key.sign(data)
        if self.alg in {"ES256", "ES384"}:
            digest, size = (hashes.SHA256(), 32) if self.alg == "ES256" else (hashes.SHA384(), 48)
            r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(digest)))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        pad = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            if self.alg == "PS256"
            else padding.PKCS1v15()
        )
        return self._key.sign(data, pad, hashes.SHA256())

    def __repr__(self) -> str:
        return f"RawSigner(alg={self.alg!r})"


def make_jws(header: dict[str, Any], payload: bytes, signer: RawSigner | None) -> str:
    """A compact JWS with exactly ``header``; unsigned (empty signature) when signer is None."""
    encoded = b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(payload)
    signature = signer.sign(encoded.encode()) if signer is not None else b""
    return encoded + "." + b64url_encode(signature)


def make_hs256(header: dict[str, Any], payload: bytes, secret: bytes) -> str:
    """The classic key-confusion forgery: HMAC keyed with bytes of a public key."""
    encoded = b64url_encode(json.dumps(header).encode()) + "." + b64url_encode(payload)
    mac = hmac.new(secret, encoded.encode(), hashlib.sha256).digest()
    return encoded + "." + b64url_encode(mac)


def public_key_bytes(signer: RawSigner) -> list[bytes]:
    """Every encoding of the public key an HMAC confusion attack would try."""
    key = signer.public_key()
    return [
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(signer.public_jwk()).encode(),
    ]


def flip(token: str, position: int) -> str:
    """``token`` with one base64url character changed, keeping the alphabet."""
    char = token[position]
    replacement = "B" if char != "B" else "C"
    return token[:position] + replacement + token[position + 1 :]


def form_payload(**changes: Any) -> dict[str, Any]:
    """A valid consent form payload (as JSON data), with ``changes`` applied on top."""
    payload: dict[str, Any] = {
        "version": 1,
        "template": {"id": "tmpl-likeness-v1", "sha256": TEMPLATE_SHA256},
        "subject_ref": "subject-7f3a",
        "signer_role": "subject",
        "assets": [{"sha256": ASSET_SHA256, "label": "front"}],
        "permitted_uses": ["reference.generate", "likeness.stylize"],
        "prohibited_uses": ["content.explicit", "ai.training"],
        "valid_from": "2026-03-01T00:00:00Z",
        "valid_until": "2026-09-01T00:00:00+02:00",
        "jurisdiction": "DE",
        "signed_at": "2026-03-01T11:59:00Z",
        "nonce": "n0nce-3b1f9a27c4d8",
    }
    payload.update(changes)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture(scope="session")
def ed25519() -> RawSigner:
    return RawSigner(Ed25519PrivateKey.generate(), "EdDSA")


@pytest.fixture(scope="session")
def other_ed25519() -> RawSigner:
    return RawSigner(Ed25519PrivateKey.generate(), "EdDSA")


@pytest.fixture(scope="session")
def p256() -> RawSigner:
    return RawSigner(ec.generate_private_key(ec.SECP256R1()), "ES256")


@pytest.fixture(scope="session")
def p384() -> RawSigner:
    return RawSigner(ec.generate_private_key(ec.SECP384R1()), "ES384")


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority()


class CertificateAuthority:
    """A root and an intermediate CA that issue consent-signer certificates."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _certificate(
            self.root_key.public_key(), "Consent Root", self.root_key, "Consent Root", ca=True
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = _certificate(
            self.intermediate_key.public_key(),
            "Consent Issuing CA",
            self.root_key,
            "Consent Root",
            ca=True,
        )

    def issue(self, key: Any, *, digital_signature: bool = True, days: int = 365) -> list[str]:
        """An ``x5c`` header value (leaf first) certifying the public ``key``."""
        leaf = _certificate(
            key,
            "Alice Example",
            self.intermediate_key,
            "Consent Issuing CA",
            ca=False,
            digital_signature=digital_signature,
            days=days,
        )
        return [
            base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            for cert in (leaf, self.intermediate)
        ]


def _certificate(
    public: Any,
    subject: str,
    issuer_key: Any,
    issuer: str,
    *,
    ca: bool,
    digital_signature: bool = True,
    days: int = 365,
) -> x509.Certificate:
    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    usage = {
        "digital_signature": digital_signature and not ca,
        "content_commitment": not ca,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": ca,
        "crl_sign": ca,
        "encipher_only": False,
        "decipher_only": False,
    }
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        NOW=NOW,
        TEMPLATE_SHA256=TEMPLATE_SHA256,
        ASSET_SHA256=ASSET_SHA256,
        RawSigner=RawSigner,
        make_jws=make_jws,
        make_hs256=make_hs256,
        public_key_bytes=public_key_bytes,
        flip=flip,
        form_payload=form_payload,
        encode=encode,
    )
