"""verify(): the shared C2PA fixtures, bad bytes, remote manifests, trust settings."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import c2pa
import pytest

from verifier import TrustSettings, TrustSettingsInvalid, verify
from verifier.report import MAX_TEXT

# (file, state without anchors, state with test-trust-anchors.pem, failure code expected)
FIXTURE_STATES = [
    ("C.jpg", "valid_untrusted", "trusted", None),
    ("CA.jpg", "valid_untrusted", "trusted", None),
    ("boxhash.jpg", "valid_untrusted", "trusted", None),
    (
        "C_with_CAWG_data.jpg",
        "valid_untrusted",
        "valid_untrusted",
        "cawg.x509.credential.untrusted",
    ),
    ("XCA.jpg", "invalid", "invalid", "assertion.dataHash.mismatch"),
    ("E-sig-CA.jpg", "invalid", "invalid", "claimSignature.mismatch"),
    ("no_manifest.jpg", "absent", "absent", None),
    ("libpng-test.png", "absent", "absent", None),
    ("sample1.png", "absent", "absent", None),
]
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
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


@pytest.fixture(scope="module")
def test_anchors(fixtures_dir):
    return TrustSettings.from_pem_files(fixtures_dir / "test-trust-anchors.pem")


@pytest.mark.parametrize(("name", "untrusted", "trusted", "code"), FIXTURE_STATES)
def test_shared_fixtures_get_their_documented_state(
    fixtures_dir, test_anchors, name, untrusted, trusted, code
):
    data = (fixtures_dir / name).read_bytes()
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]

    without = verify(data, media_type, TrustSettings())
    with_anchors = verify(data, media_type, test_anchors)

    assert without.state == untrusted
    assert with_anchors.state == trusted
    if code is not None:
        assert code in with_anchors.failure_codes
    if untrusted == "valid_untrusted":
        assert "signingCredential.untrusted" in without.failure_codes
    if trusted == "trusted":
        assert with_anchors.failure_codes == ()
        assert "signingCredential.trusted" in with_anchors.success_codes


def test_fixture_summary_names_signer_actions_and_ingredients(fixtures_dir, test_anchors):
    report = verify((fixtures_dir / "CA.jpg").read_bytes(), "image/jpeg", test_anchors)

    assert report.signer is not None
    assert report.signer.common_name == "C2PA Signer"
    assert report.signer.issuer == "C2PA Test Signing Cert"
    assert report.signer.alg == "Ps256"
    assert report.signing_time == "2024-08-06T21:53:37+00:00"
    assert report.claim_generator == "make_test_images/0.33.1 c2pa-rs/0.33.1"
    assert [action.action for action in report.actions] == [
        "c2pa.opened",
        "c2pa.color_adjustments",
    ]
    assert report.ai_generated is False
    (ingredient,) = report.ingredients
    assert ingredient.title == "A.jpg"
    assert ingredient.relationship == "parentOf"
    assert ingredient.state == "absent"
    assert "ingredient.unknownProvenance" in ingredient.informational_codes


def test_cawg_identity_and_training_mining_are_reported(fixtures_dir, test_anchors):
    report = verify((fixtures_dir / "C_with_CAWG_data.jpg").read_bytes(), None, test_anchors)

    (identity,) = report.cawg_identities
    assert identity.sig_type == "cawg.x509.cose"
    assert identity.common_name == "C2PA Signer"
    assert identity.failure_codes == ("cawg.x509.credential.untrusted",)
    uses = {entry.key: entry.use for entry in report.training_mining}
    assert uses == {"cawg.ai_inference": "notAllowed", "cawg.ai_generative_training": "notAllowed"}
    # The fixture's source type has a leading space; it is reported trimmed.
    assert report.digital_source_type == (
        "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    )


@pytest.mark.parametrize(
    ("data", "state", "code"),
    [
        (os.urandom(4096), "unsupported", "c2pa.format_unsupported"),
        (b"", "unsupported", "c2pa.format_unsupported"),
        (b"GIF89a" + bytes(64), "invalid", "c2pa.other"),
    ],
    ids=["random", "empty", "broken-gif"],
)
def test_bytes_that_are_no_readable_asset_get_a_state(trust, data, state, code):
    report = verify(data, "image/jpeg", trust)

    assert report.state == state
    assert report.failure_codes == (code,)
    assert report.detail


@pytest.mark.parametrize("length", [100, 2000, 30000])
def test_truncated_signed_jpeg_is_invalid(fixtures_dir, test_anchors, length):
    data = (fixtures_dir / "C.jpg").read_bytes()[:length]

    report = verify(data, "image/jpeg", test_anchors)

    assert report.state == "invalid"
    assert report.failure_codes == ("c2pa.other",)


def test_image_truncated_after_its_manifest_fails_the_data_hash(fixtures_dir, test_anchors):
    data = (fixtures_dir / "C.jpg").read_bytes()

    report = verify(data[: len(data) // 2], "image/jpeg", test_anchors)

    assert report.state == "invalid"
    assert "assertion.dataHash.mismatch" in report.failure_codes


def test_declared_type_that_disagrees_with_the_bytes_does_not_change_the_result(
    fixtures_dir, test_anchors
):
    data = (fixtures_dir / "C.jpg").read_bytes()

    assert verify(data, "image/png", test_anchors).state == "trusted"
    assert verify(data, "text/plain", test_anchors).state == "trusted"


@pytest.fixture
def remote_only(identity, make_image, raw_sign, http_server):
    """A JPEG whose manifest is only referenced by URL, and the manifest that URL serves."""
    url = f"{http_server.base_url}/manifests/1.c2pa"
    manifest = {
        "claim_generator_info": [{"name": "test", "version": "1"}],
        "title": "remote.jpg",
        "format": "image/jpeg",
        "assertions": [CREATED],
    }
    data, manifest_bytes = raw_sign(
        make_image(), "image/jpeg", manifest, identity, remote_url=url, embed=False
    )
    return data, manifest_bytes, url


def test_remote_only_manifest_is_reported_without_any_request(remote_only, trust, http_server):
    data, manifest_bytes, url = remote_only
    http_server.routes["/manifests/1.c2pa"] = manifest_bytes

    report = verify(data, "image/jpeg", trust)

    assert report.state == "remote_manifest"
    assert report.remote_url == url
    assert http_server.requests == []


def test_control_the_sdk_left_to_itself_would_fetch_the_remote_manifest(remote_only, http_server):
    # Shows the server above would have seen a request had verify() let the SDK fetch.
    data, manifest_bytes, _ = remote_only
    http_server.routes["/manifests/1.c2pa"] = manifest_bytes
    context = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": True}})

    with c2pa.Reader("image/jpeg", io.BytesIO(data), None, context) as reader:
        reader.json()

    assert http_server.requests == ["/manifests/1.c2pa"]


def test_remote_manifest_from_an_allowed_host_is_fetched_and_validated(
    remote_only, identity, http_server
):
    data, manifest_bytes, url = remote_only
    http_server.routes["/manifests/1.c2pa"] = manifest_bytes
    trust = TrustSettings.from_pem(identity.anchor_pem, allow_remote_hosts=["127.0.0.1"])

    report = verify(data, "image/jpeg", trust)

    assert report.state == "trusted"
    assert report.remote_url == url
    assert http_server.requests == ["/manifests/1.c2pa"]


def test_remote_manifest_fetch_failure_is_a_state(remote_only, identity, http_server):
    data, _, _ = remote_only  # the server has no route: 404
    trust = TrustSettings.from_pem(identity.anchor_pem, allow_remote_hosts=["127.0.0.1"])

    report = verify(data, "image/jpeg", trust)

    assert report.state == "remote_manifest"
    assert report.failure_codes == ("c2pa.remote_manifest.fetch_failed",)


def test_remote_manifest_larger_than_the_cap_is_not_used(remote_only, identity, http_server):
    data, manifest_bytes, _ = remote_only
    http_server.routes["/manifests/1.c2pa"] = manifest_bytes
    trust = TrustSettings(
        anchors_pem=identity.anchor_pem,
        allow_remote_hosts=frozenset({"127.0.0.1"}),
        remote_max_bytes=len(manifest_bytes) - 1,
    )

    report = verify(data, "image/jpeg", trust)

    assert report.state == "remote_manifest"
    assert report.failure_codes == ("c2pa.remote_manifest.too_large",)


@pytest.mark.parametrize(
    "pem",
    [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_unusable_trust_anchors_are_refused(pem):
    with pytest.raises(TrustSettingsInvalid) as caught:
        TrustSettings.from_pem(pem)

    assert caught.value.code == "trust_settings_invalid"


def test_unreadable_trust_anchor_file_is_refused(tmp_path):
    with pytest.raises(TrustSettingsInvalid) as caught:
        TrustSettings.from_pem_files(tmp_path / "missing.pem")

    assert caught.value.code == "trust_settings_invalid"


def test_anchors_combine_from_several_bundles(fixtures_dir, identity, make_image, raw_sign):
    trust = TrustSettings.from_pem(
        (fixtures_dir / "test-trust-anchors.pem").read_text(), identity.anchor_pem
    )
    manifest = {"title": "x.jpg", "format": "image/jpeg", "assertions": [CREATED]}
    ours, _ = raw_sign(make_image(), "image/jpeg", manifest, identity)

    assert verify(ours, "image/jpeg", trust).state == "trusted"
    assert verify((fixtures_dir / "C.jpg").read_bytes(), "image/jpeg", trust).state == "trusted"


def test_very_long_manifest_strings_are_bounded_and_marked(identity, trust, make_image, raw_sign):
    long_text = "A" * 100_000 + "\x1b[31m\u202e"
    manifest = {
        "claim_generator_info": [{"name": long_text, "version": "1"}],
        "title": long_text,
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                            + long_text,
                            "softwareAgent": {"name": long_text},
                        }
                    ]
                },
            }
        ],
    }
    data, _ = raw_sign(make_image(), "image/jpeg", manifest, identity)

    report = verify(data, "image/jpeg", trust)

    assert report.state == "trusted"
    (action,) = report.actions
    for text in (report.claim_generator, action.software_agent, action.digital_source_type):
        assert text is not None
        assert len(text) < MAX_TEXT + 40
        assert text.endswith("chars]")
        assert "[truncated" in text


def test_concurrent_verifications_keep_their_own_trust_settings(fixtures_dir, test_anchors):
    # Settings live in a per-call SDK Context: threads with different anchors must not mix.
    data = (fixtures_dir / "C.jpg").read_bytes()
    settings = [test_anchors, TrustSettings()] * 16

    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda trust: verify(data, "image/jpeg", trust).state, settings))

    assert states == ["trusted", "valid_untrusted"] * 16
