"""LocalSigner: key generation, loading, JWS-format signatures, and no key material in repr."""

from __future__ import annotations

import base64
import pickle

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from keys import InvalidJWK, LocalSigner, Signer, thumbprint


@pytest.mark.parametrize(("alg", "kty"), [("EdDSA", "OKP"), ("ES256", "EC")])
def test_generated_signer_names_its_key_by_thumbprint(alg, kty):
    signer = LocalSigner.generate(alg)
    jwk = signer.public_jwk()
    assert jwk["kty"] == kty
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (signer.kid, alg, "sig")
    assert "d" not in jwk
    assert signer.kid == thumbprint(jwk)
    assert signer.alg == alg


def test_local_signer_satisfies_the_protocol():
    signer: Signer = LocalSigner.generate("EdDSA")
    assert len(signer.sign(b"data")) == 64


def test_public_jwk_is_a_copy():
    signer = LocalSigner.generate("EdDSA")
    signer.public_jwk()["kid"] = "changed"
    assert signer.public_jwk()["kid"] == signer.kid


def test_eddsa_signature_verifies():
    signer = LocalSigner.generate("EdDSA")
    key = signer.public_key()
    assert isinstance(key, Ed25519PublicKey)
    key.verify(signer.sign(b"payload"), b"payload")


def test_es256_signature_is_raw_r_s():
    signer = LocalSigner.generate("ES256")
    signature = signer.sign(b"payload")
    assert len(signature) == 64
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, b"payload", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (Ed25519PrivateKey.generate(), "ES256"),
        (ec.generate_private_key(ec.SECP256R1()), "EdDSA"),
        (ec.generate_private_key(ec.SECP384R1()), "ES256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "ES256"),
        ("not a key", "EdDSA"),
        (Ed25519PrivateKey.generate(), "HS256"),
    ],
)
def test_key_and_algorithm_must_fit(key, alg):
    with pytest.raises(InvalidJWK) as info:
        LocalSigner.from_private_key(key, alg)
    assert info.value.code == "invalid_jwk"


def test_generate_rejects_other_algorithms():
    with pytest.raises(InvalidJWK):
        LocalSigner.generate("RS256")  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_pkcs8_round_trip_keeps_the_kid(alg):
    signer = LocalSigner.generate(alg)
    again = LocalSigner.from_pkcs8_der(signer.private_pkcs8_der(), alg)
    assert again.kid == signer.kid


def test_pkcs8_garbage_is_rejected():
    with pytest.raises(InvalidJWK):
        LocalSigner.from_pkcs8_der(b"\x30\x03\x02\x01\x00", "EdDSA")


@pytest.mark.parametrize(
    ("key", "alg"),
    [(Ed25519PrivateKey.generate(), "EdDSA"), (ec.generate_private_key(ec.SECP256R1()), "ES256")],
)
def test_from_pem_file_infers_the_algorithm(tmp_path, key, alg):
    path = tmp_path / "signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = LocalSigner.from_pem_file(path)
    assert signer.alg == alg
    assert signer.kid == LocalSigner.from_private_key(key, alg).kid
    assert LocalSigner.from_pem_file(path, alg).kid == signer.kid


def test_from_pem_file_rejects_encrypted_and_garbage(tmp_path):
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for path in (encrypted, garbage):
        with pytest.raises(InvalidJWK) as info:
            LocalSigner.from_pem_file(path)
        assert info.value.code == "invalid_jwk"


def test_from_pem_file_rejects_rsa_keys(tmp_path):
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InvalidJWK):
        LocalSigner.from_pem_file(path)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_repr_shows_kid_and_alg_only(alg):
    signer = LocalSigner.generate(alg)
    der = signer.private_pkcs8_der()
    text = repr(signer) + str(signer)
    assert text.startswith(f"LocalSigner(kid={signer.kid!r}, alg={alg!r})")
    for encoded in (der.hex(), base64.b64encode(der).decode(), der[-32:].hex()):
        assert encoded not in text
    assert not hasattr(signer, "__dict__")


def test_signer_cannot_be_pickled():
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(LocalSigner.generate("EdDSA"))
