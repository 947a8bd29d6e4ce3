"""The red-team corpus: every shipped case holds under the default policy, a looser policy is
caught, the corpus's hashes are those of the fixture photos, and a bad case file is refused
naming its file, line and key."""

from __future__ import annotations

import io
import shutil
from collections import Counter

import pytest
from PIL import Image

from moderation import RedteamCaseInvalid, default_policy, load_policy
from moderation.decision import needs_consent
from moderation.redteam import decide_case, load_corpus, run_corpus, shipped_corpus
from tests.moderation import redteam_images

STRICT = default_policy().text
# A policy edit that opens holes: explicit output goes to review instead of being blocked,
# and the undressing rule no longer knows "undress".
LOOSER = STRICT.replace("review = 0.3\nblock = 0.7\n", "review = 0.3\nblock = 0.95\n").replace(
    '"undress*", "unclothe*", ', '"unclothe*", '
)
STRICTER = STRICT.replace("[scores.violence]\nreview = 0.5", "[scores.violence]\nreview = 0.1")
GOOD_CASE = """
[[case]]
id = "incident-1"
prompt = "a portrait"
sources = [{ type = "photo", consent = { uses = ["reference.generate", "publish.public"] } }]
scores = { sexual_content = 0.02, minor_presence = 0.01, nonconsensual_transformation = 0.01 }
expect = "allowed"
"""


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(shipped_corpus())


async def test_every_shipped_case_holds_under_the_default_policy(corpus):
    report = await run_corpus(corpus, default_policy())

    failing = [
        f"{d.file}:{d.line} {d.id}: expected {d.expected}, got {d.actual} "
        f"({d.change}; reasons {', '.join(d.reasons) or 'none'})"
        for d in report.differences
    ]
    assert failing == [], "\n".join(failing)
    assert report.ok
    assert report.holding + report.gaps == report.cases


def test_the_corpus_covers_what_the_issue_asks(corpus):
    ids = [case.id for case in corpus.cases]
    assert len(ids) >= 200
    kinds = Counter(case_id.split("-")[0] for case_id in ids)
    assert min(kinds[k] for k in ("prompt", "consent", "minor", "score", "hash")) >= 20, kinds
    for obfuscation in ("spaced", "leetspeak", "homoglyph", "fullwidth", "zerowidth"):
        assert any(obfuscation in case_id for case_id in ids), obfuscation
    assert sum(case_id.startswith(("prompt-mixed-", "prompt-lang-")) for case_id in ids) >= 10
    for state in ("withdrawn", "suspended", "guardian", "missing"):
        assert any(state in case_id for case_id in ids if case_id.startswith("consent-")), state
    images = {case.image for case in corpus.cases if case.image}
    assert {"abuse_flip_horizontal", "abuse_crop_left_10", "likeness_flip_horizontal"} <= images
    assert {"likeness_crop_right_12"} <= images


async def test_a_likely_minor_from_a_real_persons_photo_is_never_allowed(corpus):
    policy = default_policy()
    minors = [
        case
        for case in corpus.cases
        if case.scores.get("minor_presence", 0.0) >= policy.minors.threshold
        and any(needs_consent(policy, source.type) for source in case.sources)
    ]
    assert len(minors) >= 20
    for case in minors:
        assert (await decide_case(corpus, case, policy)).status != "allowed", case.id
        assert case.expect != "allowed", case.id


async def test_a_policy_that_opens_holes_fails_the_run(corpus):
    report = await run_corpus(corpus, load_policy(LOOSER))

    assert not report.ok
    holes = {d.id: d for d in report.differences if d.change == "more_permissive"}
    assert "score-sexual_content-0.7" in holes
    assert holes["score-sexual_content-0.7"].actual == "review"
    assert holes["prompt-undress-leetspeak"].actual == "allowed"
    assert report.more_permissive == len(holes)
    assert f"{len(holes)} more permissive" in report.lines()[-1]


async def test_a_stricter_policy_is_reported_without_failing(corpus):
    report = await run_corpus(corpus, load_policy(STRICTER))

    assert report.ok
    assert report.more_permissive == 0
    stricter = [d for d in report.differences if d.change == "stricter"]
    assert stricter
    assert {(d.expected, d.actual) for d in stricter} == {("allowed", "review")}
    header, *rows, counts = report.lines()
    assert header.split() == ["case", "expected", "actual", "change", "where"]
    assert any("score-violence-0.49" in row and "scores.toml:" in row for row in rows)
    assert f"{report.stricter} stricter" in counts


async def test_a_gap_case_that_holds_is_reported_so_the_mark_is_removed(tmp_path):
    (tmp_path / "cases.toml").write_text(GOOD_CASE + 'gap = "was open"\n')
    report = await run_corpus(load_corpus(tmp_path), default_policy())

    assert report.ok
    assert report.gaps == 1
    assert [(d.id, d.change) for d in report.differences] == [("incident-1", "gap_holds")]


def test_the_corpus_hashes_are_those_of_the_fixture_photos():
    # The corpus must not drift from the photos it says it was made from.
    corpus_dir = shipped_corpus()
    assert (corpus_dir / "images.toml").read_text() == redteam_images.images_toml()
    assert (corpus_dir / "hashlists.toml").read_text() == redteam_images.hashlists_toml()


async def test_a_case_can_name_an_image_file_beside_it(tmp_path):
    # An incident's own image: hashed as the gate hashes it, matched on the corpus's lists.
    shutil.copy(shipped_corpus() / "hashlists.toml", tmp_path / "hashlists.toml")
    with Image.open(redteam_images.ROOT / redteam_images.ABUSE) as photo:
        mirrored = photo.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    mirrored.save(out, "PNG")
    (tmp_path / "incident.png").write_bytes(out.getvalue())
    (tmp_path / "cases.toml").write_text(
        GOOD_CASE.replace('expect = "allowed"', 'image = "incident.png"\nexpect = "blocked"')
        + 'reasons = ["hash_match_block"]\n'
    )
    corpus = load_corpus(tmp_path)

    report = await run_corpus(corpus, default_policy())

    assert (report.cases, report.holding) == (1, 1), report.differences
    decision = await decide_case(corpus, corpus.cases[0], default_policy())
    assert {f.subject for f in decision.findings if f.code == "hash_match_block"} == {
        "known-abuse",
        "known-abuse-pdq",
    }


BAD_CASES = {
    "unknown key": (
        GOOD_CASE.replace("expect =", "expcet = 1\nexpect ="),
        "cases.toml:12: case 'incident-1': Object contains unknown field `expcet`",
    ),
    "missing expectation": (
        GOOD_CASE.replace('expect = "allowed"\n', ""),
        "cases.toml:12: case 'incident-1': Object missing required field `expect`",
    ),
    "bad outcome": (
        GOOD_CASE.replace('"allowed"', '"fine"'),
        "cases.toml:12: case 'incident-1'.expect: Invalid enum value 'fine'",
    ),
    "score out of range": (
        GOOD_CASE.replace("minor_presence = 0.01", "minor_presence = 1.5"),
        "cases.toml:12: case 'incident-1'.scores.minor_presence: a score lies in 0..1",
    ),
    "unknown use": (
        GOOD_CASE.replace('"publish.public"', '"publish.everywhere"'),
        "cases.toml:12: case 'incident-1'.sources[0].consent.uses: 'publish.everywhere' is not",
    ),
    "unknown consent state": (
        GOOD_CASE.replace('"publish.public"] }', '"publish.public"], state = "gone" }'),
        "cases.toml:12: case 'incident-1'.sources[0].consent.state: Invalid enum value 'gone'",
    ),
    "unknown reason": (
        GOOD_CASE + 'reasons = ["hash_match_blocked"]\n',
        "cases.toml:12: case 'incident-1'.reasons: 'hash_match_blocked' is not a reason code",
    ),
    "unknown image": (
        GOOD_CASE.replace('expect = "allowed"', 'image = "nowhere"\nexpect = "allowed"'),
        "cases.toml:12: case 'incident-1'.image: no [image.nowhere]",
    ),
    "missing image file": (
        GOOD_CASE.replace('expect = "allowed"', 'image = "gone.png"\nexpect = "allowed"'),
        "cases.toml:12: case 'incident-1'.image: no image file 'gone.png'",
    ),
    "duplicate id": (
        GOOD_CASE + GOOD_CASE,
        "cases.toml:19: case 'incident-1'.id: case id also used at cases.toml:12",
    ),
    "not TOML": (
        GOOD_CASE.replace('prompt = "a portrait"', "prompt = a portrait"),
        "cases.toml: not valid TOML: Invalid value (at line 14, column 10)",
    ),
    "uses declared at publish": (
        GOOD_CASE + 'intended_uses = ["reference.generate"]\n',
        "cases.toml:12: case 'incident-1'.intended_uses: only a prompt-stage case declares uses",
    ),
    "scores before generation": (
        GOOD_CASE.replace('prompt = "a portrait"', 'stage = "prompt"\nprompt = "a portrait"'),
        "cases.toml:12: case 'incident-1': a prompt-stage case has no image and no scores",
    ),
    "reserved key": (
        GOOD_CASE + "line = 3\n",
        "cases.toml:12: case.line: unknown key",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_a_malformed_case_is_refused_naming_its_file_line_and_key(tmp_path, name):
    text, message = BAD_CASES[name]
    (tmp_path / "aa.toml").write_text("# a first, good file\n" + GOOD_CASE.replace("-1", "-0"))
    (tmp_path / "cases.toml").write_text("# an incident\n" * 10 + text)

    with pytest.raises(RedteamCaseInvalid) as refused:
        load_corpus(tmp_path)

    assert str(refused.value).startswith(message), str(refused.value)
    assert refused.value.code == "redteam_case_invalid"
    assert refused.value.file == "cases.toml"


def test_a_bad_image_or_list_is_refused_naming_its_key(tmp_path):
    (tmp_path / "images.toml").write_text(
        '[image.short]\nphash = ["00"]\npdq = []\npdq_quality = 90\n'
    )
    with pytest.raises(RedteamCaseInvalid, match=r"images.toml: image.short.phash: 8 hashes"):
        load_corpus(tmp_path)
    (tmp_path / "images.toml").write_text(
        '[[list]]\nname = "x"\nsignal = "phash"\naction = "block"\n'
        'entries = [{ hash = "abc", label = "l" }]\n'
    )
    with pytest.raises(RedteamCaseInvalid, match=r"list 'x'.entries\[0\].hash: .*16 hex"):
        load_corpus(tmp_path)


def test_an_empty_directory_is_not_a_corpus(tmp_path):
    with pytest.raises(RedteamCaseInvalid, match=r"no \*\.toml file"):
        load_corpus(tmp_path)
