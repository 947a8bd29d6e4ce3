"""sign(): our manifests read back trusted, and every tampering is caught."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json

import c2pa
import msgspec
import pytest
from PIL import Image

from verifier import (
    GenerationFactsInvalid,
    ImageFormatNotAllowed,
    ImageTypeMismatch,
    IngredientRef,
    SigningFailed,
    TrustSettings,
    sign,
    verify,
)
from verifier.report import ConsentRef, DecisionRef

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def _ingredient(**changes):
    fields = {
        "title": "reference",
        "consent_id": "cns_1",
        "asset_id": "ast_1",
        "status_list_uri": "https://registry.example/status/1",
    }
    return IngredientRef(**{**fields, **changes})


def sdk_read(data, media_type, anchor_pem):
    settings = {"verify": {"remote_manifest_fetch": False}, "trust": {"trust_anchors": anchor_pem}}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader(media_type, io.BytesIO(data), None, context) as reader,
    ):
        return json.loads(reader.json())


def jpeg_segments(data):
    """(marker, start, end) of each header segment of a JPEG, up to and including SOS."""
    segments, position = [], 2
    while True:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append((marker, position, position + 2 + length))
        if marker == 0xDA:
            return segments
        position += 2 + length


def test_the_package_version_is_read_once_per_process(
    identity, trust, facts, make_image, monkeypatch
):
    read: list[str] = []
    real = importlib.metadata.version

    def version(name: str) -> str:
        read.append(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    # The module, not the function the package exports under the same name.
    importlib.import_module("verifier.sign")._version.cache_clear()
    image = make_image("image/png")
    signed = [sign(image, "image/png", facts, identity) for _ in range(3)]

    assert read == ["consent-registry"]
    report = verify(signed[-1], "image/png", trust)
    assert report.claim_generator == f"consent-registry {real('consent-registry')}"


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/webp"])
def test_signed_output_reads_back_trusted_with_only_our_anchor(
    identity, trust, facts, make_image, media_type
):
    signed = sign(make_image(media_type), media_type, facts, identity)

    report = verify(signed, media_type, trust)

    assert report.state == "trusted", report.failure_codes
    assert report.failure_codes == ()
    assert report.signer is not None
    assert report.signer.common_name == "Registry Test Signer"
    assert report.claim_generator is not None
    assert report.claim_generator.startswith("consent-registry ")
    (action,) = report.actions
    assert action.action == "c2pa.created"
    assert action.digital_source_type == TRAINED
    assert action.software_agent == "example-diffusion-2"
    assert report.ai_generated is True
    assert report.generation_id == "gen-0001"
    assert report.consents == facts.consent_refs
    assert report.decision == facts.decision
    (ingredient,) = report.ingredients
    # Named by its consent and status list, never by its hash.
    assert ingredient.instance_id == "consent:cns_1/ast_1"
    assert ingredient.informational_uri == "https://registry.example/status/1"
    assert ingredient.title == "reference.jpg"
    assert ingredient.relationship == "inputTo"
    assert ingredient.state == "absent"


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/webp"])
def test_the_sdk_itself_with_our_anchor_as_only_anchor_says_trusted(
    identity, facts, make_image, media_type
):
    signed = sign(make_image(media_type), media_type, facts, identity)

    store = sdk_read(signed, media_type, identity.anchor_pem)

    assert store["validation_state"] == "Trusted"
    active = store["manifests"][store["active_manifest"]]
    labels = {assertion["label"] for assertion in active["assertions"]}
    assert {"org.consent-registry.consent", "org.consent-registry.decision"} <= labels
    assert "thumbnail" not in active


def test_the_reference_photo_is_an_ingredient_without_any_hash(identity, facts, make_image):
    signed = sign(make_image(), "image/jpeg", facts, identity)

    store = sdk_read(signed, "image/jpeg", identity.anchor_pem)

    assert store["validation_state"] == "Trusted"
    (ingredient,) = store["manifests"][store["active_manifest"]]["ingredients"]
    assert ingredient == {
        "title": "reference.jpg",
        "instance_id": "consent:cns_1/ast_1",
        "relationship": "inputTo",
        "informational_URI": "https://registry.example/status/1",
        "label": "c2pa.ingredient.v3",
    }


def test_an_output_signed_before_names_its_photo_by_hash_and_still_reads(
    identity, trust, raw_sign, make_image
):
    # The manifest as verifier.sign built it before ingredients were named by consent.
    old = {
        "claim_generator_info": [{"name": "consent-registry", "version": "0.9"}],
        "title": "gen-0001.jpg",
        "format": "image/jpeg",
        "ingredients": [
            {
                "title": "reference",
                "relationship": "inputTo",
                "instance_id": "sha256:" + "ab" * 32,
                "label": "ingredient-0",
            }
        ],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED,
                            "parameters": {"ingredientIds": ["ingredient-0"]},
                        }
                    ]
                },
            }
        ],
    }
    signed, _ = raw_sign(make_image(), "image/jpeg", old, identity)

    report = verify(signed, "image/jpeg", trust)

    assert report.state == "trusted", report.failure_codes
    (ingredient,) = report.ingredients
    assert ingredient.instance_id == "sha256:" + "ab" * 32
    assert ingredient.informational_uri is None
    assert ingredient.relationship == "inputTo"


def test_signer_not_chaining_to_a_configured_anchor_is_never_trusted(
    stranger_identity, trust, facts, make_image
):
    signed = sign(make_image(), "image/jpeg", facts, stranger_identity)

    assert verify(signed, "image/jpeg", trust).state == "valid_untrusted"
    assert verify(signed, "image/jpeg", TrustSettings()).state == "valid_untrusted"
    assert "signingCredential.untrusted" in verify(signed, "image/jpeg", trust).failure_codes


def test_one_flipped_pixel_byte_is_a_data_hash_mismatch(identity, trust, facts, make_image):
    signed = bytearray(sign(make_image(size=(96, 96)), "image/jpeg", facts, identity))
    _, _, scan_start = jpeg_segments(bytes(signed))[-1]
    position = scan_start + 10
    while signed[position] in {0xFE, 0xFF} or signed[position - 1] == 0xFF:
        position += 1
    signed[position] ^= 0x01

    report = verify(bytes(signed), "image/jpeg", trust)

    assert report.state == "invalid"
    assert "assertion.dataHash.mismatch" in report.failure_codes


def test_our_manifest_moved_onto_another_image_is_invalid(identity, trust, facts, make_image):
    signed = sign(make_image(color=(10, 10, 200)), "image/jpeg", facts, identity)
    other = make_image(color=(10, 200, 10))
    manifest_segments = b"".join(
        signed[start:end] for marker, start, end in jpeg_segments(signed) if marker == 0xEB
    )
    assert manifest_segments
    transplanted = other[:2] + manifest_segments + other[2:]

    report = verify(transplanted, "image/jpeg", trust)

    assert report.state == "invalid"
    assert report.failure_codes


def test_manifest_stripped_by_re_encoding_is_absent(identity, trust, facts, make_image):
    signed = sign(make_image(), "image/jpeg", facts, identity)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buffer, "JPEG")

    assert verify(buffer.getvalue(), "image/jpeg", trust).state == "absent"


def test_edited_reference_is_composite_with_trained_algorithmic_media(
    identity, trust, facts, make_image
):
    edited = msgspec.structs.replace(facts, edited_reference=True, decision=None)
    signed = sign(make_image(), "image/jpeg", edited, identity)

    report = verify(signed, "image/jpeg", trust)

    assert report.state == "trusted"
    assert report.digital_source_type == COMPOSITE
    assert report.ai_generated is True
    assert report.decision is None


def test_thumbnail_is_embedded_only_when_asked(identity, facts, make_image):
    signed = sign(make_image(), "image/jpeg", facts, identity, thumbnail=True)

    store = sdk_read(signed, "image/jpeg", identity.anchor_pem)

    assert store["validation_state"] == "Trusted"
    assert "thumbnail" in store["manifests"][store["active_manifest"]]


def test_a_signed_output_as_ingredient_shows_in_the_tree(identity, trust, facts, make_image):
    parent = sign(make_image(), "image/jpeg", facts, identity)
    manifest = {
        "title": "edit.jpg",
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
                    ]
                },
            }
        ],
    }
    signer = c2pa.Signer.from_callback(
        identity.signer.sign, c2pa.C2paSigningAlg.ES256, identity.chain_pem, None
    )
    with c2pa.Builder(manifest) as builder:
        builder.add_ingredient(
            {"title": "parent.jpg", "relationship": "parentOf", "label": "parent"},
            "image/jpeg",
            io.BytesIO(parent),
        )
        output = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(make_image(color=(1, 2, 3))), output)
    signer.close()

    report = verify(output.getvalue(), "image/jpeg", trust)

    assert report.state == "trusted"
    (ingredient,) = report.ingredients
    assert ingredient.title == "parent.jpg"
    assert ingredient.manifest_label is not None
    assert ingredient.state == "trusted"
    (grandchild,) = ingredient.children
    assert grandchild.instance_id == "consent:cns_1/ast_1"
    assert grandchild.state == "absent"


@pytest.mark.parametrize(
    "changes",
    [
        {"generation_id": ""},
        {"model": "x" * 201},
        {"model": "evil\x1b[31m"},
        {"ingredients": (_ingredient(consent_id=""),)},
        {"ingredients": (_ingredient(status_list_uri="u" * 2049),)},
        {"consent_refs": (ConsentRef(jti="t", status_list_uri="u", status_idx=-1),)},
        {"consent_refs": (ConsentRef(jti="", status_list_uri="u", status_idx=1),)},
        {"decision": DecisionRef(id="d", outcome="", policy_version="p")},
        {"ingredients": (_ingredient(),) * 101},
    ],
    ids=[
        "empty-id",
        "long-model",
        "control-chars",
        "empty-consent-id",
        "long-status-uri",
        "negative-idx",
        "empty-jti",
        "empty-outcome",
        "too-many",
    ],
)
def test_bad_generation_facts_are_refused(identity, facts, make_image, changes):
    with pytest.raises(GenerationFactsInvalid) as caught:
        sign(make_image(), "image/jpeg", msgspec.structs.replace(facts, **changes), identity)

    assert caught.value.code == "generation_facts_invalid"


def test_declared_type_must_match_the_bytes(identity, facts, make_image):
    with pytest.raises(ImageTypeMismatch) as caught:
        sign(make_image("image/png"), "image/jpeg", facts, identity)

    assert caught.value.code == "image_type_mismatch"


@pytest.mark.parametrize("data", [b"GIF89a" + bytes(32), b"random bytes" * 10])
def test_only_jpeg_png_and_webp_are_signed(identity, facts, data):
    with pytest.raises(ImageFormatNotAllowed) as caught:
        sign(data, "image/gif", facts, identity)

    assert caught.value.code == "image_format_not_allowed"


def test_corrupt_image_of_an_allowed_type_fails_to_sign(identity, facts):
    with pytest.raises(SigningFailed) as caught:
        sign(b"\xff\xd8\xff\xe0garbage", "image/jpeg", facts, identity)

    assert caught.value.code == "c2pa_signing_failed"


class FailingSigner:
    """A signer whose backend is down (a KMS outage): the same protocol, no signature."""

    def __init__(self, inner):
        self._inner = inner
        self.kid, self.alg = inner.kid, inner.alg

    def public_key(self):
        return self._inner.public_key()

    def public_jwk(self):
        return self._inner.public_jwk()

    def sign(self, _data):
        msg = "KMS unavailable"
        raise ConnectionError(msg)


def test_signer_backend_failure_is_a_signing_error_with_its_cause(identity, facts, make_image):
    broken = msgspec.structs.replace(identity, signer=FailingSigner(identity.signer))

    with pytest.raises(SigningFailed) as caught:
        sign(make_image(), "image/jpeg", facts, broken)

    assert caught.value.code == "c2pa_signing_failed"
    assert isinstance(caught.value.__cause__, ConnectionError)
