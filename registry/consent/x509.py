"""Consent signers identified by an X.509 chain (JWS ``x5c``) to configured anchors.

Path building and validation are cryptography's (RFC 5280 with its CA profile); the leaf
profile is relaxed to what a person's or an organisation's signing certificate carries: it
needs ``digitalSignature`` in its key usage and no particular extended key usage or name.
Nothing is fetched: a chain that does not reach an anchor with the certificates given fails.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from keys.jwk import MIN_RSA_BITS
from registry.consent.errors import SignerKeyInvalidError, SignerUntrustedError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from keys.jwk import PublicKey

__all__ = ["MAX_CHAIN_CERTIFICATES", "verify_x5c"]

MAX_CHAIN_CERTIFICATES = 5
_MAX_CERTIFICATE_BYTES = 16 * 1024
_CURVES = (ec.SECP256R1, ec.SECP384R1)


def verify_x5c(
    x5c: Any, *, anchors: Sequence[x509.Certificate], now: datetime
) -> tuple[PublicKey, x509.Certificate]:
    """The leaf's public key and certificate, once ``x5c`` chains to one of ``anchors``.

    ``x5c`` is the header value as parsed: base64 (not base64url) DER, leaf first.
    Raises signer_untrusted, or signer_key_invalid for a leaf key we do not accept.
    """
    certificates = _parse_chain(x5c)
    if not anchors:
        raise SignerUntrustedError("no X.509 anchors are configured for consent signers")
    leaf, intermediates = certificates[0], certificates[1:]
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(now)
        .max_chain_depth(MAX_CHAIN_CERTIFICATES)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError:
        raise SignerUntrustedError(
            "x5c does not chain to a configured consent-signer anchor"
        ) from None
    return _accepted_key(leaf), leaf


def _parse_chain(x5c: Any) -> list[x509.Certificate]:
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_CHAIN_CERTIFICATES:
        raise SignerUntrustedError(
            f"x5c must be an array of 1 to {MAX_CHAIN_CERTIFICATES} certificates"
        )
    certificates = []
    for entry in x5c:
        if not isinstance(entry, str) or len(entry) > _MAX_CERTIFICATE_BYTES * 4 // 3 + 4:
            raise SignerUntrustedError("x5c entries must be base64 DER certificates")
        try:
            certificates.append(
                x509.load_der_x509_certificate(base64.b64decode(entry, validate=True))
            )
        except (binascii.Error, ValueError):
            raise SignerUntrustedError("x5c entries must be base64 DER certificates") from None
    return certificates


def _accepted_key(leaf: x509.Certificate) -> PublicKey:
    key = leaf.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise SignerKeyInvalidError(
        f"certificate key must be Ed25519, EC P-256/P-384 or RSA of {MIN_RSA_BITS}+ bits"
    )


def _require_digital_signature(
    _policy: Policy, _cert: x509.Certificate, ext: x509.KeyUsage
) -> None:
    if not ext.digital_signature:
        raise ValueError("signing certificate lacks the digitalSignature key usage")


_EE_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature
)
