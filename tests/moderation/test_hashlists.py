"""The in-memory hash index: matching both signals, updates by entry id, and the evidence it
gives the gate, with real images made by Pillow and hashed as the gate hashes them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from moderation import (
    HashEntry,
    HashIndex,
    HashListUnknown,
    HashValueInvalid,
    IndexRows,
    ListSpec,
    decide,
    hash_facts,
    image_hits,
)
from moderation.signals import image_signals, parse_hash, stored_signals
from tests.moderation.support import clean_evidence, make_image

PDQ, PHASH = "pdq", "phash"


def spec(list_id: int, name: str, signal: str = PHASH, **changes) -> ListSpec:
    values = {"list_id": list_id, "name": name, "signal": signal, "action": "block"}
    return ListSpec(**(values | changes))


def rows(signal, items):
    """IndexRows from (entry_id, list_id, hash bytes[, enabled[, reviewed]])."""
    full = [(*item, True, True)[:5] for item in items]
    return IndexRows.of(signal, full)


def noise(signal, count, *, first_id, list_id, seed):
    width = 32 if signal == PDQ else 8
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, size=(count, width), dtype=np.uint8)
    return IndexRows(
        entry_id=np.arange(first_id, first_id + count, dtype=np.int64),
        list_id=np.full(count, list_id, dtype=np.int64),
        hashes=hashes,
        enabled=np.ones(count, dtype=np.bool_),
        reviewed=np.ones(count, dtype=np.bool_),
    )


def flip_bits(value: bytes, count: int) -> bytes:
    number = int.from_bytes(value) ^ ((1 << count) - 1)
    return number.to_bytes(len(value))


def as_gate_sees(image: Image.Image) -> Image.Image:
    """The image after a JPEG round trip, decoded as the gate decodes uploads."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def protected():
    """A protected image on a pHash list (with its crop grid) and a PDQ list, among noise."""
    image = make_image(seed=1)
    stored = stored_signals(image)
    index = HashIndex()
    index.set_lists([spec(1, "known-abuse"), spec(2, "known-abuse-pdq", PDQ, action="review")])
    index.upsert(PHASH, noise(PHASH, 20_000, first_id=1, list_id=1, seed=7))
    grid = [stored.phash, *stored.phash_crops]
    index.upsert(
        PHASH, rows(PHASH, [(30_000 + i, 1, parse_hash(PHASH, h)) for i, h in enumerate(grid)])
    )
    index.upsert(PDQ, noise(PDQ, 20_000, first_id=40_000, list_id=2, seed=8))
    index.upsert(PDQ, rows(PDQ, [(70_000, 2, parse_hash(PDQ, stored.pdq))]))
    entries = {
        30_000 + i: HashEntry(entry_id=30_000 + i, hash=b"", label="case-17")
        for i in range(len(grid))
    }
    entries[70_000] = HashEntry(entry_id=70_000, hash=b"", label="case-17-pdq", source="hotline")
    return image, index, entries


def transformed(image):
    width, height = image.size
    return {
        "same": image,
        "trimmed_3_percent": image.crop(
            (int(width * 0.03), int(height * 0.03), int(width * 0.97), int(height * 0.97))
        ),
        "one_side_cut_10_percent": image.crop((round(width * 0.1), 0, width, height)),
        "centre_crop_20_percent": image.crop(
            (int(width * 0.1), int(height * 0.1), int(width * 0.9), int(height * 0.9))
        ),
        "flip_vertical": ImageOps.flip(image),
        "flip_horizontal": ImageOps.mirror(image),
        "transpose": image.transpose(Image.Transpose.TRANSPOSE),
        "transverse": image.transpose(Image.Transpose.TRANSVERSE),
        "rotated_90": image.rotate(90, expand=True),
        "rotated_270": image.rotate(270, expand=True),
        "desaturated": ImageEnhance.Color(image).enhance(0.2),
        "greyscale": ImageOps.grayscale(image).convert("RGB"),
        "half_size": image.resize((image.width // 2, image.height // 2)),
        "framed": ImageOps.expand(image, border=16, fill=(255, 255, 255)),
    }


@pytest.mark.parametrize(
    "name",
    [
        "same",
        "trimmed_3_percent",
        "one_side_cut_10_percent",
        "centre_crop_20_percent",
        "flip_vertical",
        "flip_horizontal",
        "transpose",
        "transverse",
        "rotated_90",
        "rotated_270",
        "desaturated",
        "greyscale",
        "half_size",
        "framed",
    ],
)
def test_copies_of_a_protected_image_match_and_are_never_allowed(protected, policy, name):
    image, index, entries = protected
    signals = image_signals(as_gate_sees(transformed(image)[name]))
    hits = image_hits(index, signals, policy.hashes, tenant=None)
    assert "known-abuse" in {hit.list for hit in hits}
    facts = hash_facts(index, signals, hits, entries, tenant=None)
    assert {m.label for m in facts.matches} <= {"case-17", "case-17-pdq"}
    decision = decide(clean_evidence(hashes=facts), policy)
    assert decision.status in {"blocked", "review"}
    assert decision.reasons[0] in {"hash_match_block", "hash_match_review"}


def test_crops_match_through_the_listed_images_crop_grid(protected, policy):
    image, index, entries = protected
    width, height = image.size
    cropped = image.crop((round(width * 0.1), 0, width, height))
    signals = image_signals(as_gate_sees(cropped))
    facts = hash_facts(
        index,
        signals,
        image_hits(index, signals, policy.hashes, tenant=None),
        entries,
        tenant=None,
    )
    (match,) = [m for m in facts.matches if m.list == "known-abuse"]
    # The nearest entry is one of the grid's crops, not the image as listed.
    assert match.entry_id != 30_000
    assert match.signal == PHASH


def test_flipped_copies_match_on_pdq_too(protected, policy):
    image, index, _entries = protected
    for copy in (ImageOps.flip(image), image.transpose(Image.Transpose.TRANSPOSE)):
        signals = image_signals(as_gate_sees(copy))
        hits = index.match(
            PDQ, [parse_hash(PDQ, h) for h in signals.pdq.hashes], policy.hashes.pdq.review_distance
        )
        assert [(h.list, h.entry_id) for h in hits] == [("known-abuse-pdq", 70_000)]
        assert hits[0].distance <= policy.hashes.pdq.block_distance


@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6])
def test_unrelated_images_do_not_match(protected, policy, seed):
    _, index, _ = protected
    signals = image_signals(as_gate_sees(make_image(seed)))
    assert image_hits(index, signals, policy.hashes, tenant=None) == []


def test_best_match_per_list_with_distance_and_ties_to_the_lower_id():
    base = bytes.fromhex("0123456789abcdef")
    index = HashIndex()
    index.set_lists([spec(1, "a"), spec(2, "b", action="review")])
    index.upsert(PHASH, rows(PHASH, [(10, 1, flip_bits(base, 3)), (11, 1, flip_bits(base, 1))]))
    index.upsert(PHASH, rows(PHASH, [(12, 2, flip_bits(base, 2)), (13, 2, flip_bits(base, 2))]))
    hits = index.match(PHASH, [base], 5)
    assert [(h.list, h.entry_id, h.distance, h.action) for h in hits] == [
        ("a", 11, 1, "block"),
        ("b", 12, 2, "review"),
    ]
    assert index.match(PHASH, [base], 0) == []
    assert [h.entry_id for h in index.match(PHASH, [flip_bits(base, 1)], 0)] == [11]


def test_the_closest_query_counts_and_is_named():
    index = HashIndex()
    index.set_lists([spec(1, "a")])
    index.upsert(PHASH, rows(PHASH, [(1, 1, bytes(8))]))
    (hit,) = index.match(PHASH, [b"\xff" * 8, flip_bits(bytes(8), 4), flip_bits(bytes(8), 1)], 8)
    assert (hit.distance, hit.query) == (1, 2)


def test_pdq_prefilter_finds_exactly_what_a_full_count_finds():
    """Planted hashes at every distance around the band, some with all their differing bits in
    the first two words (the prefilter's), some in the last two, among 100,000 random ones."""
    rng = np.random.default_rng(11)
    query = rng.integers(0, 256, size=32, dtype=np.uint8).tobytes()
    index = HashIndex()
    index.set_lists([spec(1, "big", PDQ)])
    index.upsert(PDQ, noise(PDQ, 100_000, first_id=1, list_id=1, seed=12))
    planted = []
    for distance in range(40):
        for half in (0, 1):
            value = bytearray(query)
            for bit in rng.choice(128, size=distance, replace=False):
                byte = (half * 16) + int(bit) // 8
                value[byte] ^= 1 << (int(bit) % 8)
            planted.append((200_000 + len(planted), bytes(value), distance))
    for entry_id, value, _ in planted:
        index.upsert(PDQ, rows(PDQ, [(entry_id, 1, value)]))
    # Each planted hash on a list of its own, so every one within the band is reported.
    index.set_lists([spec(1, "big", PDQ)] + [spec(e, f"p{e}", PDQ) for e, _, _ in planted])
    for entry_id, value, _ in planted:
        index.upsert(PDQ, rows(PDQ, [(entry_id, entry_id, value)]))
    found = {h.entry_id: h.distance for h in index.match(PDQ, [query], 31) if h.list != "big"}
    assert found == {e: d for e, _, d in planted if d <= 31}


def test_unreviewed_entries_match_only_within_their_lists_distance():
    base = bytes(32)
    index = HashIndex()
    index.set_lists([spec(1, "exchange", PDQ, unreviewed_distance=10), spec(2, "plain", PDQ)])
    index.upsert(
        PDQ,
        rows(
            PDQ,
            [
                (1, 1, flip_bits(base, 20), True, False),
                (2, 1, flip_bits(base, 25), True, True),
                (3, 2, flip_bits(base, 20), True, False),
            ],
        ),
    )
    hits = index.match(PDQ, [base], 31)
    assert [(h.list, h.entry_id, h.reviewed) for h in hits] == [
        ("plain", 3, False),
        ("exchange", 2, True),
    ]
    # Nearer, the unreviewed entry is within its list's distance (8 bits from each).
    hits = index.match(PDQ, [flip_bits(base, 12)], 31)
    assert [(h.list, h.entry_id, h.distance) for h in hits] == [
        ("exchange", 1, 8),
        ("plain", 3, 8),
    ]


def test_upserts_disable_and_enable_entries_and_merge_late_ids():
    index = HashIndex()
    index.set_lists([spec(1, "a")])
    index.upsert(PHASH, rows(PHASH, [(5, 1, bytes(8)), (9, 1, b"\x01" + bytes(7))]))
    index.upsert(PHASH, rows(PHASH, [(5, 1, bytes(8), False, True)]))
    assert [h.entry_id for h in index.match(PHASH, [bytes(8)], 8)] == [9]
    # An id below the highest held (a writer that committed late) and a row twice in one
    # delta (the later one is its state).
    index.upsert(PHASH, rows(PHASH, [(7, 1, bytes(8), False, True), (7, 1, bytes(8), True, True)]))
    assert [h.entry_id for h in index.match(PHASH, [bytes(8)], 0)] == [7]
    index.upsert(PHASH, rows(PHASH, [(5, 1, bytes(8))]))
    assert [h.entry_id for h in index.match(PHASH, [bytes(8)], 0)] == [5]
    assert index.count(PHASH) == 3


def test_disabled_and_other_signal_lists_do_not_match():
    index = HashIndex()
    index.set_lists([spec(1, "a", enabled=False), spec(2, "b", PDQ)])
    index.upsert(PHASH, rows(PHASH, [(1, 1, bytes(8)), (2, 2, bytes(8))]))
    assert index.match(PHASH, [bytes(8)], 0) == []
    assert not index.searchable(PHASH)
    assert index.searchable(PDQ)


def test_tenant_lists_serve_their_tenant_only():
    index = HashIndex()
    index.set_lists(
        [spec(1, "mine", tenant="t1", scope="tenant"), spec(2, "everyone", tenant="t2")]
    )
    index.upsert(PHASH, rows(PHASH, [(1, 1, bytes(8)), (2, 2, bytes(8))]))
    assert [h.list for h in index.match(PHASH, [bytes(8)], 0, tenant="t1")] == [
        "everyone",
        "mine",
    ]
    assert [h.list for h in index.match(PHASH, [bytes(8)], 0, tenant="t2")] == ["everyone"]
    assert len(index.match(PHASH, [bytes(8)], 0)) == 2
    assert index.searchable(PHASH, "t3")


def test_growing_across_blocks_keeps_every_entry():
    index = HashIndex()
    index.set_lists([spec(1, "big", PDQ)])
    index.upsert(PDQ, noise(PDQ, 150_000, first_id=1, list_id=1, seed=3))
    last = bytes(range(32))
    index.upsert(PDQ, rows(PDQ, [(150_001, 1, last)]))
    assert index.count(PDQ) == 150_001
    (hit,) = index.match(PDQ, [last], 0)
    assert hit.entry_id == 150_001
    # 45 bytes an entry (words, id, list, flags), with at most a quarter spare.
    assert 45 * 150_001 <= index.nbytes(PDQ) <= 45 * 150_001 * 1.3


def test_hash_facts_name_the_transform_and_record_pdq_quality_only_when_searched(policy):
    image = make_image(seed=4)
    signals = image_signals(as_gate_sees(image))
    flipped = image_signals(as_gate_sees(ImageOps.flip(image)))
    index = HashIndex()
    index.set_lists([spec(1, "a")])
    index.upsert(PHASH, rows(PHASH, [(1, 1, parse_hash(PHASH, signals.phash.hashes[0]))]))
    hits = image_hits(index, flipped, policy.hashes, tenant=None)
    entries = {1: HashEntry(entry_id=1, hash=b"\x00" * 8, label="x", crop="left 10%")}
    facts = hash_facts(index, flipped, hits, entries, tenant=None)
    (match,) = facts.matches
    assert (match.transform, match.crop, match.hash) == ("flip_vertical", "left 10%", "00" * 8)
    assert facts.pdq_quality is None
    index.set_lists([spec(1, "a"), spec(2, "b", PDQ)])
    assert hash_facts(index, flipped, hits, entries, tenant=None).pdq_quality == (
        flipped.pdq.quality
    )
    with pytest.raises(HashListUnknown):
        hash_facts(index, flipped, hits, {}, tenant=None)


def test_a_low_quality_pdq_hash_is_evidence_never_a_silent_miss(policy):
    flat = Image.new("RGB", (320, 240), (128, 128, 128))
    signals = image_signals(flat)
    assert signals.pdq.quality is not None
    assert signals.pdq.quality < policy.hashes.pdq.quality_floor
    index = HashIndex()
    index.set_lists([spec(1, "pdq-list", PDQ)])
    facts = hash_facts(index, signals, [], {}, tenant=None)
    decision = decide(clean_evidence(hashes=facts), policy)
    assert "hash_low_quality" in decision.reasons
    assert decision.status == "review"


def test_bad_values_are_refused():
    index = HashIndex()
    with pytest.raises(HashValueInvalid):
        index.set_lists([spec(1, "Bad Name")])
    index.set_lists([spec(1, "a")])
    with pytest.raises(HashValueInvalid):
        index.match(PHASH, [bytes(8)], 65)
    with pytest.raises(HashValueInvalid):
        index.match(PDQ, [bytes(32)], 257)
    with pytest.raises(HashValueInvalid):
        index.match(PHASH, [bytes(32)], 3)
    with pytest.raises(HashValueInvalid):
        index.match("dhash", [bytes(8)], 3)  # type: ignore[arg-type]
    with pytest.raises(HashValueInvalid):
        index.upsert(PDQ, rows(PHASH, [(1, 1, bytes(8))]))
    with pytest.raises(HashValueInvalid):
        IndexRows.of(PDQ, [(1, 1, bytes(8), True, True)])
    assert len(index) == 0


def test_match_each_answers_every_query_as_if_alone():
    index = HashIndex()
    index.set_lists([spec(1, "a", PDQ), spec(2, "b", PDQ, action="review")])
    index.upsert(PDQ, noise(PDQ, 50_000, first_id=1, list_id=1, seed=21))
    base = bytes(range(32))
    index.upsert(PDQ, rows(PDQ, [(60_000, 1, flip_bits(base, 5)), (60_001, 2, base)]))
    queries = [(base, 31), (flip_bits(base, 5), 3), (bytes(32), 31), (base, 0)]
    each = index.match_each(PDQ, queries)
    # As if alone: the same entries at the same distances (``query`` is the position given).
    alone = [index.match(PDQ, [q], d) for q, d in queries]
    assert [[(h.entry_id, h.distance) for h in hits] for hits in each] == [
        [(h.entry_id, h.distance) for h in hits] for hits in alone
    ]
    assert {h.query for hits in each[1:2] for h in hits} == {1}
    assert [[(h.list, h.distance) for h in hits] for hits in each] == [
        [("b", 0), ("a", 5)],
        [("a", 0)],
        [],
        [("b", 0)],
    ]
