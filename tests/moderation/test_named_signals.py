"""Named signals (issue 16, item 2) and supplied prompt-intent scores (item 3): which scores
count, which are required, and which are recorded without counting."""

from __future__ import annotations

import pytest

from moderation import ClassifierResult, PromptFacts, decide, load_policy
from moderation.evidence import ProvenanceFacts
from moderation.prompts import PromptMatch
from tests.moderation.support import BASE_USES, clean_evidence, consent, photo, scores

TRUSTED = ProvenanceFacts(state="trusted")
FACE_USES = (*BASE_USES, "likeness.match")


def only(**values: float) -> ClassifierResult:
    return ClassifierResult(classifier="supplied", origin="supplied", scores=values)


def findings(decision):
    return [(f.code, f.action, f.subject, f.detail) for f in decision.findings]


def with_face_enabled(policy):
    text = policy.text.replace("block = 0.95\nenabled = false\n", "block = 0.95\nenabled = true\n")
    assert text != policy.text
    return load_policy(text)


@pytest.mark.parametrize(
    ("value", "status", "reasons"),
    [
        (0.29, "allowed", ()),
        (0.3, "review", ("score_nonconsensual_transformation_review",)),
        (0.79, "review", ("score_nonconsensual_transformation_review",)),
        (0.8, "blocked", ("score_nonconsensual_transformation_block",)),
    ],
)
def test_nonconsensual_transformation_has_review_and_block_bands(policy, value, status, reasons):
    evidence = clean_evidence(
        provenance=TRUSTED, classifiers=(scores(nonconsensual_transformation=value),)
    )
    decision = decide(evidence, policy)
    assert (decision.status, decision.reasons) == (status, reasons)


def test_nonconsensual_transformation_is_required_with_a_real_person_source(policy):
    evidence = clean_evidence(
        provenance=TRUSTED, classifiers=(only(sexual_content=0.01, minor_presence=0.01),)
    )
    decision = decide(evidence, policy)
    assert decision.status == "review"
    assert [(f.code, f.subject) for f in decision.findings] == [
        ("score_missing", "nonconsensual_transformation")
    ]


def test_nonconsensual_transformation_is_not_required_without_one(policy):
    evidence = clean_evidence(
        sources=(),
        provenance=TRUSTED,
        classifiers=(only(sexual_content=0.01, minor_presence=0.01),),
    )
    assert decide(evidence, policy).status == "allowed"


def test_face_similarity_is_off_in_the_default_policy_and_recorded_as_not_permitted(policy):
    consented = photo(check=consent(uses=FACE_USES))
    evidence = clean_evidence(
        provenance=TRUSTED, sources=(consented,), classifiers=(scores(face_similarity=0.99),)
    )
    decision = decide(evidence, policy)
    assert decision.status == "allowed"
    assert decision.notes == ("face_similarity_not_permitted",)
    assert findings(decision) == [
        ("face_similarity_not_permitted", "allow", "face_similarity", "0.9900")
    ]
    assert decision.scores["face_similarity"] == 0.99


def test_face_similarity_without_likeness_match_is_ignored_even_when_enabled(policy):
    enabled = with_face_enabled(policy)
    evidence = clean_evidence(provenance=TRUSTED, classifiers=(scores(face_similarity=0.99),))
    decision = decide(evidence, enabled)
    assert (decision.status, decision.notes) == ("allowed", ("face_similarity_not_permitted",))


def test_face_similarity_without_a_real_person_source_is_ignored(policy):
    enabled = with_face_enabled(policy)
    evidence = clean_evidence(
        sources=(), provenance=TRUSTED, classifiers=(scores(face_similarity=0.99),)
    )
    decision = decide(evidence, enabled)
    assert (decision.status, decision.notes) == ("allowed", ("face_similarity_not_permitted",))


@pytest.mark.parametrize(
    ("value", "status", "reasons"),
    [
        (0.5, "allowed", ()),
        (0.9, "review", ("score_face_similarity_review",)),
        (0.97, "blocked", ("score_face_similarity_block",)),
    ],
)
def test_face_similarity_counts_when_enabled_and_every_consent_grants_likeness_match(
    policy, value, status, reasons
):
    enabled = with_face_enabled(policy)
    consented = photo(check=consent(uses=FACE_USES))
    evidence = clean_evidence(
        provenance=TRUSTED, sources=(consented,), classifiers=(scores(face_similarity=value),)
    )
    decision = decide(evidence, enabled)
    assert (decision.status, decision.reasons, decision.notes) == (status, reasons, ())


def test_one_source_without_likeness_match_keeps_face_similarity_out(policy):
    enabled = with_face_enabled(policy)
    sources = (
        photo(check=consent(uses=FACE_USES)),
        photo(asset_id="photo-2", check=consent(uses=BASE_USES)),
    )
    evidence = clean_evidence(
        provenance=TRUSTED, sources=sources, classifiers=(scores(face_similarity=0.99),)
    )
    decision = decide(evidence, enabled)
    assert "score_face_similarity_block" not in decision.reasons
    assert "face_similarity_not_permitted" in decision.notes


def test_unknown_score_names_are_recorded_not_dropped(policy):
    evidence = clean_evidence(
        provenance=TRUSTED, classifiers=(scores(aesthetics=0.9, sexual_contnet=0.95),)
    )
    decision = decide(evidence, policy)
    assert decision.status == "allowed"
    assert decision.notes == ("score_unknown_category",)
    assert [(f.subject, f.detail) for f in decision.findings] == [
        ("aesthetics", "0.9000"),
        ("sexual_contnet", "0.9500"),
    ]


def test_a_policy_may_declare_its_own_category(policy):
    text = policy.text.replace(
        "[scores.violence]",
        '[scores.deepfake_artifacts]\nreview = 0.4\nblock = 0.9\nrequired = "real_person"\n\n'
        "[scores.violence]",
    )
    custom = load_policy(text)
    seen = decide(
        clean_evidence(provenance=TRUSTED, classifiers=(scores(deepfake_artifacts=0.5),)), custom
    )
    assert (seen.status, seen.reasons, seen.notes) == (
        "review",
        ("score_deepfake_artifacts_review",),
        (),
    )
    missing = decide(clean_evidence(provenance=TRUSTED), custom)
    assert [(f.code, f.subject) for f in missing.findings] == [
        ("score_missing", "deepfake_artifacts")
    ]
    # Under the default policy the same score is an unknown category.
    assert decide(
        clean_evidence(provenance=TRUSTED, classifiers=(scores(deepfake_artifacts=0.5),)), policy
    ).notes == ("score_unknown_category",)


@pytest.mark.parametrize(
    ("value", "status", "reasons"),
    [
        (0.49, "allowed", ()),
        (0.5, "review", ("prompt_score_prompt_intent_review",)),
        (0.9, "blocked", ("prompt_score_prompt_intent_block",)),
    ],
)
@pytest.mark.parametrize("stage", ["publish", "prompt"])
def test_supplied_prompt_scores_count_in_the_prompt_step(policy, stage, value, status, reasons):
    prompt = PromptFacts(scores={"prompt_intent": value})
    changes = {"stage": stage, "prompt": prompt, "provenance": TRUSTED}
    decision = decide(clean_evidence(**changes), policy)
    assert (decision.status, decision.reasons) == (status, reasons)
    for finding in decision.findings:
        if finding.code.startswith("prompt_score_"):
            assert (finding.step, finding.subject) == ("prompt", "prompt_intent")


def test_unknown_prompt_score_names_are_recorded(policy):
    prompt = PromptFacts(scores={"toxicity": 0.99})
    decision = decide(clean_evidence(stage="prompt", prompt=prompt), policy)
    assert decision.status == "allowed"
    assert [(f.code, f.step, f.subject) for f in decision.findings] == [
        ("score_unknown_category", "prompt", "prompt:toxicity")
    ]


def test_a_prompt_match_is_recorded_with_its_normalised_fragment(policy):
    prompt = PromptFacts(
        matched=("undressing",),
        matches=(PromptMatch(rule="undressing", fragments=("remove her clothes",)),),
    )
    decision = decide(clean_evidence(provenance=TRUSTED, prompt=prompt), policy)
    assert decision.status == "blocked"
    assert [(f.code, f.subject, f.detail) for f in decision.findings] == [
        ("prompt_abusive_intent", "undressing", "remove her clothes"),
        ("consent_use_not_permitted", "photo-1", "content.explicit"),
    ]
