"""The C2PA signing identity: an X.509 certificate chain and the Signer for its leaf key.

C2PA validators trust a manifest only when its signing certificate chains to a configured
anchor and carries the C2PA certificate profile (v3, not a CA, critical digitalSignature key
usage, an accepted extended key usage, key identifiers). ``generate_dev_identity`` makes a
local root CA and such a leaf for development and tests; ``load_identity`` and
``from_certificates`` take an operator's chain (the latter with any Signer, e.g. a KMS key).

The root is the trust anchor and is never part of ``chain_pem``: validators take anchors from
their own configuration, and a chain that carries its own root would invite trusting it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from keys.errors import KeysError
from keys.signer import Alg, LocalSigner, Signer

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "C2PA_EXTENDED_KEY_USAGES",
    "C2paIdentity",
    "C2paIdentityInvalid",
    "from_certificates",
    "from_pem_bundle",
    "generate_dev_identity",
    "load_identity",
    "to_pem_bundle",
]

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# The extended key usages the C2PA certificate profile accepts for claim signing; a leaf
# must carry at least one of them (and never anyExtendedKeyUsage).
C2PA_EXTENDED_KEY_USAGES: frozenset[ObjectIdentifier] = frozenset(
    {
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        DOCUMENT_SIGNING,
        ObjectIdentifier("1.3.6.1.4.1.311.76.59.1.9"),  # Microsoft C2PA signing
        ObjectIdentifier("1.3.6.1.4.1.62558.2.1"),  # C2PA claim signing
    }
)
_CLOCK_SKEW = dt.timedelta(minutes=5)
_MAX_CHAIN = 8


class C2paIdentityInvalid(KeysError):
    """A certificate chain, key or bundle does not form a usable C2PA signing identity."""

    code = "c2pa_identity_invalid"


class C2paIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """A C2PA signing identity.

    ``chain_pem``: the end-entity certificate first, then intermediates, never the root.
    ``anchor_pem``: the root certificate a verifier configures as its trust anchor (None when
    the operator's anchor is on a public trust list and was not supplied).
    ``signer``: signs with the end-entity key; its ``alg`` is ES256 or EdDSA.
    """

    chain_pem: str
    anchor_pem: str | None
    signer: Signer

    def certificates(self) -> list[x509.Certificate]:
        """The chain as certificate objects, leaf first."""
        return x509.load_pem_x509_certificates(self.chain_pem.encode("ascii"))


def generate_dev_identity(
    common_name: str,
    *,
    organization: str = "Consent Registry (development)",
    valid_days: int = 365,
) -> C2paIdentity:
    """A fresh root CA and ES256 leaf for development; the root is the only anchor needed."""
    if valid_days < 1:
        raise C2paIdentityInvalid("valid_days must be at least 1")
    now = dt.datetime.now(dt.UTC)
    not_before = now - _CLOCK_SKEW
    not_after = now + dt.timedelta(days=valid_days)

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{common_name} Root CA", organization)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return C2paIdentity(
        chain_pem=_pem(leaf),
        anchor_pem=_pem(root),
        signer=LocalSigner.from_private_key(leaf_key, "ES256"),
    )


def from_certificates(
    chain_pem: str, signer: Signer, anchor_pem: str | None = None
) -> C2paIdentity:
    """An identity from an operator's chain and any Signer holding the leaf's key."""
    chain = _parse_certificates(chain_pem, "chain")
    if not chain:
        raise C2paIdentityInvalid("the chain holds no certificate")
    if len(chain) > _MAX_CHAIN:
        raise C2paIdentityInvalid(f"the chain holds more than {_MAX_CHAIN} certificates")
    anchor = None
    if anchor_pem is not None:
        anchors = _parse_certificates(anchor_pem, "anchor")
        if len(anchors) != 1:
            raise C2paIdentityInvalid("the anchor must be exactly one certificate")
        anchor = anchors[0]
    _check_leaf(chain[0], signer)
    _check_chain(chain, anchor)
    return C2paIdentity(
        chain_pem="".join(_pem(cert) for cert in chain),
        anchor_pem=None if anchor is None else _pem(anchor),
        signer=signer,
    )


def load_identity(
    chain_pem_path: Path, key_pem_path: Path, anchor_pem_path: Path | None = None
) -> C2paIdentity:
    """An identity from operator-provided PEM files (unencrypted PKCS#8 or SEC1 key)."""
    try:
        chain_pem = chain_pem_path.read_text("ascii")
        anchor_pem = None if anchor_pem_path is None else anchor_pem_path.read_text("ascii")
    except OSError as exc:
        raise C2paIdentityInvalid(f"cannot read certificate file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise C2paIdentityInvalid("a certificate file is not PEM text") from None
    try:
        signer = LocalSigner.from_pem_file(key_pem_path)
    except OSError as exc:
        raise C2paIdentityInvalid(f"cannot read key file: {exc.strerror}") from None
    return from_certificates(chain_pem, signer, anchor_pem)


def to_pem_bundle(identity: C2paIdentity) -> bytes:
    """Key, chain and anchor as one PEM text, for the caller to store encrypted.

    Only identities whose key is held in this process (LocalSigner) can be written out.
    """
    if not isinstance(identity.signer, LocalSigner):
        raise C2paIdentityInvalid("only a locally held key can be serialised")
    key = serialization.load_der_private_key(identity.signer.private_pkcs8_der(), password=None)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + identity.chain_pem.encode("ascii") + (identity.anchor_pem or "").encode()


def from_pem_bundle(data: bytes) -> C2paIdentity:
    """Read a bundle written by :func:`to_pem_bundle`; the self-signed certificate is the anchor."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise C2paIdentityInvalid("the bundle holds no unencrypted PEM private key") from None
    alg: Alg = "EdDSA" if isinstance(key.public_key(), Ed25519PublicKey) else "ES256"
    signer = LocalSigner.from_private_key(key, alg)
    certificates = _parse_certificates(data.decode("ascii", errors="replace"), "bundle")
    anchors = [cert for cert in certificates if _self_signed(cert)]
    chain = [cert for cert in certificates if not _self_signed(cert)]
    if len(anchors) > 1:
        raise C2paIdentityInvalid("the bundle holds more than one self-signed certificate")
    return from_certificates(
        "".join(_pem(cert) for cert in chain),
        signer,
        _pem(anchors[0]) if anchors else None,
    )


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _parse_certificates(pem: str, what: str) -> list[x509.Certificate]:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode("ascii", errors="replace"))
    except ValueError:
        raise C2paIdentityInvalid(f"the {what} is not valid PEM certificates") from None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _public_der(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | Ed25519PublicKey):
        raise C2paIdentityInvalid("the leaf key must be EC P-256 or Ed25519")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_leaf(leaf: x509.Certificate, signer: Signer) -> None:
    if _public_der(leaf.public_key()) != _public_der(signer.public_key()):
        raise C2paIdentityInvalid("the key does not match the leaf certificate")
    if signer.alg not in {"ES256", "EdDSA"}:
        raise C2paIdentityInvalid(f"signer algorithm {signer.alg!r} cannot sign C2PA claims")
    if _self_signed(leaf):
        raise C2paIdentityInvalid("the leaf is self-signed; C2PA needs a CA-issued leaf")
    if leaf.version is not x509.Version.v3:
        raise C2paIdentityInvalid("the leaf must be an X.509 v3 certificate")
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise C2paIdentityInvalid("the leaf certificate is not valid now")
    _check_leaf_extensions(leaf.extensions)


def _check_leaf_extensions(extensions: x509.Extensions) -> None:
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise C2paIdentityInvalid("the leaf must not be a CA certificate")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise C2paIdentityInvalid("the leaf has no key usage extension") from None
    if not usage.digital_signature:
        raise C2paIdentityInvalid("the leaf key usage lacks digitalSignature")
    try:
        ekus = set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        raise C2paIdentityInvalid("the leaf has no extended key usage extension") from None
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ekus:
        raise C2paIdentityInvalid("the leaf must not carry anyExtendedKeyUsage")
    if not ekus & C2PA_EXTENDED_KEY_USAGES:
        raise C2paIdentityInvalid("the leaf carries no extended key usage C2PA accepts")


def _check_chain(chain: list[x509.Certificate], anchor: x509.Certificate | None) -> None:
    for cert in chain[1:]:
        if _self_signed(cert):
            raise C2paIdentityInvalid("the chain must not include the root; pass it as anchor")
    issuers = [*chain[1:], *([anchor] if anchor is not None else [])]
    for child, issuer in zip(chain, issuers, strict=False):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise C2paIdentityInvalid(
                f"certificate {child.subject.rfc4514_string()[:200]!r} is not issued by the next"
            ) from None
