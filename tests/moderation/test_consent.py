"""Consent evidence through the protocol, with real tokens signed by keys.LocalSigner."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

import keys
from moderation import (
    CONSENT_REASONS,
    ConsentCheck,
    SourceAsset,
    check_sources,
    decide,
    decode_evidence,
    encode_evidence,
    gate_codes,
    required_uses,
)
from moderation.reasons import REASONS
from tests.moderation.support import (
    GENERATOR,
    NOW,
    PHOTO_SHA,
    clean_evidence,
    photo,
    scores,
)
from verifier.tokens import Reason

EXPLICIT_USES = ("reference.generate", "publish.public", "content.suggestive", "content.explicit")


async def gate(source, policy, assets, *, sexual_content=0.01, check_timeout=2.0):
    """The consent part of the gate: ask for the uses the policy needs, then decide."""
    score = scores(sexual_content=sexual_content)
    uses = {
        kind: required_uses(policy, stage="publish", source_type=kind, scores=score.scores)
        for kind in {asset.type for asset in assets}
    }
    evidence = await check_sources(
        source, assets, generator_client_id=GENERATOR, uses_by_type=uses, timeout=check_timeout
    )
    return decide(clean_evidence(sources=evidence, classifiers=(score,)), policy)


def photo_asset(token, sha256=PHOTO_SHA, asset_id="photo-1"):
    return SourceAsset(type="photo", asset_id=asset_id, sha256=sha256, consent_token=token)


async def test_a_consented_photo_passes(consent_source, policy):
    decision = await gate(consent_source, policy, [photo_asset(consent_source.issue())])
    assert (decision.status, decision.reasons) == ("allowed", ())


async def test_a_real_person_photo_without_token_is_blocked(consent_source, policy):
    decision = await gate(consent_source, policy, [photo_asset(None)])
    assert (decision.status, decision.reasons[0]) == ("blocked", "consent_missing")
    assert consent_source.calls == 0


async def test_a_token_for_another_generator_is_blocked(consent_source, policy):
    token = consent_source.issue(audience="generator-2")
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert (decision.status, decision.reasons[0]) == ("blocked", "consent_wrong_audience")


async def test_a_token_withdrawn_one_second_before_the_check_is_blocked(consent_source, policy):
    token = consent_source.issue()
    consent_source.withdraw(token, at=NOW - dt.timedelta(seconds=1))
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert (decision.status, decision.reasons[0]) == ("blocked", "consent_token_revoked")


async def test_a_withdrawal_after_the_check_does_not_count_yet(consent_source, policy):
    token = consent_source.issue()
    consent_source.withdraw(token, at=NOW + dt.timedelta(seconds=1))
    assert (await gate(consent_source, policy, [photo_asset(token)])).status == "allowed"


async def test_an_expired_token_is_blocked(consent_source, policy):
    token = consent_source.issue(issued=NOW - dt.timedelta(hours=1))
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert decision.reasons[0] == "consent_token_expired"


async def test_a_token_whose_asset_hash_differs_from_the_declared_source_is_blocked(
    consent_source, policy
):
    token = consent_source.issue()
    decision = await gate(consent_source, policy, [photo_asset(token, sha256="ee" * 32)])
    assert decision.status == "blocked"
    assert decision.reasons[:2] == ("consent_asset_mismatch", "source_hash_mismatch")


async def test_a_token_for_another_asset_is_blocked(consent_source, policy):
    token = consent_source.issue(asset_id="photo-9")
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert decision.reasons[0] == "consent_asset_mismatch"


async def test_explicit_output_without_content_explicit_is_blocked(consent_source, policy):
    token = consent_source.issue(
        uses=("reference.generate", "publish.public", "content.suggestive")
    )
    decision = await gate(consent_source, policy, [photo_asset(token)], sexual_content=0.6)
    assert decision.status == "blocked"
    assert decision.reasons[0] == "consent_use_not_permitted"


async def test_explicit_output_with_content_explicit_goes_to_a_human(consent_source, policy):
    token = consent_source.issue(uses=EXPLICIT_USES)
    decision = await gate(consent_source, policy, [photo_asset(token)], sexual_content=0.6)
    assert (decision.status, decision.reasons) == ("review", ("score_sexual_content_review",))


async def test_a_token_without_publish_use_is_blocked_at_publication(consent_source, policy):
    token = consent_source.issue(uses=("reference.generate",))
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert decision.reasons[0] == "consent_use_not_permitted"


async def test_a_token_signed_by_another_key_is_invalid(consent_source, policy):
    token = consent_source.issue(signer=keys.LocalSigner.generate("EdDSA"))
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert decision.reasons[0] == "consent_token_invalid"


async def test_a_tampered_token_is_invalid(consent_source, policy):
    header, payload, signature = consent_source.issue().split(".")
    forged = keys.b64url_encode(keys.b64url_decode(payload).replace(b"generator-1", b"generator-2"))
    decision = await gate(consent_source, policy, [photo_asset(f"{header}.{forged}.{signature}")])
    assert decision.reasons[0] == "consent_token_invalid"


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "x" * 100])
async def test_a_malformed_token_is_invalid(consent_source, policy, token):
    decision = await gate(consent_source, policy, [photo_asset(token)])
    assert decision.reasons[0] == "consent_token_invalid"


async def test_every_source_is_checked_and_each_failure_named(consent_source, policy):
    good = photo_asset(consent_source.issue(), asset_id="photo-1")
    bad = photo_asset(consent_source.issue(audience="other"), asset_id="photo-1")
    art = SourceAsset(type="artwork", asset_id="art-1")
    decision = await gate(consent_source, policy, [good, bad, art])
    assert decision.reasons[0] == "consent_wrong_audience"
    assert consent_source.calls == 2


class SlowSource:
    """A consent source that answers after ``delay`` seconds."""

    def __init__(self, inner, delay):
        self.inner = inner
        self.delay = delay

    async def check(self, **kwargs):
        await asyncio.sleep(self.delay)
        return await self.inner.check(**kwargs)


class BrokenSource:
    """A consent source whose backing store is down."""

    async def check(self, **_):
        raise ConnectionError("database unavailable")


async def test_a_late_consent_answer_is_a_timeout_never_allowed(consent_source, policy):
    slow = SlowSource(consent_source, delay=5)
    decision = await gate(slow, policy, [photo_asset(consent_source.issue())], check_timeout=0.05)
    assert decision.status == "review"
    assert decision.reasons[0] == "evidence_timeout"


async def test_a_failing_consent_source_is_unavailable_never_allowed(consent_source, policy):
    decision = await gate(BrokenSource(), policy, [photo_asset(consent_source.issue())])
    assert decision.status == "review"
    assert decision.reasons[0] == "evidence_unavailable"


async def test_the_token_is_not_kept_in_the_evidence(consent_source):
    token = consent_source.issue()
    (evidence,) = await check_sources(
        consent_source,
        [photo_asset(token)],
        generator_client_id=GENERATOR,
        uses_by_type={},
        timeout=1,
    )
    assert evidence.token_present
    assert token not in repr(evidence)
    assert evidence.check.jti


def test_the_mapping_table_names_only_known_gate_reasons():
    assert set(CONSENT_REASONS.values()) <= set(REASONS)


def test_every_token_reason_has_a_gate_code():
    # A new Reason must be placed here on purpose, not left to the fail-closed fallback.
    assert set(CONSENT_REASONS) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_each_token_reason_alone_gives_its_own_gate_code(reason):
    assert gate_codes(ConsentCheck(valid=False, reasons=(reason,))) == (CONSENT_REASONS[reason],)


def test_gate_codes_deduplicates_and_fails_closed():
    # "new_thing": a code this gate does not know (a newer registry, a typo).
    reasons = (Reason.MALFORMED, Reason.SIGNATURE, Reason.EXPIRED, "new_thing")
    check = ConsentCheck(valid=False, reasons=reasons)
    assert gate_codes(check) == ("consent_token_invalid", "consent_token_expired")
    assert gate_codes(ConsentCheck(valid=False)) == ("consent_token_invalid",)
    assert gate_codes(ConsentCheck(valid=True)) == ()


def test_stored_reasons_are_the_plain_codes_and_decode_to_reasons():
    check = ConsentCheck(valid=False, reasons=tuple(Reason))
    evidence = clean_evidence(sources=(photo(check=check),))
    stored = encode_evidence(evidence)
    assert json.loads(stored)["sources"][0]["check"]["reasons"] == [r.value for r in Reason]
    decoded = decode_evidence(stored).sources[0].check
    assert decoded is not None
    assert all(type(reason) is Reason for reason in decoded.reasons)
    assert decoded == check
