"""The perceptual-hash index and the list-file parsers, with real images made by Pillow."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from moderation import (
    EntryInput,
    HashFacts,
    HashIndex,
    HashListLineInvalid,
    HashListUnknown,
    HashValueInvalid,
    ImageFacts,
    decide,
    format_hash,
    image_matches,
    iter_csv,
    iter_jsonl,
    parse_hash,
)
from tests.moderation.support import clean_evidence, image_hashes, make_image


def random_entries(count: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**64, size=count, dtype=np.uint64, endpoint=False)
    return (EntryInput(hash=int(v), label=f"noise-{i}") for i, v in enumerate(values))


@pytest.fixture(scope="module")
def protected():
    """A protected image, its hashes, and an index holding it among 20,000 other entries."""
    image = make_image(seed=1)
    phash, _ = image_hashes(image)
    index = HashIndex()
    index.define_list("known-abuse", "block")
    index.add_many("known-abuse", random_entries(20_000))
    index.add_many(
        "known-abuse", [EntryInput(hash=parse_hash(phash), label="case-17", source="hotline")]
    )
    index.add_many("known-abuse", random_entries(5_000, seed=8))
    return image, phash, index


def queries(image):
    phash, variants = image_hashes(image)
    return [parse_hash(h) for h in (phash, *variants)]


def transformed(image):
    """Copies a re-poster might make. pHash tolerates trims of a few percent; larger crops
    move it by more than the review distance (a limit of pHash, not of the index)."""
    width, height = image.size
    trim = image.crop(
        (int(width * 0.03), int(height * 0.03), int(width * 0.97), int(height * 0.97))
    )
    return {
        "same": image,
        "trimmed_3_percent": trim,
        "one_side_cut_5_percent": image.crop((0, 0, int(width * 0.95), height)),
        "flipped": ImageOps.mirror(image),
        "flipped_and_trimmed": ImageOps.mirror(trim),
        "rotated_90": image.rotate(90, expand=True),
        "rotated_180": image.rotate(180),
        "desaturated": ImageEnhance.Color(image).enhance(0.2),
        "brighter": ImageEnhance.Brightness(image).enhance(1.3),
        "greyscale": ImageOps.grayscale(image).convert("RGB"),
        "channels_swapped": Image.merge("RGB", image.split()[::-1]),
        "half_size": image.resize((image.width // 2, image.height // 2)),
    }


@pytest.mark.parametrize(
    "name",
    [
        "same",
        "trimmed_3_percent",
        "one_side_cut_5_percent",
        "flipped",
        "flipped_and_trimmed",
        "rotated_90",
        "rotated_180",
        "desaturated",
        "brighter",
        "greyscale",
        "channels_swapped",
        "half_size",
    ],
)
def test_copies_of_a_protected_image_match_and_are_never_allowed(protected, policy, name):
    image, _, index = protected
    copy = transformed(image)[name]
    matches = index.match(queries(copy), policy.hashes.review_distance)
    assert [m.label for m in matches] == ["case-17"]
    (found,) = matches
    assert (found.list, found.action, found.source) == ("known-abuse", "block", "hotline")
    decision = decide(clean_evidence(hashes=HashFacts(matches=tuple(matches))), policy)
    assert decision.status in {"blocked", "review"}
    assert decision.reasons[0] in {"hash_match_block", "hash_match_review"}
    if found.distance <= policy.hashes.block_distance:
        assert decision.status == "blocked"


def test_image_matches_builds_the_evidence_from_image_facts(protected, policy):
    image, _, index = protected
    phash, variants = image_hashes(ImageOps.mirror(image))
    facts = ImageFacts(decoded=True, phash=phash, variants=variants)
    evidence = image_matches(index, facts, policy.hashes.review_distance)
    assert [m.label for m in evidence.matches] == ["case-17"]
    assert image_matches(index, ImageFacts(decoded=False), 10).error == "image_not_hashed"


def test_exact_and_geometric_copies_are_in_the_block_band(protected, policy):
    image, _, index = protected
    copies = transformed(image)
    for name in ("same", "flipped", "rotated_90", "rotated_180", "greyscale", "half_size"):
        (found,) = index.match(queries(copies[name]), policy.hashes.review_distance)
        assert found.distance <= policy.hashes.block_distance, name


@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6])
def test_unrelated_images_do_not_match(protected, policy, seed):
    _, _, index = protected
    assert index.match(queries(make_image(seed)), policy.hashes.review_distance) == []


def test_best_match_per_list_with_distance():
    index = HashIndex()
    index.define_list("a", "block")
    index.define_list("b", "review")
    base = 0x0123456789ABCDEF
    index.add_many(
        "a", [EntryInput(hash=base ^ 0b111, label="three"), EntryInput(hash=base ^ 1, label="one")]
    )
    index.add_many(
        "b",
        [
            EntryInput(hash=base ^ 0b11, label="two"),
            EntryInput(hash=base ^ 0b11, label="two-again"),
        ],
    )
    matches = index.match([base], max_distance=5)
    assert [(m.list, m.label, m.distance, m.action) for m in matches] == [
        ("a", "one", 1, "block"),
        ("b", "two", 2, "review"),
    ]
    assert matches[0].hash == format_hash(base ^ 1)
    assert index.match([base], max_distance=0) == []
    assert [m.label for m in index.match([base ^ 1], max_distance=0)] == ["one"]


def test_the_smallest_distance_over_all_query_variants_counts():
    index = HashIndex()
    index.define_list("a", "block")
    index.add_many("a", [EntryInput(hash=0, label="zero")])
    (found,) = index.match([(1 << 64) - 1, 0b1111, 0b1], max_distance=8)
    assert found.distance == 1


def test_disabled_entries_and_lists_do_not_match():
    index = HashIndex()
    index.define_list("a", "block")
    index.define_list("b", "block")
    index.add_many(
        "a",
        [
            EntryInput(hash=5, label="x"),
            EntryInput(hash=5, label="y"),
            EntryInput(hash=4, label="z"),
        ],
    )
    index.add_many("b", [EntryInput(hash=5, label="w")])
    assert index.disable("a", [5]) == 2
    assert index.disable("a", [5]) == 0
    assert [(m.list, m.label) for m in index.match([5], 0)] == [("b", "w")]
    assert [(m.list, m.label) for m in index.match([5], 1)] == [("b", "w"), ("a", "z")]
    index.set_list_enabled("b", enabled=False)
    assert [m.list for m in index.match([5], 0)] == []
    index.set_list_enabled("b", enabled=True)
    index.define_list("b", "review")
    assert [(m.list, m.action) for m in index.match([5], 0)] == [("b", "review")]


def test_growing_past_chunks_keeps_every_entry(protected):
    index = HashIndex()
    index.define_list("big", "review")
    assert index.add_many("big", random_entries(150_000, seed=3)) == 150_000
    index.add_many("big", [EntryInput(hash=42, label="last", source=None)])
    assert len(index) == 150_001
    (found,) = index.match([42], 0)
    assert (found.label, found.source) == ("last", None)


def test_unicode_labels_round_trip():
    index = HashIndex()
    index.define_list("a", "block")
    index.add_many("a", [EntryInput(hash=1, label="Zoë ✓", source="ref/ü")])
    (found,) = index.match([1], 0)
    assert (found.label, found.source) == ("Zoë ✓", "ref/ü")


def test_unknown_lists_and_bad_values_are_refused():
    index = HashIndex()
    with pytest.raises(HashListUnknown) as caught:
        index.add_many("nope", [])
    assert caught.value.code == "hash_list_unknown"
    with pytest.raises(HashListUnknown):
        index.disable("nope", [1])
    with pytest.raises(HashValueInvalid) as bad:
        index.define_list("Bad Name", "block")
    assert bad.value.code == "hash_value_invalid"
    with pytest.raises(HashValueInvalid):
        index.define_list("a", "allow")
    index.define_list("a", "block")
    for value in (-1, 1 << 64, True, "00ff"):
        with pytest.raises(HashValueInvalid):
            index.add_many("a", [EntryInput(hash=value, label="x")])
    with pytest.raises(HashValueInvalid):
        index.add_many("a", [EntryInput(hash=1, label="")])
    with pytest.raises(HashValueInvalid):
        index.match([1], max_distance=65)
    with pytest.raises(HashValueInvalid):
        index.match([-1], max_distance=3)
    assert len(index) == 0
    assert index.match([], 10) == []


@pytest.mark.parametrize(
    "value", ["", "0123", "0123456789abcdeg", "0123456789abcdef0", " 0123456789abcdef"]
)
def test_parse_hash_refuses_anything_but_16_hex(value):
    with pytest.raises(HashValueInvalid):
        parse_hash(value)


def test_parse_and_format_hash_round_trip():
    assert format_hash(parse_hash("00FFaa0000000001")) == "00ffaa0000000001"


def test_csv_import_streams_entries_with_header_and_optional_source():
    text = 'hash,label,source\n0123456789abcdef,case-1,hotline\n\nfedcba9876543210,"case, 2"\n'
    entries = list(iter_csv(io.StringIO(text)))
    assert entries == [
        EntryInput(hash=0x0123456789ABCDEF, label="case-1", source="hotline"),
        EntryInput(hash=0xFEDCBA9876543210, label="case, 2", source=None),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("0123456789abcdef,ok\nnot-a-hash,bad\n", 2),
        ("0123456789abcdef\n", 1),
        ("hash,label\n0123456789abcdef,a,b,c\n", 2),
        ("0123456789abcdef,\n", 1),
        ("0123456789abcdef,ok\n0123456789abcde,short\n", 2),
        ("0123456789abcdef," + "x" * 600 + "\n", 1),
        ("0123456789abcdef,ok\n0123456789abcdef,ok\n" + "y" * 5000 + "\n", 3),
    ],
)
def test_csv_errors_name_the_line(text, line):
    with pytest.raises(HashListLineInvalid) as caught:
        list(iter_csv(io.StringIO(text)))
    assert caught.value.code == "hash_list_line_invalid"
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value)


def test_jsonl_import():
    lines = [
        json.dumps({"hash": "0123456789abcdef", "label": "case-1", "source": "hotline"}),
        "",
        json.dumps({"hash": "FEDCBA9876543210", "label": "case-2"}).encode(),
    ]
    assert list(iter_jsonl(lines)) == [
        EntryInput(hash=0x0123456789ABCDEF, label="case-1", source="hotline"),
        EntryInput(hash=0xFEDCBA9876543210, label="case-2", source=None),
    ]


@pytest.mark.parametrize(
    ("lines", "line"),
    [
        (['{"hash": "0123456789abcdef", "label": "a"}', "{not json"], 2),
        (['{"hash": "0123456789abcdef", "label": "a", "colour": "red"}'], 1),
        (['{"hash": "0123456789abcdef"}'], 1),
        (['{"hash": 81985529216486895, "label": "a"}'], 1),
        (['{"hash": "xyz", "label": "a"}'], 1),
        (["[]"], 1),
        (['{"hash": "0123456789abcdef", "label": ""}'], 1),
        (['{"hash": "0123456789abcdef", "label": "' + "a" * 5000 + '"}'], 1),
    ],
)
def test_jsonl_errors_name_the_line(lines, line):
    with pytest.raises(HashListLineInvalid) as caught:
        list(iter_jsonl(lines))
    assert caught.value.line == line


def test_a_bad_line_midway_stops_the_import_with_its_number(tmp_path):
    path = tmp_path / "list.csv"
    with path.open("w") as out:
        for i in range(100_000):
            out.write(f"{i:016x},entry-{i}\n")
        out.write("zzzz,broken\n")
    index = HashIndex()
    index.define_list("a", "block")
    with path.open() as lines, pytest.raises(HashListLineInvalid) as caught:
        index.add_many("a", iter_csv(lines))
    assert caught.value.line == 100_001
