"""The decision engine, reason by reason, and its fail-closed behaviour."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from moderation import (
    CONSENT_REASONS,
    ClassifierResult,
    ConsentCheck,
    Decision,
    HashFacts,
    HashMatch,
    ImageFacts,
    InvalidScore,
    PromptFacts,
    ProvenanceFacts,
    SourceEvidence,
    decide,
    decode_evidence,
    encode_evidence,
    explain,
    load_policy,
    required_uses,
)
from moderation.reasons import REASONS
from tests.moderation.support import NOW, clean_evidence, consent, photo, scores

TRUSTED = ProvenanceFacts(state="trusted")
EXPLICIT_USES = ("reference.generate", "publish.public", "content.suggestive", "content.explicit")

# A likely minor from a real person's photo needs a guardian's consent to reach a person.
GUARDIAN = (photo(check=consent(signer_role="guardian")),)


def artwork(asset_id: str = "art-1") -> SourceEvidence:
    return SourceEvidence(type="artwork", asset_id=asset_id)


def match(list_name: str, action: str, distance: int, source: str | None = None) -> HashMatch:
    return HashMatch(
        list=list_name,
        action=action,
        label="entry",
        source=source,
        distance=distance,
        hash="0123456789abcdef",
    )


def test_clean_consented_output_is_allowed(policy):
    decision = decide(clean_evidence(), policy)
    assert decision.status == "allowed"
    assert decision.reasons == ()
    # An absent manifest on a consented output is recorded, not held against it (DESIGN §5).
    assert decision.notes == ("provenance_absent",)
    assert decision.review is None
    assert decision.policy_version == policy.version
    assert decision.scores == {
        "minor_presence": 0.01,
        "nonconsensual_transformation": 0.01,
        "sexual_content": 0.01,
    }


def test_output_with_no_sources_and_trusted_provenance_is_allowed(policy):
    evidence = clean_evidence(sources=(), provenance=ProvenanceFacts(state="trusted"))
    decision = decide(evidence, policy)
    assert (decision.status, decision.reasons, decision.notes) == ("allowed", (), ())


@pytest.mark.parametrize(
    ("changes", "status", "reasons"),
    [
        # Image.
        ({"image": None}, "review", ("evidence_unavailable",)),
        ({"image": ImageFacts(decoded=False, error="timeout")}, "review", ("evidence_timeout",)),
        (
            {"image": ImageFacts(decoded=False, error="image_too_many_pixels")},
            "blocked",
            ("image_unreadable",),
        ),
        (
            {"image": ImageFacts(decoded=False, error="image_corrupt")},
            "blocked",
            ("image_unreadable",),
        ),
        # Prompt.
        ({"prompt": PromptFacts(error="timeout")}, "review", ("evidence_timeout",)),
        ({"prompt": PromptFacts(error="crashed")}, "review", ("evidence_unavailable",)),
        (
            {"prompt": PromptFacts(matched=("undressing",))},
            "blocked",
            ("prompt_abusive_intent", "consent_use_not_permitted"),
        ),
        ({"prompt": PromptFacts(matched=("retired_rule",))}, "blocked", ("prompt_abusive_intent",)),
        # Consent.
        ({"sources": (photo(token_present=False, check=None),)}, "blocked", ("consent_missing",)),
        (
            {"sources": (SourceEvidence(type="selfie", asset_id="x"),)},
            "blocked",
            ("consent_missing",),
        ),
        ({"sources": (photo(check=None, error="timeout"),)}, "review", ("evidence_timeout",)),
        (
            {"sources": (photo(check=None, error="unavailable"),)},
            "review",
            ("evidence_unavailable",),
        ),
        ({"sources": (photo(check=None),)}, "review", ("evidence_unavailable",)),
        (
            {"sources": (photo(check=consent(valid=False)),)},
            "blocked",
            ("consent_token_invalid",),
        ),
        (
            {"sources": (photo(check=consent(reasons=("expired",))),)},
            "blocked",
            ("consent_token_expired",),
        ),
        (
            {"sources": (photo(check=consent(uses=("reference.generate",))),)},
            "blocked",
            ("consent_use_not_permitted",),
        ),
        (
            {"sources": (photo(check=consent(asset_sha256="cd" * 32)),)},
            "blocked",
            ("source_hash_mismatch",),
        ),
        # Provenance.
        ({"provenance": None}, "review", ("evidence_unavailable",)),
        ({"provenance": ProvenanceFacts()}, "review", ("evidence_unavailable",)),
        ({"provenance": ProvenanceFacts(error="timeout")}, "review", ("evidence_timeout",)),
        ({"provenance": ProvenanceFacts(error="reader")}, "review", ("evidence_unavailable",)),
        ({"provenance": ProvenanceFacts(state="invalid")}, "blocked", ("provenance_invalid",)),
        (
            {"provenance": ProvenanceFacts(state="valid_untrusted")},
            "review",
            ("provenance_untrusted",),
        ),
        (
            {"provenance": ProvenanceFacts(state="remote_manifest")},
            "review",
            ("provenance_unverifiable",),
        ),
        (
            {"provenance": ProvenanceFacts(state="unsupported")},
            "review",
            ("provenance_unverifiable",),
        ),
        # Scores.
        ({"classifiers": ()}, "review", ("score_missing",)),
        (
            {
                "classifiers": (
                    ClassifierResult(classifier="http", origin="computed", error="timeout"),
                )
            },
            "review",
            ("classifier_unavailable",),
        ),
        (
            {
                "classifiers": (
                    ClassifierResult(
                        classifier="supplied",
                        origin="supplied",
                        scores={"minor_presence": 0.0, "nonconsensual_transformation": 0.0},
                        invalid=(InvalidScore(category="sexual_content", raw="nan"),),
                    ),
                )
            },
            "review",
            ("classifier_invalid_score",),
        ),
        ({"classifiers": (scores(sexual_content=0.9),)}, "blocked", None),
        (
            {"classifiers": (scores(minor_presence=0.3),), "sources": GUARDIAN},
            "review",
            ("score_minor_presence_review", "minor_guardian_review"),
        ),
        (
            {"classifiers": (scores(minor_presence=0.3),)},
            "blocked",
            ("minor_real_person", "score_minor_presence_review"),
        ),
        ({"classifiers": (scores(violence=0.95),)}, "blocked", ("score_violence_block",)),
        ({"classifiers": (scores(self_harm=0.5),)}, "review", ("score_self_harm_review",)),
        # Hashes.
        ({"hashes": None}, "review", ("evidence_unavailable",)),
        ({"hashes": HashFacts(error="timeout")}, "review", ("evidence_timeout",)),
        ({"hashes": HashFacts(error="index_not_loaded")}, "review", ("evidence_unavailable",)),
        (
            {"hashes": HashFacts(matches=(match("known-abuse", "block", 3),))},
            "blocked",
            ("hash_match_block",),
        ),
        (
            {"hashes": HashFacts(matches=(match("known-abuse", "block", 8),))},
            "review",
            ("hash_match_review",),
        ),
        (
            {"hashes": HashFacts(matches=(match("watch", "review", 0),))},
            "review",
            ("hash_match_review",),
        ),
        ({"hashes": HashFacts(matches=(match("known-abuse", "block", 11),))}, "allowed", ()),
    ],
)
def test_each_reason_path(policy, changes, status, reasons):
    # A trusted manifest keeps each case to its own reason (an absent one counts whenever
    # consent fails; that has its own test).
    decision = decide(clean_evidence(**{"provenance": TRUSTED, **changes}), policy)
    assert decision.status == status
    if reasons is not None:
        assert decision.reasons == reasons
    assert all(code in REASONS or code.startswith("score_") for code in decision.reasons)


@pytest.mark.parametrize(("consent_reason", "code"), sorted(CONSENT_REASONS.items()))
def test_every_consent_reason_maps_to_a_blocking_or_review_reason(policy, consent_reason, code):
    check = consent(valid=False, reasons=(consent_reason,))
    decision = decide(clean_evidence(sources=(photo(check=check),), provenance=TRUSTED), policy)
    assert decision.reasons == (code,)
    assert decision.status in {"blocked", "review"}
    assert decision.findings[0].subject == "photo-1"


def test_an_unknown_consent_reason_blocks_as_invalid(policy):
    check = consent(valid=False, reasons=("quantum",))
    decision = decide(clean_evidence(sources=(photo(check=check),), provenance=TRUSTED), policy)
    assert (decision.status, decision.reasons) == ("blocked", ("consent_token_invalid",))


def test_a_check_that_says_valid_but_gives_reasons_is_not_trusted(policy):
    check = consent(valid=True, reasons=("revoked",))
    decision = decide(clean_evidence(sources=(photo(check=check),), provenance=TRUSTED), policy)
    assert decision.reasons == ("consent_token_revoked",)


def test_explicit_score_needs_content_explicit(policy):
    evidence = clean_evidence(classifiers=(scores(sexual_content=0.6),), provenance=TRUSTED)
    decision = decide(evidence, policy)
    assert decision.status == "blocked"
    assert decision.reasons == ("consent_use_not_permitted", "score_sexual_content_review")
    finding = next(f for f in decision.findings if f.code == "consent_use_not_permitted")
    assert finding.detail == "content.suggestive,content.explicit"


def test_explicit_score_with_explicit_consent_still_goes_to_review_by_default(policy):
    evidence = clean_evidence(
        sources=(photo(check=consent(uses=EXPLICIT_USES)),),
        classifiers=(scores(sexual_content=0.6),),
    )
    decision = decide(evidence, policy)
    assert (decision.status, decision.reasons) == ("review", ("score_sexual_content_review",))
    assert decision.review.tier == "high"
    assert decision.review.deadline == NOW + dt.timedelta(minutes=240)


def test_a_waiver_use_lets_consented_explicit_output_through():
    from moderation import default_policy

    text = default_policy().text.replace(
        "required = true\nuses = [",
        'required = true\nwaived_by_use = "content.explicit"\nuses = [',
        1,
    )
    policy = load_policy(text)
    consented = clean_evidence(
        sources=(photo(check=consent(uses=EXPLICIT_USES)),),
        classifiers=(scores(sexual_content=0.95),),
    )
    decision = decide(consented, policy)
    assert (decision.status, decision.notes) == (
        "allowed",
        ("provenance_absent", "score_sexual_content_block"),
    )
    # Without a real person there is nobody whose consent could waive anything.
    anonymous = clean_evidence(sources=(), classifiers=(scores(sexual_content=0.95),))
    assert decide(anonymous, policy).status == "blocked"


def test_undressing_prompt_with_explicit_consent_is_not_held_against_it(policy):
    evidence = clean_evidence(
        prompt=PromptFacts(matched=("undressing",)),
        sources=(photo(check=consent(uses=EXPLICIT_USES)),),
    )
    assert decide(evidence, policy).status == "allowed"


def test_real_person_prompt_rules_do_not_apply_without_a_real_person(policy):
    evidence = clean_evidence(prompt=PromptFacts(matched=("undressing",)), sources=(artwork(),))
    assert decide(evidence, policy).status == "allowed"


def test_minor_sexual_prompt_blocks_whatever_the_sources_and_consent(policy):
    for sources in [(), (artwork(),), (photo(check=consent(uses=EXPLICIT_USES)),)]:
        evidence = clean_evidence(prompt=PromptFacts(matched=("minor_sexual",)), sources=sources)
        decision = decide(evidence, policy)
        assert decision.status == "blocked"
        assert "prompt_abusive_intent" in decision.reasons


def test_artwork_without_token_needs_no_consent_but_a_token_on_it_is_checked(policy):
    assert decide(clean_evidence(sources=(artwork(),)), policy).status == "allowed"
    tokened = SourceEvidence(
        type="artwork",
        asset_id="art-1",
        token_present=True,
        check=ConsentCheck(valid=False, reasons=("audience",)),
    )
    decision = decide(clean_evidence(sources=(tokened,)), policy)
    assert decision.reasons == ("consent_wrong_audience",)


def test_absent_provenance_counts_when_consent_fails(policy):
    evidence = clean_evidence(sources=(photo(token_present=False, check=None),))
    decision = decide(evidence, policy)
    assert decision.reasons == ("consent_missing", "provenance_absent")


def test_absent_provenance_can_be_penalised_by_policy(policy):
    strict = load_policy(
        policy.text.replace(
            "absent_allowed_when_consented = true", "absent_allowed_when_consented = false"
        )
    )
    decision = decide(clean_evidence(), strict)
    assert (decision.status, decision.reasons) == ("review", ("provenance_absent",))


def test_a_second_classifier_cannot_lower_a_score(policy):
    low = ClassifierResult(classifier="http", origin="computed", scores={"sexual_content": 0.0})
    high = scores(sexual_content=0.9)
    decision = decide(clean_evidence(classifiers=(low, high)), policy)
    assert decision.scores["sexual_content"] == 0.9
    assert "score_sexual_content_block" in decision.reasons


def test_a_failed_classifier_does_not_matter_when_other_scores_cover_the_policy(policy):
    failed = ClassifierResult(classifier="http", origin="computed", error="http_status")
    decision = decide(clean_evidence(classifiers=(failed, scores())), policy)
    assert decision.status == "allowed"


def test_missing_required_scores_name_each_category(policy):
    decision = decide(clean_evidence(classifiers=()), policy)
    assert [(f.code, f.subject) for f in decision.findings if f.action != "allow"] == [
        ("score_missing", "sexual_content"),
        ("score_missing", "minor_presence"),
        ("score_missing", "nonconsensual_transformation"),
    ]


def test_an_unreadable_image_is_one_reason_not_a_cascade(policy):
    evidence = clean_evidence(
        image=ImageFacts(decoded=False, error="image_corrupt"),
        provenance=None,
        hashes=None,
        classifiers=(),
    )
    assert decide(evidence, policy).reasons == ("image_unreadable",)


def test_hash_match_on_the_consented_source_itself_is_a_note(policy):
    own = match("protected-likeness", "block", 2, source="photo-1")
    decision = decide(clean_evidence(hashes=HashFacts(matches=(own,))), policy)
    assert decision.status == "allowed"
    assert "hash_match_consented" in decision.notes


def test_hash_match_on_a_protected_photo_that_is_not_a_consented_source_blocks(policy):
    other = match("protected-likeness", "block", 2, source="someone-else")
    assert decide(clean_evidence(hashes=HashFacts(matches=(other,))), policy).status == "blocked"
    own_but_revoked = clean_evidence(
        sources=(photo(check=consent(valid=False, reasons=("revoked",))),),
        hashes=HashFacts(matches=(match("protected-likeness", "block", 2, source="photo-1"),)),
    )
    assert decide(own_but_revoked, policy).reasons == (
        "consent_token_revoked",
        "hash_match_block",
        "provenance_absent",
    )


def test_abuse_lists_are_never_exempt(policy):
    abuse = match("known-abuse", "block", 0, source="photo-1")
    assert decide(clean_evidence(hashes=HashFacts(matches=(abuse,))), policy).status == "blocked"


def test_reasons_are_ordered_by_severity_and_deduplicated(policy):
    evidence = clean_evidence(
        sources=(
            photo("a", token_present=False, check=None),
            photo("b", token_present=False, check=None),
        ),
        provenance=ProvenanceFacts(state="valid_untrusted"),
        classifiers=(scores(self_harm=0.5),),
    )
    decision = decide(evidence, policy)
    assert decision.reasons == (
        "consent_missing",
        "provenance_untrusted",
        "score_self_harm_review",
    )
    assert [f.subject for f in decision.findings if f.code == "consent_missing"] == ["a", "b"]


def test_review_takes_the_most_urgent_tier(policy):
    evidence = clean_evidence(
        sources=GUARDIAN,
        provenance=ProvenanceFacts(state="valid_untrusted"),
        classifiers=(scores(minor_presence=0.3),),
    )
    decision = decide(evidence, policy)
    assert decision.status == "review"
    assert (decision.review.tier, decision.review.rank) == ("urgent", 0)
    assert decision.review.deadline == NOW + dt.timedelta(minutes=60)


def test_policy_can_soften_consent_missing_to_review(policy):
    soft = load_policy(
        policy.text.replace('consent_missing = "block"', 'consent_missing = "review"')
    )
    decision = decide(clean_evidence(sources=(photo(token_present=False, check=None),)), soft)
    assert decision.status == "review"
    assert decision.review.tier == "standard"


def test_prompt_stage_needs_no_image_and_checks_declared_uses(policy):
    evidence = clean_evidence(
        stage="prompt", image=None, provenance=None, classifiers=(), hashes=None
    )
    assert decide(evidence, policy).status == "allowed"
    wants_explicit = msgspec.structs.replace(evidence, declared_uses=("content.explicit",))
    decision = decide(wants_explicit, policy)
    assert decision.reasons == ("consent_use_not_permitted",)
    abusive = msgspec.structs.replace(evidence, prompt=PromptFacts(matched=("undressing",)))
    assert decide(abusive, policy).status == "blocked"


def test_prompt_stage_without_a_prompt_result_is_not_allowed(policy):
    evidence = clean_evidence(
        stage="prompt", prompt=None, image=None, provenance=None, classifiers=(), hashes=None
    )
    assert decide(evidence, policy).reasons == ("evidence_unavailable",)


def test_shared_evidence_codes_are_attributed_to_their_step(policy):
    evidence = clean_evidence(
        sources=(photo(check=None, error="timeout"),),
        hashes=HashFacts(error="timeout"),
        provenance=TRUSTED,
    )
    decision = decide(evidence, policy)
    assert [(f.code, f.step, f.subject) for f in decision.findings] == [
        ("evidence_timeout", "consent", "photo-1"),
        ("evidence_timeout", "hashes", "hashes"),
    ]
    assert decision.reasons == ("evidence_timeout",)


def test_required_uses(policy):
    assert required_uses(policy, stage="publish", source_type="photo", scores={}) == (
        "publish.public",
    )
    assert required_uses(policy, stage="prompt", source_type="photo", scores={}) == ()
    assert required_uses(
        policy,
        stage="publish",
        source_type="photo",
        scores={"sexual_content": 0.55},
        prompt_rules=("sexualising", "minor_sexual"),
        declared_uses=("edit.transform",),
    ) == ("edit.transform", "publish.public", "content.suggestive", "content.explicit")
    assert (
        required_uses(
            policy, stage="publish", source_type="artwork", scores={"sexual_content": 0.9}
        )
        == ()
    )


def test_statement_explains_each_reason_in_plain_language(policy):
    decision = decide(clean_evidence(sources=(photo(token_present=False, check=None),)), policy)
    text = decision.statement()
    assert text.startswith("Blocked")
    assert f"- consent_missing: {explain('consent_missing')}" in text
    assert policy.label in text
    review = decide(
        clean_evidence(sources=GUARDIAN, classifiers=(scores(minor_presence=0.5),)), policy
    )
    assert "deadline" in review.statement()
    assert "minor presence score reached the policy's review threshold" in review.statement()


def test_every_reason_has_an_explanation():
    for code, info in REASONS.items():
        assert explain(code) == info.text
        assert info.text.endswith(".")


def test_decision_and_evidence_round_trip_through_json(policy):
    evidence = clean_evidence(
        classifiers=(
            ClassifierResult(
                classifier="supplied",
                origin="supplied",
                scores={"sexual_content": 0.4},
                invalid=(InvalidScore(category="minor_presence", raw="nan"),),
            ),
        ),
        hashes=HashFacts(matches=(match("known-abuse", "block", 9),)),
    )
    stored = encode_evidence(evidence)
    assert decode_evidence(stored) == evidence
    decision = decide(evidence, policy)
    assert msgspec.json.decode(msgspec.json.encode(decision), type=Decision) == decision
    # Replaying stored evidence gives the same decision.
    assert decide(decode_evidence(stored), policy) == decision


FAILURES = [
    {"image": None},
    {"image": ImageFacts(decoded=False, error="timeout")},
    {"prompt": PromptFacts(error="timeout")},
    {"sources": (photo(check=None, error="timeout"),)},
    {"sources": (photo(check=None, error="unavailable"),)},
    {"provenance": None},
    {"provenance": ProvenanceFacts(error="timeout")},
    {"classifiers": ()},
    {"classifiers": (ClassifierResult(classifier="h", origin="computed", error="timeout"),)},
    {"classifiers": (ClassifierResult(classifier="h", origin="computed", error="circuit_open"),)},
    {"hashes": None},
    {"hashes": HashFacts(error="timeout")},
]


@pytest.mark.parametrize("changes", FAILURES)
def test_missing_or_failed_evidence_is_never_allowed_even_under_the_mildest_policy(changes):
    from moderation import default_policy

    text = default_policy().text
    for code in ("image_unreadable", "consent_missing", "provenance_invalid", "hash_match_block"):
        text = text.replace(f'{code} = "block"', f'{code} = "review"')
    for code in ("provenance_untrusted", "provenance_unverifiable", "provenance_absent"):
        text = text.replace(f'{code} = "review"', f'{code} = "allow"')
    mildest = load_policy(text)
    assert decide(clean_evidence(**changes), mildest).status == "review"
