"""Withdrawal JWS: only the consent's own signer key can withdraw it."""

from __future__ import annotations

import datetime as dt

import pytest

from registry.consent import ConsentError, Withdrawal, verify_withdrawal

TYP = "consent-withdrawal+jws"
CONSENT_ID = "cns_01HZX3"


def _payload(**changes):
    payload = {
        "type": "consent-withdrawal",
        "consent_id": CONSENT_ID,
        "withdrawn_at": "2026-03-01T11:58:00Z",
    }
    payload.update(changes)
    return payload


def _token(h, signer, payload=None, **header):
    body = payload if isinstance(payload, bytes) else h.encode(payload or _payload())
    return h.make_jws({"alg": signer.alg, "typ": TYP, **header}, body, signer)


def _verify(h, token, signer):
    return verify_withdrawal(
        token, consent_id=CONSENT_ID, signer_key=signer.public_key(), now=h.NOW
    )


def _code(h, token, signer) -> ConsentError:
    with pytest.raises(ConsentError) as excinfo:
        _verify(h, token, signer)
    return excinfo.value


@pytest.mark.parametrize("signer_name", ["ed25519", "p256", "p384"])
def test_signed_by_the_consent_signer(h, signer_name, request):
    signer = request.getfixturevalue(signer_name)
    token = _token(h, signer, kid="alice-key-1")
    withdrawal = _verify(h, token, signer)
    assert withdrawal == Withdrawal(
        consent_id=CONSENT_ID,
        withdrawn_at=dt.datetime(2026, 3, 1, 11, 58, tzinfo=dt.UTC),
        header={"alg": signer.alg, "typ": TYP, "kid": "alice-key-1"},
        token=token,
    )


def test_rsa_signer(h, rsa_key):
    signer = h.RawSigner(rsa_key, "PS256")
    assert _verify(h, _token(h, signer), signer).consent_id == CONSENT_ID


def test_signed_by_another_key(h, ed25519, other_ed25519):
    error = _code(h, _token(h, other_ed25519), ed25519)
    assert error.code == "withdrawal_invalid"
    assert error.kind == "forbidden"


def test_header_cannot_substitute_the_key(h, ed25519, other_ed25519):
    # The attacker names their own key in the header; only the consent's key counts.
    token = _token(h, other_ed25519, jwk=other_ed25519.public_jwk())
    assert _code(h, token, ed25519).code == "withdrawal_invalid"


def test_key_of_another_type(h, ed25519, p256):
    assert _code(h, _token(h, p256), ed25519).code == "withdrawal_invalid"


def test_alg_none(h, ed25519):
    token = h.make_jws({"alg": "none", "typ": TYP}, h.encode(_payload()), None)
    assert _code(h, token, ed25519).code == "withdrawal_invalid"


def test_hs256_keyed_with_the_signer_public_key(h, ed25519):
    for secret in h.public_key_bytes(ed25519):
        token = h.make_hs256({"alg": "HS256", "typ": TYP}, h.encode(_payload()), secret)
        assert _code(h, token, ed25519).code == "withdrawal_invalid"


def test_signature_over_other_bytes(h, ed25519):
    header, _, signature = _token(h, ed25519).split(".")
    other = _token(h, ed25519, _payload(consent_id="cns_other")).split(".")[1]
    assert _code(h, f"{header}.{other}.{signature}", ed25519).code == "withdrawal_invalid"


def test_for_another_consent(h, ed25519):
    token = _token(h, ed25519, _payload(consent_id="cns_other"))
    assert _code(h, token, ed25519).code == "withdrawal_mismatch"


def test_withdrawn_in_the_future(h, ed25519):
    token = _token(h, ed25519, _payload(withdrawn_at="2026-03-01T12:10:00Z"))
    assert _code(h, token, ed25519).code == "withdrawal_time_invalid"


def test_small_clock_skew_is_tolerated(h, ed25519):
    token = _token(h, ed25519, _payload(withdrawn_at="2026-03-01T12:04:00Z"))
    assert _verify(h, token, ed25519).withdrawn_at.minute == 4


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA"},
        {"alg": "EdDSA", "typ": "consent-form+jws"},
        {"alg": "EdDSA", "typ": TYP, "crit": ["b64"]},
    ],
)
def test_envelope_faults(h, ed25519, header):
    token = h.make_jws(header, h.encode(_payload()), ed25519)
    assert _code(h, token, ed25519).code == "withdrawal_malformed"


@pytest.mark.parametrize("token", ["", "a.b.c", None, "x" * 70_000])
def test_not_a_jws(h, ed25519, token):
    assert _code(h, token, ed25519).code == "withdrawal_malformed"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_payload(type="consent-form"), "invalid_value"),
        (_payload(reason="changed my mind"), "unknown_field"),
        (_payload(withdrawn_at="2026-03-01T11:58:00"), "invalid_value"),
        (_payload(consent_id=7), "invalid_type"),
        ({"type": "consent-withdrawal", "consent_id": CONSENT_ID}, "missing_field"),
        (
            b'{"type": "consent-withdrawal", "consent_id": "cns_other", "consent_id": "'
            + CONSENT_ID.encode()
            + b'", "withdrawn_at": "2026-03-01T11:58:00Z"}',
            "duplicate_key",
        ),
    ],
)
def test_payload_faults(h, ed25519, payload, code):
    assert _code(h, _token(h, ed25519, payload), ed25519).code == code
