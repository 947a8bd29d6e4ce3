"""keys.c2pa_identity: certificates the C2PA SDK trusts, and refusal of unusable chains."""

from __future__ import annotations

import datetime as dt
import io
import json

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.c2pa_identity import (
    DOCUMENT_SIGNING,
    C2paIdentityInvalid,
    from_certificates,
    from_pem_bundle,
    generate_dev_identity,
    load_identity,
    to_pem_bundle,
)
from keys.signer import LocalSigner

CREATED = {
    "label": "c2pa.actions",
    "data": {
        "actions": [
            {
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation",
            }
        ]
    },
}


def sdk_state(data, anchor_pem):
    settings = {"verify": {"remote_manifest_fetch": False}, "trust": {"trust_anchors": anchor_pem}}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(data), None, context) as reader,
    ):
        return json.loads(reader.json())["validation_state"]


def key_pem(identity):
    return to_pem_bundle(identity).split(b"-----END PRIVATE KEY-----\n")[0] + (
        b"-----END PRIVATE KEY-----\n"
    )


def write_files(tmp_path, identity, *, chain=None, key=None, anchor=None):
    paths = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "anchor.pem"
    paths[0].write_text(chain if chain is not None else identity.chain_pem)
    paths[1].write_bytes(key if key is not None else key_pem(identity))
    paths[2].write_text(anchor if anchor is not None else identity.anchor_pem)
    return paths


def test_dev_identity_has_the_c2pa_certificate_profile(identity):
    (leaf,) = identity.certificates()
    root = x509.load_pem_x509_certificate(identity.anchor_pem.encode())

    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    ekus = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING} <= ekus
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    leaf.verify_directly_issued_by(root)
    assert identity.signer.alg == "ES256"
    assert identity.signer.public_key() == leaf.public_key()


def test_sdk_trusts_a_dev_identity_with_its_root_as_only_anchor(make_image, raw_sign):
    fresh = generate_dev_identity("Fresh Signer", valid_days=1)
    manifest = {"title": "t.jpg", "format": "image/jpeg", "assertions": [CREATED]}
    signed, _ = raw_sign(make_image(), "image/jpeg", manifest, fresh)

    assert sdk_state(signed, fresh.anchor_pem) == "Trusted"
    assert sdk_state(signed, generate_dev_identity("Other").anchor_pem) == "Valid"


def test_repr_never_shows_the_private_key(identity):
    text = repr(identity)
    secret = identity.signer.private_pkcs8_der().hex()

    assert "PRIVATE" not in text
    assert secret not in text


def test_pem_bundle_round_trip_keeps_key_chain_and_anchor(identity, make_image, raw_sign):
    restored = from_pem_bundle(to_pem_bundle(identity))

    assert restored.signer.kid == identity.signer.kid
    assert restored.chain_pem == identity.chain_pem
    assert restored.anchor_pem == identity.anchor_pem
    manifest = {"title": "t.jpg", "format": "image/jpeg", "assertions": [CREATED]}
    signed, _ = raw_sign(make_image(), "image/jpeg", manifest, restored)
    assert sdk_state(signed, identity.anchor_pem) == "Trusted"


def test_only_locally_held_keys_are_serialised(identity):
    class Remote:
        kid, alg = identity.signer.kid, identity.signer.alg

        def public_key(self):
            return identity.signer.public_key()

    remote = from_certificates(identity.chain_pem, Remote(), identity.anchor_pem)

    with pytest.raises(C2paIdentityInvalid) as caught:
        to_pem_bundle(remote)

    assert caught.value.code == "c2pa_identity_invalid"


def test_operator_files_load_into_an_identity(tmp_path, identity):
    chain, key, anchor = write_files(tmp_path, identity)

    loaded = load_identity(chain, key, anchor)

    assert loaded.signer.kid == identity.signer.kid
    assert loaded.anchor_pem == identity.anchor_pem
    assert load_identity(chain, key).anchor_pem is None


def leaf_without_eku():
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no eku")])
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), LocalSigner.from_private_key(
        leaf_key, "ES256"
    )


@pytest.mark.parametrize(
    "case",
    ["other-key", "root-in-chain", "wrong-anchor", "self-signed-leaf", "garbage-chain", "empty"],
)
def test_unusable_operator_files_are_refused(tmp_path, identity, stranger_identity, case):
    overrides = {
        "other-key": {"key": key_pem(stranger_identity)},
        "root-in-chain": {"chain": identity.chain_pem + identity.anchor_pem},
        "wrong-anchor": {"anchor": stranger_identity.anchor_pem},
        "self-signed-leaf": {"chain": identity.anchor_pem},
        "garbage-chain": {
            "chain": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        },
        "empty": {"chain": ""},
    }[case]
    chain, key, anchor = write_files(tmp_path, identity, **overrides)

    with pytest.raises(C2paIdentityInvalid) as caught:
        load_identity(chain, key, anchor)

    assert caught.value.code == "c2pa_identity_invalid"


def test_leaf_without_an_extended_key_usage_c2pa_accepts_is_refused():
    chain_pem, signer = leaf_without_eku()

    with pytest.raises(C2paIdentityInvalid, match="extended key usage"):
        from_certificates(chain_pem, signer)


def test_missing_files_are_refused(tmp_path, identity):
    _, key, _ = write_files(tmp_path, identity)

    with pytest.raises(C2paIdentityInvalid) as caught:
        load_identity(tmp_path / "missing.pem", key)
    assert caught.value.code == "c2pa_identity_invalid"


@pytest.mark.parametrize("data", [b"", b"not pem", b"-----BEGIN PRIVATE KEY-----\nAA\n"])
def test_bundle_without_a_key_is_refused(data):
    with pytest.raises(C2paIdentityInvalid) as caught:
        from_pem_bundle(data)

    assert caught.value.code == "c2pa_identity_invalid"


def test_zero_day_validity_is_refused():
    with pytest.raises(C2paIdentityInvalid):
        generate_dev_identity("x", valid_days=0)
