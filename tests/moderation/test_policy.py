"""Loading and validating policy files: every bad policy is refused with the key named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import moderation
from moderation import (
    PolicyKeyMissing,
    PolicySyntaxInvalid,
    PolicyUnknownKey,
    PolicyValueInvalid,
    default_policy,
    load_policy,
)
from moderation.policy import MAX_POLICY_BYTES, PdqBands

DEFAULT_FILE = Path(moderation.__file__).parent / "default_policy.toml"

MINIMAL = """
version = "test-1"

[scores.sexual_content]
review = 0.3
block = 0.7
required = true

[hashes]
block_distance = 6
review_distance = 10

[sources.photo]
consent_required = true

[provenance]
absent_allowed_when_consented = true

[review]
default_tier = "standard"
tiers = [{ name = "urgent", deadline_minutes = 60 }, { name = "standard", deadline_minutes = 1440 }]
"""


def with_lines(*lines: str, base: str = MINIMAL) -> str:
    return base + "\n" + "\n".join(lines) + "\n"


def test_default_policy_loads_and_its_version_is_the_file_hash():
    policy = default_policy()
    data = DEFAULT_FILE.read_bytes()
    assert policy.version == hashlib.sha256(data).hexdigest()
    assert policy.label == "strict-default-2"
    assert policy.text == data.decode()
    assert policy.action("consent_missing") == "block"
    assert policy.action("score_sexual_content_block") == "block"
    assert policy.source_rule("photo").consent_required
    assert not policy.source_rule("artwork").consent_required
    assert {r.category for r in policy.scores if r.required is True} == {
        "sexual_content",
        "minor_presence",
    }
    assert policy.score_rule("nonconsensual_transformation").required == "real_person"
    assert policy.hashes.block_distance <= policy.hashes.review_distance


def test_path_bytes_and_text_load_the_same_policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(MINIMAL)
    versions = {
        load_policy(path).version,
        load_policy(MINIMAL.encode()).version,
        load_policy(MINIMAL).version,
    }
    assert versions == {hashlib.sha256(MINIMAL.encode()).hexdigest()}


def test_any_byte_changes_the_version():
    assert load_policy(MINIMAL).version != load_policy(MINIMAL + "# a comment\n").version


def test_actions_left_out_keep_their_defaults():
    policy = load_policy(MINIMAL)
    assert policy.action("consent_token_revoked") == "block"
    assert policy.action("evidence_timeout") == "review"
    assert policy.action("score_sexual_content_review") == "review"
    assert policy.action("no_such_reason") == "block"


def test_action_overrides_apply():
    policy = load_policy(
        with_lines("[actions]", 'provenance_untrusted = "allow"', 'consent_missing = "review"')
    )
    assert policy.action("provenance_untrusted") == "allow"
    assert policy.action("consent_missing") == "review"


@pytest.mark.parametrize(
    ("text", "error", "key"),
    [
        ('colour = "red"\n' + MINIMAL, PolicyUnknownKey, "colour"),
        (
            MINIMAL.replace("required = true", "requird = true"),
            PolicyUnknownKey,
            "scores.sexual_content.requird",
        ),
        (
            MINIMAL.replace("review_distance = 10", "review_distance = 10\nblock_distence = 3"),
            PolicyUnknownKey,
            "hashes.block_distence",
        ),
        (
            with_lines("[actions]", 'consent_mising = "block"'),
            PolicyUnknownKey,
            "actions.consent_mising",
        ),
        (
            with_lines("[actions]", 'score_violence_block = "block"'),
            PolicyUnknownKey,
            "actions.score_violence_block",
        ),
        (
            with_lines("[review.reason_tiers]", 'nope = "urgent"'),
            PolicyUnknownKey,
            "review.reason_tiers.nope",
        ),
        (
            MINIMAL.replace("required = true", 'required = true\ncategory = "x"'),
            PolicyUnknownKey,
            "scores.sexual_content.category",
        ),
        (
            MINIMAL.replace("consent_required = true", 'consent_required = true\ntype = "x"'),
            PolicyUnknownKey,
            "sources.photo.type",
        ),
        (
            MINIMAL.replace("[provenance]", "[provenance]\nabsent_penalised = false"),
            PolicyUnknownKey,
            "provenance.absent_penalised",
        ),
        (
            with_lines(
                "[[prompt.rules]]", 'id = "r"', 'scope = "any"', 'any = ["xyz"]', "when = 1"
            ),
            PolicyUnknownKey,
            "prompt.rules[0].when",
        ),
    ],
)
def test_unknown_keys_are_refused(text, error, key):
    with pytest.raises(error) as caught:
        load_policy(text)
    assert caught.value.code == "policy_unknown_key"
    assert caught.value.key == key
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('version = "test-1"\n', "", "version"),
        ("[hashes]\nblock_distance = 6\nreview_distance = 10\n", "", "hashes"),
        ("block = 0.7\n", "", "scores.sexual_content.block"),
        ("consent_required = true\n", "", "sources.photo.consent_required"),
        ('default_tier = "standard"\n', "", "review.default_tier"),
    ],
)
def test_missing_keys_are_refused(old, new, key):
    assert old in MINIMAL
    with pytest.raises(PolicyKeyMissing) as caught:
        load_policy(MINIMAL.replace(old, new))
    assert caught.value.code == "policy_key_missing"
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("review = 0.3", "review = 1.5", "scores.sexual_content.review"),
        ("review = 0.3", "review = -0.1", "scores.sexual_content.review"),
        ("block = 0.7", "block = nan", "scores.sexual_content.block"),
        ("block = 0.7", "block = inf", "scores.sexual_content.block"),
        ("block = 0.7", 'block = "high"', "scores.sexual_content.block"),
        ("review = 0.3", "review = 0.8", "scores.sexual_content.review"),
        ("required = true", 'required = "yes"', "scores.sexual_content.required"),
        ("review_distance = 10", "review_distance = 65", "hashes.review_distance"),
        ("block_distance = 6", "block_distance = -1", "hashes.block_distance"),
        ("block_distance = 6", "block_distance = 12", "hashes.block_distance"),
        ('version = "test-1"', 'version = "  "', "version"),
        ('version = "test-1"', "version = 3", "version"),
        ("[scores.sexual_content]", "[scores.Sexual]", "scores.Sexual"),
        ("[sources.photo]", "[sources.real-photo]", "sources.real-photo"),
        ('default_tier = "standard"', 'default_tier = "later"', "review.default_tier"),
        ("deadline_minutes = 60", "deadline_minutes = 0", "review.tiers[0].deadline_minutes"),
        ("deadline_minutes = 60", "deadline_minutes = 2000", "review.tiers[1].deadline_minutes"),
        ('name = "urgent"', 'name = "standard"', "review.tiers[1].name"),
        ("[hashes]\nblock_distance = 6\nreview_distance = 10\n", "", "hashes"),
        (
            "review_distance = 10",
            "review_distance = 10\n[hashes.pdq]\nreview_distance = 257",
            "hashes.pdq.review_distance",
        ),
        (
            "review_distance = 10",
            "review_distance = 10\n[hashes.pdq]\nblock_distance = 32",
            "hashes.pdq.block_distance",
        ),
        (
            "review_distance = 10",
            "review_distance = 10\n[hashes.pdq]\nquality_floor = 101",
            "hashes.pdq.quality_floor",
        ),
    ],
)
def test_bad_values_are_refused(old, new, key):
    assert old in MINIMAL
    text = MINIMAL.replace(old, new)
    if key == "hashes":
        text = "hashes = 3\n" + text
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text)
    assert caught.value.code == "policy_value_invalid"
    assert caught.value.key == key


@pytest.mark.parametrize("action", ["deny", "ALLOW", "1", "true"])
def test_an_action_that_is_not_allow_review_or_block_is_refused(action):
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(with_lines("[actions]", f'consent_missing = "{action}"'))
    assert caught.value.key == "actions.consent_missing"


def test_an_action_that_is_not_a_string_is_refused():
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(with_lines("[actions]", "hash_match_block = 2"))
    assert caught.value.key == "actions.hash_match_block"


@pytest.mark.parametrize(
    "code",
    [
        "consent_missing",
        "consent_token_revoked",
        "consent_use_not_permitted",
        "evidence_timeout",
        "classifier_unavailable",
        "classifier_invalid_score",
        "score_missing",
        "image_unreadable",
        "provenance_invalid",
        "hash_match_block",
        "prompt_abusive_intent",
    ],
)
def test_fail_closed_reasons_cannot_be_set_to_allow(code):
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(with_lines("[actions]", f'{code} = "allow"'))
    assert caught.value.key == f"actions.{code}"
    assert "milder" in caught.value.message


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        (['id = "r"', 'scope = "any"', 'any = ["xyz"]', 'all = [["y"]]'], "prompt.rules[0]"),
        (['id = "r"', 'scope = "any"'], "prompt.rules[0]"),
        (['id = "r"', 'scope = "anyone"', 'any = ["xyz"]'], "prompt.rules[0].scope"),
        (['id = "r"', 'scope = "any"', 'any = ["Undress"]'], "prompt.rules[0].any[0]"),
        (['id = "r"', 'scope = "any"', 'any = ["okay", "... x"]'], "prompt.rules[0].any[1]"),
        (['id = "r"', 'scope = "any"', 'any = ["(a|b)"]'], "prompt.rules[0].any[0]"),
        (['id = "r"', 'scope = "any"', 'all = [["apple"], []]'], "prompt.rules[0].all[1]"),
        (
            ['id = "r"', 'scope = "any"', 'all = [["apple"], ["berry", "c d?"]]'],
            "prompt.rules[0].all[1][1]",
        ),
        (['id = "R 1"', 'scope = "any"', 'any = ["xyz"]'], "prompt.rules[0].id"),
        (
            ['id = "r"', 'scope = "any"', 'any = ["xyz"]', 'requires_use = "Explicit!"'],
            "prompt.rules[0].requires_use",
        ),
        (
            ['id = "r"', 'scope = "any"', 'any = ["xyz"]', 'requires_use = "content.explicitt"'],
            "prompt.rules[0].requires_use",
        ),
        (
            ['id = "r"', 'scope = "any"', 'any = ["xyz"]', 'languages = ["en", "Spanish"]'],
            "prompt.rules[0].languages[1]",
        ),
        (
            ['id = "r"', 'scope = "any"', 'any = ["xyz"]', 'languages = ["e"]'],
            "prompt.rules[0].languages[0]",
        ),
        (
            ['id = "r"', 'scope = "any"', 'any = ["xyz"]', "languages = [3]"],
            "prompt.rules[0].languages[0]",
        ),
    ],
)
def test_bad_prompt_rules_are_refused(lines, key):
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(with_lines("[[prompt.rules]]", *lines))
    assert caught.value.key == key


def test_duplicate_prompt_rule_ids_are_refused():
    rule = ["[[prompt.rules]]", 'id = "r"', 'scope = "any"', 'any = ["xyz"]']
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(with_lines(*rule, *rule))
    assert caught.value.key == "prompt.rules[1].id"


def test_bad_use_names_are_refused():
    text = MINIMAL.replace(
        "required = true", 'required = true\nuses = [{ at_least = 0.2, use = "x y" }]'
    )
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text)
    assert caught.value.key == "scores.sexual_content.uses[0].use"
    text = MINIMAL.replace(
        "consent_required = true", 'consent_required = true\npublish_uses = ["."]'
    )
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text)
    assert caught.value.key == "sources.photo.publish_uses[0]"


def test_bad_exempt_list_name_is_refused():
    text = MINIMAL.replace(
        "review_distance = 10", 'review_distance = 10\nconsent_exempt_lists = ["Bad List"]'
    )
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text)
    assert caught.value.key == "hashes.consent_exempt_lists[0]"


@pytest.mark.parametrize(
    "data",
    [
        b"version = \n",
        b"[scores\n",
        "version = 'caf\u00e9'".encode("latin-1"),
        b"x" * (MAX_POLICY_BYTES + 1),
    ],
)
def test_unreadable_files_are_refused(data):
    with pytest.raises(PolicySyntaxInvalid) as caught:
        load_policy(data)
    assert caught.value.code == "policy_syntax_invalid"


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(PolicySyntaxInvalid):
        load_policy(tmp_path / "absent.toml")


def test_review_tiers_route_reasons():
    policy = default_policy()
    assert policy.review.tier_for("score_minor_presence_review")[1].name == "urgent"
    assert policy.review.tier_for("score_sexual_content_review")[1].name == "high"
    rank, tier = policy.review.tier_for("evidence_timeout")
    assert (rank, tier.name, tier.deadline_minutes) == (2, "standard", 1440)


@pytest.mark.parametrize(
    ("shipped", "misspelt", "key"),
    [
        (
            'use = "content.explicit" }',
            'use = "content.explicitt" }',
            "scores.sexual_content.uses[1].use",
        ),
        (
            'publish_uses = ["publish.public"]',
            'publish_uses = ["publish.everywhere"]',
            "sources.photo.publish_uses[0]",
        ),
    ],
)
def test_a_use_outside_the_vocabulary_is_refused_naming_it(shipped, misspelt, key):
    text = (Path(moderation.__file__).parent / "default_policy.toml").read_text()
    assert shipped in text
    with pytest.raises(PolicyValueInvalid) as caught:
        load_policy(text.replace(shipped, misspelt).encode())
    assert caught.value.key == key
    assert "not a use of the vocabulary" in str(caught.value)


def test_pdq_bands_default_to_the_exchanges_practice_and_can_be_set():
    assert load_policy(MINIMAL).hashes.pdq == PdqBands()
    assert PdqBands().review_distance == 31
    text = MINIMAL.replace(
        "review_distance = 10",
        "review_distance = 10\n[hashes.pdq]\nblock_distance = 16\nreview_distance = 24",
    )
    bands = load_policy(text).hashes
    assert (bands.bands("pdq"), bands.bands("phash")) == ((16, 24), (6, 10))
    assert bands.pdq.quality_floor == 50
    with pytest.raises(PolicyUnknownKey) as caught:
        load_policy(
            MINIMAL.replace(
                "review_distance = 10", "review_distance = 10\n[hashes.pdq]\nquality = 5"
            )
        )
    assert caught.value.key == "hashes.pdq.quality"


def test_a_rule_states_its_languages():
    policy = load_policy(
        with_lines(
            "[[prompt.rules]]",
            'id = "r"',
            'scope = "any"',
            'any = ["desnud*"]',
            'languages = ["es", "pt-br"]',
        )
    )
    assert policy.prompt_rule("r").languages == ("es", "pt-br")


def test_a_policy_declares_its_own_score_and_prompt_score_categories():
    policy = load_policy(
        with_lines(
            "[scores.deepfake_artifacts]",
            "review = 0.4",
            "block = 0.9",
            'required = "real_person"',
            "[prompt.scores.jailbreak]",
            "review = 0.6",
            "block = 0.95",
            "[actions]",
            'score_deepfake_artifacts_review = "block"',
            'prompt_score_jailbreak_review = "block"',
        )
    )
    rule = policy.score_rule("deepfake_artifacts")
    assert (rule.review, rule.block, rule.required) == (0.4, 0.9, "real_person")
    assert policy.action("score_deepfake_artifacts_review") == "block"
    assert policy.prompt_score_rule("jailbreak").block == 0.95
    assert policy.action("prompt_score_jailbreak_review") == "block"
    assert policy.action("prompt_score_jailbreak_block") == "block"


@pytest.mark.parametrize(
    ("lines", "key", "error"),
    [
        (
            ["[prompt.scores.intent]", "review = 0.9", "block = 0.5"],
            "prompt.scores.intent.review",
            PolicyValueInvalid,
        ),
        (
            ["[prompt.scores.intent]", "review = 1.5", "block = 0.5"],
            "prompt.scores.intent.review",
            PolicyValueInvalid,
        ),
        (
            ["[prompt.scores.Intent]", "review = 0.1", "block = 0.5"],
            "prompt.scores.Intent",
            PolicyValueInvalid,
        ),
        (
            ["[prompt.scores.intent]", "review = 0.1", "block = 0.5", "required = true"],
            "prompt.scores.intent.required",
            PolicyUnknownKey,
        ),
        (
            ["[prompt.scores.intent]", "review = 0.1"],
            "prompt.scores.intent.block",
            PolicyKeyMissing,
        ),
        (
            ["[scores.x]", "review = 0.1", "block = 0.5", 'required = "sometimes"'],
            "scores.x.required",
            PolicyValueInvalid,
        ),
        (
            ["[scores.x]", "review = 0.1", "block = 0.5", 'enabled = "no"'],
            "scores.x.enabled",
            PolicyValueInvalid,
        ),
        (
            ["[actions]", 'prompt_score_intent_block = "block"'],
            "actions.prompt_score_intent_block",
            PolicyUnknownKey,
        ),
        (
            ["[actions]", 'score_unknown_category = "maybe"'],
            "actions.score_unknown_category",
            PolicyValueInvalid,
        ),
    ],
)
def test_bad_score_categories_are_refused(lines, key, error):
    with pytest.raises(error) as caught:
        load_policy(with_lines(*lines))
    assert caught.value.key == key
