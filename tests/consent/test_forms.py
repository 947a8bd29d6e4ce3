"""Consent form verification: envelope, the three ways to name a key, payload and checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keys import b64url_encode, public_jwk, thumbprint
from registry.consent import (
    ConsentError,
    EnrolledSigner,
    TemplateRef,
    VerifiedForm,
    verify_form,
)

TYP = "consent-form+jws"
MAX_VALIDITY = dt.timedelta(days=366)


class Registry:
    """What the storage layer will answer: enrolled signers and templates, with lookups logged."""

    def __init__(self, h, *, signers=(), templates=None):
        self.signers = {signer.kid: signer for signer in signers}
        self.templates = templates or {
            "tmpl-likeness-v1": TemplateRef(id="tmpl-likeness-v1", sha256=h.TEMPLATE_SHA256)
        }
        self.kid_lookups: list[str] = []

    def enrolled(self, kid):
        self.kid_lookups.append(kid)
        return self.signers.get(kid)

    def template(self, template_id):
        return self.templates.get(template_id)


@pytest.fixture
def enrolled(ed25519):
    return EnrolledSigner(kid="alice-key-1", jwk=ed25519.public_jwk())


@pytest.fixture
def registry(h, enrolled):
    return Registry(h, signers=[enrolled])


def _verify(token, registry, *, anchors=(), now=None, max_validity=MAX_VALIDITY) -> VerifiedForm:
    return verify_form(
        token,
        resolve_enrolled=registry.enrolled,
        anchors=list(anchors),
        templates=registry.template,
        max_validity=max_validity,
        now=now or registry_now(),
    )


def registry_now():
    return dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _code(token, registry, **kwargs) -> str:
    with pytest.raises(ConsentError) as excinfo:
        _verify(token, registry, **kwargs)
    return excinfo.value.code


def _enrolled_form(h, signer, payload=None, **header):
    body = payload if isinstance(payload, bytes) else h.encode(payload or h.form_payload())
    return h.make_jws({"alg": signer.alg, "typ": TYP, "kid": "alice-key-1", **header}, body, signer)


# The three ways to name the key.


def test_enrolled_signer(h, ed25519, registry, enrolled):
    token = _enrolled_form(h, ed25519)
    verified = _verify(token, registry)
    assert verified.assurance == "enrolled"
    assert verified.enrolled == enrolled
    assert verified.signer_jwk == ed25519.public_jwk()
    assert verified.signer_thumbprint == thumbprint(ed25519.public_jwk())
    assert verified.token == token
    assert verified.header == {"alg": "EdDSA", "typ": TYP, "kid": "alice-key-1"}
    form = verified.form
    assert form.template.sha256 == h.TEMPLATE_SHA256
    assert form.assets[0].sha256 == h.ASSET_SHA256
    assert form.assets[0].label == "front"
    assert form.permitted_uses == ("reference.generate", "likeness.stylize")
    assert form.valid_until == dt.datetime(2026, 8, 31, 22, 0, tzinfo=dt.UTC)
    assert form.signer_role == "subject"


@pytest.mark.parametrize("signer_name", ["ed25519", "p256", "p384"])
def test_self_asserted_key(h, registry, signer_name, request):
    signer = request.getfixturevalue(signer_name)
    header = {"alg": signer.alg, "typ": TYP, "jwk": signer.public_jwk()}
    verified = _verify(h.make_jws(header, h.encode(h.form_payload()), signer), registry)
    assert verified.assurance == "self_asserted"
    assert verified.enrolled is None
    assert verified.signer_thumbprint == thumbprint(signer.public_jwk())
    assert registry.kid_lookups == []


@pytest.mark.parametrize("alg", ["PS256", "RS256"])
def test_rsa_2048_signer(h, registry, rsa_key, alg):
    signer = h.RawSigner(rsa_key, alg)
    header = {"alg": alg, "typ": TYP, "jwk": signer.public_jwk()}
    verified = _verify(h.make_jws(header, h.encode(h.form_payload()), signer), registry)
    assert verified.signer_jwk["kty"] == "RSA"


def test_rsa_below_2048_bits_is_refused(h, registry):
    # The point of the test is a breakable key.
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    weak = h.RawSigner(weak_key, "RS256")
    header = {"alg": "RS256", "typ": TYP, "jwk": weak.public_jwk()}
    token = h.make_jws(header, h.encode(h.form_payload()), weak)
    assert _code(token, registry) == "signer_key_invalid"


def test_x509_signer(h, registry, ca, p256):
    header = {"alg": "ES256", "typ": TYP, "x5c": ca.issue(p256.public_key())}
    token = h.make_jws(header, h.encode(h.form_payload()), p256)
    verified = _verify(token, registry, anchors=[ca.root])
    assert verified.assurance == "x509"
    assert verified.signer_jwk == p256.public_jwk()


def test_x509_chain_to_another_anchor(h, registry, ca, other_ca, p256):
    header = {"alg": "ES256", "typ": TYP, "x5c": other_ca.issue(p256.public_key())}
    token = h.make_jws(header, h.encode(h.form_payload()), p256)
    assert _code(token, registry, anchors=[ca.root]) == "signer_untrusted"
    assert _verify(token, registry, anchors=[ca.root, other_ca.root]).assurance == "x509"


def test_x509_without_configured_anchors(h, registry, ca, p256):
    header = {"alg": "ES256", "typ": TYP, "x5c": ca.issue(p256.public_key())}
    token = h.make_jws(header, h.encode(h.form_payload()), p256)
    assert _code(token, registry, anchors=[]) == "signer_untrusted"


def test_x509_leaf_without_digital_signature_usage(h, registry, ca, p256):
    header = {
        "alg": "ES256",
        "typ": TYP,
        "x5c": ca.issue(p256.public_key(), digital_signature=False),
    }
    token = h.make_jws(header, h.encode(h.form_payload()), p256)
    assert _code(token, registry, anchors=[ca.root]) == "signer_untrusted"


def test_x509_leaf_expired(h, registry, ca, p256):
    header = {"alg": "ES256", "typ": TYP, "x5c": ca.issue(p256.public_key(), days=-1)}
    token = h.make_jws(header, h.encode(h.form_payload()), p256)
    assert _code(token, registry, anchors=[ca.root]) == "signer_untrusted"


def test_x509_chain_signed_by_another_key_than_the_leaf(h, registry, ca, p256, other_ed25519):
    header = {"alg": "EdDSA", "typ": TYP, "x5c": ca.issue(p256.public_key())}
    token = h.make_jws(header, h.encode(h.form_payload()), other_ed25519)
    assert _code(token, registry, anchors=[ca.root]) == "algorithm_not_allowed"
    stranger = h.RawSigner(ec.generate_private_key(ec.SECP256R1()), "ES256")
    token = h.make_jws({**header, "alg": "ES256"}, h.encode(h.form_payload()), stranger)
    assert _code(token, registry, anchors=[ca.root]) == "form_signature_invalid"


@pytest.mark.parametrize(
    "x5c",
    [[], "MIIB", ["not base64!"], [b64url_encode(b"\x30\x03\x02\x01\x01")], ["AA=="] * 6, [1]],
)
def test_x509_malformed_chain(h, registry, ca, p256, x5c):
    token = h.make_jws({"alg": "ES256", "typ": TYP, "x5c": x5c}, h.encode(h.form_payload()), p256)
    assert _code(token, registry, anchors=[ca.root]) == "signer_untrusted"


def test_no_key_named(h, registry, ed25519):
    token = h.make_jws({"alg": "EdDSA", "typ": TYP}, h.encode(h.form_payload()), ed25519)
    assert _code(token, registry) == "signer_unknown"


def test_jku_and_x5u_are_never_followed(h, registry, ed25519):
    header = {
        "alg": "EdDSA",
        "typ": TYP,
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/chain.pem",
    }
    token = h.make_jws(header, h.encode(h.form_payload()), ed25519)
    assert _code(token, registry) == "signer_unknown"
    # Next to a kid they are ignored: the enrolled key decides.
    assert _verify(_enrolled_form(h, ed25519, **header), registry).assurance == "enrolled"


@pytest.mark.parametrize(
    "names", [("kid", "jwk"), ("kid", "x5c"), ("jwk", "x5c"), ("kid", "jwk", "x5c")]
)
def test_more_than_one_way_to_name_the_key(h, registry, ca, ed25519, names):
    values = {
        "kid": "alice-key-1",
        "jwk": ed25519.public_jwk(),
        "x5c": ca.issue(ed25519.public_key()),
    }
    header = {"alg": "EdDSA", "typ": TYP, **{name: values[name] for name in names}}
    token = h.make_jws(header, h.encode(h.form_payload()), ed25519)
    assert _code(token, registry, anchors=[ca.root]) == "signer_ambiguous"


@pytest.mark.parametrize("kid", ["../../x", "a/b", "", "k" * 10_000, "ключ", "a b", 7, None])
def test_invalid_kid_is_never_looked_up(h, registry, ed25519, kid):
    token = h.make_jws(
        {"alg": "EdDSA", "typ": TYP, "kid": kid}, h.encode(h.form_payload()), ed25519
    )
    assert _code(token, registry) == "signer_unknown"
    assert registry.kid_lookups == []


def test_unknown_kid(h, registry, ed25519):
    token = _enrolled_form(h, ed25519, kid="bob-key-9")
    assert _code(token, registry) == "signer_unknown"
    assert registry.kid_lookups == ["bob-key-9"]


@pytest.mark.parametrize(
    "jwk",
    [
        "not an object",
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
    ],
)
def test_unusable_header_jwk(h, registry, ed25519, jwk):
    token = h.make_jws(
        {"alg": "EdDSA", "typ": TYP, "jwk": jwk}, h.encode(h.form_payload()), ed25519
    )
    assert _code(token, registry) == "signer_key_invalid"


def test_header_jwk_with_private_key_is_refused(h, registry, ed25519):
    leaked = {**ed25519.public_jwk(), "d": b64url_encode(b"\x01" * 32)}
    token = h.make_jws(
        {"alg": "EdDSA", "typ": TYP, "jwk": leaked}, h.encode(h.form_payload()), ed25519
    )
    assert _code(token, registry) == "signer_key_invalid"


# The envelope.


def test_alg_none(h, registry):
    token = h.make_jws(
        {"alg": "none", "typ": TYP, "kid": "alice-key-1"}, h.encode(h.form_payload()), None
    )
    assert _code(token, registry) == "algorithm_not_allowed"


def test_hs256_keyed_with_the_signer_public_key(h, registry, ed25519):
    for secret in h.public_key_bytes(ed25519):
        for header in (
            {"alg": "HS256", "typ": TYP, "kid": "alice-key-1"},
            {"alg": "HS256", "typ": TYP, "jwk": ed25519.public_jwk()},
        ):
            token = h.make_hs256(header, h.encode(h.form_payload()), secret)
            assert _code(token, registry) == "algorithm_not_allowed"


def test_signed_by_a_key_other_than_the_named_one(h, registry, ed25519, other_ed25519):
    # The kid names Alice's enrolled key; someone else signed.
    assert _code(_enrolled_form(h, other_ed25519), registry) == "form_signature_invalid"
    # The header carries Alice's key; someone else signed.
    header = {"alg": "EdDSA", "typ": TYP, "jwk": ed25519.public_jwk()}
    token = h.make_jws(header, h.encode(h.form_payload()), other_ed25519)
    assert _code(token, registry) == "form_signature_invalid"


def test_algorithm_that_does_not_fit_the_key(h, registry, p256):
    # Alice's enrolled key is Ed25519; an ES256 signature cannot be hers.
    assert _code(_enrolled_form(h, p256), registry) == "algorithm_not_allowed"


def test_signature_over_other_bytes(h, registry, ed25519):
    original = _enrolled_form(h, ed25519)
    other = _enrolled_form(
        h, ed25519, h.form_payload(permitted_uses=["content.explicit"], prohibited_uses=[])
    )
    header, _, signature = original.split(".")
    swapped = ".".join([header, other.split(".")[1], signature])
    assert _code(swapped, registry) == "form_signature_invalid"


@pytest.mark.parametrize("part", [0, 1, 2])
def test_flipped_character(h, registry, ed25519, part):
    token = _enrolled_form(h, ed25519)
    segments = token.split(".")
    position = sum(len(s) + 1 for s in segments[:part]) + len(segments[part]) // 2
    assert _code(h.flip(token, position), registry) in {"form_signature_invalid", "form_malformed"}


def test_flipped_payload_character_fails_the_signature(h, registry, ed25519):
    token = _enrolled_form(h, ed25519)
    start = token.index(".") + 1
    assert _code(h.flip(token, start + 10), registry) == "form_signature_invalid"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "kid": "alice-key-1"},
        {"alg": "EdDSA", "kid": "alice-key-1", "typ": "JWT"},
        {"alg": "EdDSA", "kid": "alice-key-1", "typ": "consent-withdrawal+jws"},
        {"alg": "EdDSA", "kid": "alice-key-1", "typ": TYP, "crit": ["exp"]},
    ],
)
def test_envelope_header_faults(h, registry, ed25519, header):
    token = h.make_jws(header, h.encode(h.form_payload()), ed25519)
    assert _code(token, registry) == "form_malformed"


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "é.é.é", "x" * 70_000, None, b"a.b.c"])
def test_not_a_compact_jws(registry, token):
    assert _code(token, registry) == "form_malformed"


def test_verifies_the_exact_signed_bytes(h, registry, ed25519):
    # Unusual but valid JSON spacing: verification must use these bytes, not a re-encoding.
    body = json.dumps(h.form_payload(), indent=3, separators=(" ,", " :  ")).encode()
    assert _verify(_enrolled_form(h, ed25519, body), registry).form.version == 1


# The payload.


def _payload_code(h, ed25519, registry, payload, **kwargs) -> str:
    return _code(_enrolled_form(h, ed25519, payload), registry, **kwargs)


@pytest.mark.parametrize(
    ("member", "duplicate"),
    [
        (b'"version": 1', b'"version": 1, "version": 1'),
        (b'"subject_ref": "subject-7f3a"', b'"subject_ref": "subject-7f3a", "subject_ref": "x"'),
        (b'"id": "tmpl-likeness-v1"', b'"id": "tmpl-likeness-v1", "id": "tmpl-other"'),
        (b'"label": "front"', b'"label": "front", "label": "back"'),
    ],
)
def test_duplicate_keys_at_any_depth(h, registry, ed25519, member, duplicate):
    body = h.encode(h.form_payload())
    assert member in body
    body = body.replace(member, duplicate)
    assert _payload_code(h, ed25519, registry, body) == "duplicate_key"


@pytest.mark.parametrize(
    "payload",
    [
        {"surplus": True},
        {"template": {"id": "tmpl-likeness-v1", "sha256": "0" * 64, "text": "x"}},
        {"assets": [{"sha256": "0" * 64, "location": "gps"}]},
    ],
)
def test_unknown_fields(h, registry, ed25519, payload):
    assert _payload_code(h, ed25519, registry, h.form_payload(**payload)) == "unknown_field"


def test_missing_field(h, registry, ed25519):
    payload = h.form_payload()
    del payload["nonce"]
    assert _payload_code(h, ed25519, registry, payload) == "missing_field"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"version": "1"}, "invalid_type"),
        ({"version": 2}, "version_unsupported"),
        ({"signer_role": "friend"}, "invalid_value"),
        ({"assets": []}, "invalid_value"),
        ({"assets": "abc"}, "invalid_type"),
        ({"permitted_uses": []}, "invalid_value"),
        ({"valid_from": "2026-03-01T00:00:00"}, "invalid_value"),
        ({"valid_until": "next year"}, "invalid_value"),
        ({"signed_at": 1772366400}, "invalid_type"),
        ({"jurisdiction": "Germany"}, "invalid_value"),
        ({"nonce": "short"}, "invalid_value"),
        ({"subject_ref": ""}, "invalid_value"),
        ({"template": {"id": "tmpl-likeness-v1", "sha256": "ABC"}}, "invalid_value"),
        ({"assets": [{"sha256": "0" * 64, "phash": "0" * 64}]}, "invalid_value"),
        ({"assets": [{"sha256": "0" * 64, "pdq": "0" * 16}]}, "invalid_value"),  # a pHash
        ({"assets": [{"sha256": "0" * 64, "pdq": "0" * 63 + "g"}]}, "invalid_value"),
        ({"assets": [{"sha256": "0" * 64, "pdq": "A" * 64}]}, "invalid_value"),
    ],
)
def test_field_faults(h, registry, ed25519, change, code):
    assert _payload_code(h, ed25519, registry, h.form_payload(**change)) == code


def test_an_asset_may_carry_its_perceptual_hashes(h, registry, ed25519):
    asset = {"sha256": h.ASSET_SHA256, "phash": "0123456789abcdef", "pdq": "5a" * 32}
    form = _verify(_enrolled_form(h, ed25519, h.form_payload(assets=[asset])), registry).form
    assert (form.assets[0].phash, form.assets[0].pdq) == ("0123456789abcdef", "5a" * 32)


def test_over_deep_payload(h, registry, ed25519):
    body = h.encode(h.form_payload()).replace(b'"front"', b"[" * 40 + b"]" * 40)
    assert _payload_code(h, ed25519, registry, body) == "too_deep"


@pytest.mark.parametrize(
    "assets",
    [
        [{"sha256": "A" * 64}],
        [{"sha256": "0" * 63}],
        [{"sha256": "g" * 64}],
        [{"sha256": "0" * 64}, {"sha256": "0" * 64, "label": "again"}],
    ],
)
def test_asset_faults(h, registry, ed25519, assets):
    assert _payload_code(h, ed25519, registry, h.form_payload(assets=assets)) == "asset_invalid"


def test_unknown_template(h, registry, ed25519):
    payload = h.form_payload(template={"id": "tmpl-other", "sha256": h.TEMPLATE_SHA256})
    assert _payload_code(h, ed25519, registry, payload) == "template_unknown"


def test_template_hash_mismatch(h, registry, ed25519):
    payload = h.form_payload(template={"id": "tmpl-likeness-v1", "sha256": "0" * 64})
    assert _payload_code(h, ed25519, registry, payload) == "template_hash_mismatch"


def test_use_the_template_does_not_offer(h, ed25519, enrolled):
    offered = frozenset({"reference.generate"})
    template = TemplateRef(id="tmpl-likeness-v1", sha256=h.TEMPLATE_SHA256, uses=offered)
    registry = Registry(h, signers=[enrolled], templates={"tmpl-likeness-v1": template})
    assert _payload_code(h, ed25519, registry, h.form_payload()) == "use_not_offered"
    payload = h.form_payload(permitted_uses=["reference.generate"])
    assert _verify(_enrolled_form(h, ed25519, payload), registry).form.permitted_uses == (
        "reference.generate",
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"permitted_uses": ["reference.generate", "content.extreme"]}, "use_unknown"),
        ({"prohibited_uses": ["gossip"]}, "use_unknown"),
        ({"permitted_uses": ["commercial", "commercial"]}, "uses_duplicate"),
        ({"permitted_uses": ["commercial", "ai.training"]}, "uses_overlap"),
    ],
)
def test_use_faults(h, registry, ed25519, change, code):
    assert _payload_code(h, ed25519, registry, h.form_payload(**change)) == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"valid_until": "2026-03-01T11:00:00Z"}, "validity_expired"),
        (
            {"valid_from": "2025-01-01T00:00:00Z", "valid_until": "2026-02-01T00:00:00Z"},
            "validity_expired",
        ),
        ({"valid_until": "2027-03-03T00:00:00Z"}, "validity_too_long"),
        ({"valid_until": "2026-03-01T00:00:00Z"}, "validity_invalid"),
        (
            {"valid_from": "2026-06-01T00:00:00Z", "valid_until": "2026-05-01T00:00:00Z"},
            "validity_invalid",
        ),
        ({"signed_at": "2026-03-01T12:30:00Z"}, "validity_invalid"),
    ],
)
def test_validity_faults(h, registry, ed25519, change, code):
    assert _payload_code(h, ed25519, registry, h.form_payload(**change)) == code


def test_validity_window_at_the_maximum_is_accepted(h, registry, ed25519):
    payload = h.form_payload(valid_from="2026-03-01T00:00:00Z", valid_until="2026-03-31T00:00:00Z")
    token = _enrolled_form(h, ed25519, payload)
    assert _verify(token, registry, max_validity=dt.timedelta(days=30)).form.version == 1
    assert _code(token, registry, max_validity=dt.timedelta(days=29)) == "validity_too_long"


def test_signing_clock_a_little_ahead_is_tolerated(h, registry, ed25519):
    payload = h.form_payload(signed_at="2026-03-01T12:04:00Z")
    assert _verify(_enrolled_form(h, ed25519, payload), registry).form.version == 1


@pytest.mark.parametrize(
    ("binding", "change"),
    [
        ({"subject_ref": "subject-other"}, {}),
        ({"role": "guardian"}, {}),
        ({"subject_ref": "subject-7f3a", "role": "subject"}, {"signer_role": "agent"}),
    ],
)
def test_enrollment_binds_subject_and_role(h, ed25519, binding, change):
    signer = EnrolledSigner(kid="alice-key-1", jwk=ed25519.public_jwk(), **binding)
    registry = Registry(h, signers=[signer])
    assert _payload_code(h, ed25519, registry, h.form_payload(**change)) == "signer_key_mismatch"


def test_enrollment_matching_subject_and_role(h, ed25519):
    signer = EnrolledSigner(
        kid="alice-key-1", jwk=ed25519.public_jwk(), subject_ref="subject-7f3a", role="subject"
    )
    registry = Registry(h, signers=[signer])
    assert _verify(_enrolled_form(h, ed25519), registry).enrolled == signer


def test_errors_carry_a_kind_for_the_shell(h, registry, ed25519):
    with pytest.raises(ConsentError) as excinfo:
        _verify(_enrolled_form(h, ed25519, h.form_payload(version=2)), registry)
    assert excinfo.value.kind == "invalid"
    assert public_jwk(ed25519.public_key())["x"] not in excinfo.value.message
