"""RFC 3161 timestamps on signed outputs, against a real local TSA (``openssl ts -reply``),
and the CAWG training-and-data-mining assertion, each read back with the c2pa SDK."""

from __future__ import annotations

import datetime as dt
import io
import json
import time

import c2pa
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.c2pa_identity import from_certificates
from keys.signer import LocalSigner
from tests.tsa import TSA_NAME, local_tsa
from verifier import (
    SigningFailed,
    TimestampAuthority,
    TimestampUnavailable,
    TrustSettings,
    TrustSettingsInvalid,
    sign,
    verify,
)

tsa = local_tsa


def sdk_read(data: bytes, anchors_pem: str) -> dict:
    settings = {
        "verify": {"remote_manifest_fetch": False, "verify_trust": True},
        "trust": {"trust_anchors": anchors_pem},
    }
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(data), None, context) as reader,
    ):
        return json.loads(reader.json())


def codes(store: dict, kind: str) -> set[str]:
    return {entry["code"] for entry in store["validation_results"]["activeManifest"][kind]}


def authority(tsa) -> TimestampAuthority:
    return TimestampAuthority(url=tsa.url, anchors_pem=tsa.anchor_pem)


def test_a_signed_output_carries_a_timestamp_the_sdk_trusts_with_the_tsa_anchor(
    tsa, identity, facts, make_image
):
    signed = sign(make_image(), "image/jpeg", facts, identity, timestamp=authority(tsa))

    store = sdk_read(signed, identity.anchor_pem + tsa.anchor_pem)
    assert store["validation_state"] == "Trusted"
    assert {"timeStamp.validated", "timeStamp.trusted", "signingCredential.trusted"} <= codes(
        store, "success"
    )
    # The time in the signature info is the TSA's genTime; without a TSA there is none.
    assert store["manifests"][store["active_manifest"]]["signature_info"]["time"]
    assert tsa.requests == 1


def test_without_the_tsa_anchor_the_sdk_says_untrusted_but_the_signature_stays_trusted(
    tsa, identity, facts, make_image
):
    signed = sign(make_image(), "image/jpeg", facts, identity, timestamp=authority(tsa))

    store = sdk_read(signed, identity.anchor_pem)
    assert store["validation_state"] == "Trusted"
    assert "timeStamp.untrusted" in codes(store, "informational")
    assert "timeStamp.trusted" not in codes(store, "success")


def test_the_report_names_the_time_the_authority_and_its_trust(tsa, identity, facts, make_image):
    signed = sign(make_image(), "image/jpeg", facts, identity, timestamp=authority(tsa))

    untrusted = verify(signed, "image/jpeg", TrustSettings.from_pem(identity.anchor_pem))
    kept_apart = verify(
        signed,
        "image/jpeg",
        TrustSettings.from_pem(identity.anchor_pem, timestamp_anchors_pem=tsa.anchor_pem),
    )

    assert untrusted.state == kept_apart.state == "trusted"
    assert untrusted.timestamp is not None
    assert untrusted.timestamp.trusted is False
    assert untrusted.timestamp.authority == TSA_NAME
    assert "timeStamp.untrusted" in untrusted.timestamp.codes
    assert kept_apart.timestamp is not None
    assert kept_apart.timestamp.trusted is True
    assert kept_apart.timestamp.authority == TSA_NAME
    assert kept_apart.timestamp.time == kept_apart.signing_time
    assert "timeStamp.trusted" in kept_apart.timestamp.codes
    assert msgspec.json.decode(msgspec.json.encode(kept_apart))["timestamp"]["trusted"] is True


def test_the_tsa_anchor_never_makes_a_claim_signer_trusted(
    tsa, stranger_identity, facts, make_image
):
    signed = sign(make_image(), "image/jpeg", facts, stranger_identity, timestamp=authority(tsa))

    report = verify(
        signed, "image/jpeg", TrustSettings.from_pem(timestamp_anchors_pem=tsa.anchor_pem)
    )

    assert report.state == "valid_untrusted"
    assert report.timestamp is not None
    assert report.timestamp.trusted is True


def short_lived_identity(seconds: int):
    """A C2PA identity whose leaf certificate expires ``seconds`` from now."""
    now = dt.datetime.now(dt.UTC)
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Short-lived Root")])

    def usage(*, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False)  # noqa: FBT003

    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Short-lived Signer")]))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(seconds=seconds))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
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
    pem = serialization.Encoding.PEM
    return from_certificates(
        leaf.public_bytes(pem).decode(),
        LocalSigner.from_private_key(leaf_key, "ES256"),
        root.public_bytes(pem).decode(),
    ), leaf.not_valid_after_utc


def test_a_trusted_timestamp_keeps_an_output_trusted_after_its_certificate_expires(
    tsa, facts, make_image
):
    identity, expires = short_lived_identity(2)
    stamped = sign(make_image(), "image/jpeg", facts, identity, timestamp=authority(tsa))
    plain = sign(make_image(), "image/jpeg", facts, identity)
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)
    apart = TrustSettings.from_pem(identity.anchor_pem, timestamp_anchors_pem=tsa.anchor_pem)

    unstamped = verify(plain, "image/jpeg", apart)
    years_later = verify(stamped, "image/jpeg", apart)
    without_tsa = verify(stamped, "image/jpeg", TrustSettings.from_pem(identity.anchor_pem))

    assert unstamped.state == "invalid"
    assert "signingCredential.expired" in unstamped.failure_codes
    assert without_tsa.state == "invalid"
    assert years_later.state == "trusted", years_later.failure_codes
    assert years_later.timestamp is not None
    assert years_later.timestamp.trusted is True
    # The TSA's root still vouches for no signer: the wrong claim anchor stays untrusted.
    stranger = TrustSettings.from_pem(timestamp_anchors_pem=tsa.anchor_pem)
    assert verify(stamped, "image/jpeg", stranger).state != "trusted"


def test_an_output_signed_without_a_tsa_reports_no_timestamp(identity, trust, facts, make_image):
    report = verify(sign(make_image(), "image/jpeg", facts, identity), "image/jpeg", trust)

    assert report.state == "trusted"
    assert report.timestamp is None
    assert report.signing_time is None


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "bad_reply"),
        ("wrong_nonce", "bad_reply"),
        ("untrusted", "untrusted"),
        ("error", "unreachable"),
    ],
)
def test_a_misbehaving_tsa_fails_the_signing(tsa, identity, facts, make_image, mode, reason):
    tsa.mode = mode

    with pytest.raises(TimestampUnavailable) as caught:
        sign(make_image(), "image/jpeg", facts, identity, timestamp=authority(tsa))

    assert caught.value.code == "timestamp_unavailable"
    assert caught.value.reason == reason
    assert isinstance(caught.value, SigningFailed)
    assert "nothing was signed" in caught.value.message
    assert tsa.url not in caught.value.message
    if mode == "wrong_nonce":
        assert "nonce" in caught.value.message


def test_a_tsa_that_is_down_fails_the_signing(tsa, identity, facts, make_image):
    stamping = authority(tsa)
    tsa.stop()

    with pytest.raises(TimestampUnavailable) as caught:
        sign(make_image(), "image/jpeg", facts, identity, timestamp=stamping)

    assert caught.value.reason == "unreachable"


@pytest.mark.parametrize(
    ("url", "anchors"),
    [
        ("ftp://tsa.example/", "anchor"),
        ("https://tsa.example/", ""),
        ("https://tsa.example/", "not a certificate"),
    ],
)
def test_a_timestamp_authority_needs_an_http_url_and_pem_anchors(tsa, url, anchors):
    with pytest.raises(TrustSettingsInvalid):
        TimestampAuthority(url=url, anchors_pem=tsa.anchor_pem if anchors == "anchor" else anchors)


def training_entries(data: bytes, anchor_pem: str) -> dict:
    store = sdk_read(data, anchor_pem)
    manifest = store["manifests"][store["active_manifest"]]
    (assertion,) = [a for a in manifest["assertions"] if a["label"] == "cawg.training-mining"]
    return assertion["data"]["entries"]


def test_training_is_not_allowed_unless_every_consent_grants_it(identity, facts, make_image):
    entries = training_entries(
        sign(make_image(), "image/jpeg", facts, identity), identity.anchor_pem
    )

    assert entries == {
        "cawg.ai_generative_training": {"use": "notAllowed"},
        "cawg.ai_training": {"use": "notAllowed"},
        "cawg.data_mining": {"use": "notAllowed"},
        "cawg.ai_inference": {"use": "notAllowed"},
    }


def test_granted_training_is_constrained_to_the_consents_staying_valid(
    identity, trust, facts, make_image
):
    granted = msgspec.structs.replace(facts, training_granted=True)
    signed = sign(make_image(), "image/jpeg", granted, identity)

    entries = training_entries(signed, identity.anchor_pem)
    for key in ("cawg.ai_generative_training", "cawg.ai_training"):
        assert entries[key]["use"] == "constrained"
        assert "org.consent-registry.consent" in entries[key]["constraint_info"]
    assert entries["cawg.data_mining"] == {"use": "notAllowed"}
    report = verify(signed, "image/jpeg", trust)
    assert {(e.key, e.use) for e in report.training_mining} == {
        ("cawg.ai_generative_training", "constrained"),
        ("cawg.ai_training", "constrained"),
        ("cawg.data_mining", "notAllowed"),
        ("cawg.ai_inference", "notAllowed"),
    }
