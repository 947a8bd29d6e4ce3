"""Likely minors (the policy's ``[minors]``): never published automatically from a real
person's photo, never at all when the image is likely sexual, whatever the policy says."""

from __future__ import annotations

import itertools

import pytest

from moderation import PolicyValueInvalid, decide, default_policy, load_policy
from moderation.reasons import REASONS
from tests.moderation.support import clean_evidence, consent, photo, scores

GUARDIAN = (photo(check=consent(signer_role="guardian")),)
SUBJECT = (photo(check=consent(signer_role="subject")),)


def decided(policy, *, sources=SUBJECT, **values):
    return decide(clean_evidence(sources=sources, classifiers=(scores(**values),)), policy)


def test_a_likely_minor_from_a_real_persons_photo_is_blocked(policy):
    decision = decided(policy, minor_presence=0.4)
    assert decision.status == "blocked"
    assert decision.reasons[0] == "minor_real_person"
    assert not decision.legal_report


def test_a_guardians_consent_leads_to_review_never_to_allowed(policy):
    decision = decided(policy, sources=GUARDIAN, minor_presence=0.4)
    assert decision.status == "review"
    assert "minor_guardian_review" in decision.reasons
    assert "minor_real_person" not in decision.reasons
    assert decision.review is not None
    assert decision.review.tier == "urgent"


def test_every_real_person_source_needs_a_guardians_consent(policy):
    sources = (GUARDIAN[0], photo("photo-2", check=consent(signer_role="agent")))
    assert decided(policy, sources=sources, minor_presence=0.4).reasons[0] == "minor_real_person"
    # A guardian's form that does not cover the request is no guardian's consent for it.
    broken = (photo(check=consent(signer_role="guardian", valid=False, reasons=())),)
    assert "minor_real_person" in decided(policy, sources=broken, minor_presence=0.4).reasons


def test_likely_sexual_content_with_a_likely_minor_is_blocked_and_flagged(policy):
    for sources in (GUARDIAN, SUBJECT, ()):
        decision = decided(policy, sources=sources, minor_presence=0.3, sexual_content=0.35)
        assert decision.status == "blocked"
        assert "minor_sexual" in decision.reasons
        assert decision.legal_report


def test_below_the_threshold_or_without_a_real_person_the_score_bands_decide(policy):
    below = decided(policy, minor_presence=0.2)
    assert not {"minor_real_person", "minor_guardian_review"} & set(below.reasons)
    # No real-person source: the score band sends it to a person, as before.
    artwork = decided(policy, sources=(), minor_presence=0.5)
    assert artwork.status == "review"
    assert "minor_real_person" not in artwork.reasons


def test_no_policy_can_make_a_likely_minor_from_a_real_photo_allowed():
    """The loosest policy the loader accepts, and every combination of scores and consent."""
    text = default_policy().text
    loose = text.replace(
        'score_minor_presence_review = "review"', 'score_minor_presence_review = "allow"'
    )
    loose = loose.replace(
        'score_sexual_content_review = "review"', 'score_sexual_content_review = "allow"'
    )
    loose = loose.replace("\nthreshold = 0.25", "\nthreshold = 0.5")
    loose = loose.replace("sexual_threshold = 0.3", "sexual_threshold = 0.5")
    policy = load_policy(loose)
    assert (policy.minors.threshold, policy.minors.sexual_threshold) == (0.5, 0.5)
    for minor, sexual, sources in itertools.product(
        (0.5, 0.75, 1.0), (0.0, 0.5, 1.0), (GUARDIAN, SUBJECT)
    ):
        decision = decided(policy, sources=sources, minor_presence=minor, sexual_content=sexual)
        assert decision.status != "allowed", (minor, sexual, sources)
    for minor, sexual, sources in itertools.product(
        (0.25, 0.5, 0.9, 1.0), (0.0, 0.3, 0.7), (GUARDIAN, SUBJECT)
    ):
        decision = decided(
            default_policy(), sources=sources, minor_presence=minor, sexual_content=sexual
        )
        assert decision.status != "allowed", (minor, sexual, sources)


@pytest.mark.parametrize(
    ("code", "milder"),
    [
        ("minor_guardian_review", "allow"),
        ("minor_real_person", "review"),
        ("minor_real_person", "allow"),
        ("minor_sexual", "review"),
    ],
)
def test_the_loader_refuses_to_lower_a_minors_floor(code, milder):
    text = default_policy().text
    assert f'{code} = "' in text
    lowered = text.replace(f'{code} = "{REASONS[code].default}"', f'{code} = "{milder}"')
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(lowered)
    assert caught.value.key == f"actions.{code}"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("threshold = 0.25\n", "threshold = 1.5\n", "minors.threshold"),
        ("threshold = 0.25\n", "threshold = 0.6\n", "minors.threshold"),
        ("sexual_threshold = 0.3", "sexual_threshold = 0.9", "minors.sexual_threshold"),
        ("sexual_threshold = 0.3", "sexual_threshold = -0.1", "minors.sexual_threshold"),
        ("threshold = 0.25\n", 'threshold = "low"\n', "minors.threshold"),
    ],
)
def test_bad_minors_values_are_refused(old, new, key):
    text = default_policy().text
    section = text.index("[minors]\n")
    at = text.index(old, section)
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text[:at] + new + text[at + len(old) :])
    assert caught.value.key == key
