"""PDQ and pHash of real photos: every flip and rotation, crops, borders, and unrelated photos.

The photos are those scikit-image ships in its package (opened from its files with Pillow;
``skimage.data`` itself may download, so it is not imported). Distances are what the gate's
bands read: pHash block 6 and review 10 of 64 bits, PDQ match 31 of 256.
"""

from __future__ import annotations

import importlib.resources
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from moderation.errors import HashValueInvalid
from moderation.signals import (
    CROP_GRID,
    DIHEDRAL,
    SIGNAL_BITS,
    TRIMMED,
    format_hash,
    image_signals,
    parse_hash,
    pdq_hash,
    stored_signals,
    trim_border,
)
from verifier import imaging

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "c2pa"
PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
)
PHASH_REVIEW = 10
PDQ_MATCH = 31
# Pillow's transform for each name of DIHEDRAL, and the transform that undoes it.
TRANSPOSES = {
    "rotate_90": Image.Transpose.ROTATE_90,
    "rotate_180": Image.Transpose.ROTATE_180,
    "rotate_270": Image.Transpose.ROTATE_270,
    "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
    "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}
INVERSE = {"rotate_90": "rotate_270", "rotate_270": "rotate_90"}


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def nearest(queries: tuple[str, ...], stored: tuple[str, ...]) -> int:
    return min(distance(q, s) for q in queries for s in stored)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    folder = importlib.resources.files("skimage") / "data"
    loaded = {}
    for name in PHOTOS:
        with (folder / name).open("rb") as file, Image.open(file) as image:
            image.load()
            loaded[name] = image.copy()
    return loaded


@pytest.fixture(scope="module")
def stored(photos):
    return {name: stored_signals(image) for name, image in photos.items()}


@pytest.fixture(scope="module")
def queried(photos):
    return {name: image_signals(image) for name, image in photos.items()}


def crop(image: Image.Image, side: str, fraction: float) -> Image.Image:
    width, height = image.size
    dx, dy = round(width * fraction), round(height * fraction)
    return image.crop(
        {
            "left": (dx, 0, width, height),
            "right": (0, 0, width - dx, height),
            "top": (0, dy, width, height),
            "bottom": (0, 0, width, height - dy),
            "centre": (dx // 2, dy // 2, width - dx // 2, height - dy // 2),
        }[side]
    )


# Hex and bytes.


@pytest.mark.parametrize(("signal", "chars"), [("phash", 16), ("pdq", 64)])
def test_hashes_go_from_hex_to_big_endian_bytes_and_back(signal, chars):
    value = "0123456789abcdef" * (chars // 16)
    parsed = parse_hash(signal, value)
    assert len(parsed) == SIGNAL_BITS[signal] // 8
    assert parsed[:2] == b"\x01\x23"
    assert format_hash(parsed) == value
    assert format_hash(parse_hash(signal, value.upper())) == value


@pytest.mark.parametrize(
    ("signal", "value", "message"),
    [
        ("phash", "0" * 15, "16 hex characters"),
        ("phash", "0" * 17, "16 hex characters"),
        ("phash", "0" * 64, "16 hex characters"),  # a PDQ hash given as pHash
        ("pdq", "0" * 16, "64 hex characters"),  # a pHash given as PDQ
        ("pdq", "0" * 63 + "g", "64 hex characters"),
        ("phash", "0x" + "0" * 14, "16 hex characters"),
        ("phash", "00 11 22 33 44 55", "16 hex characters"),  # bytes.fromhex would take it
        ("phash", "", "16 hex characters"),
        ("md5", "0" * 32, "unknown signal"),
    ],
)
def test_bad_hashes_are_refused_naming_the_expected_length(signal, value, message):
    with pytest.raises(HashValueInvalid, match=message) as caught:
        parse_hash(signal, value)
    assert caught.value.code == "hash_value_invalid"


# The hashes as the two sides keep them.


def test_a_query_has_eight_hashes_a_signal_and_a_stored_image_its_crop_grid(
    photos, stored, queried
):
    signals = queried["astronaut.png"]
    assert not signals.border_trimmed
    assert len(signals.pdq.hashes) == len(signals.phash.hashes) == len(DIHEDRAL) == 8
    assert all(len(h) == 64 for h in signals.pdq.hashes)
    assert all(len(h) == 16 for h in signals.phash.hashes)
    assert signals.pdq.quality == stored["astronaut.png"].pdq_quality
    assert signals.phash.quality is None
    kept = stored["astronaut.png"]
    # The values tokens, lists and consent records already hold do not move.
    assert kept.phash == signals.phash.hashes[0] == imaging.phash(photos["astronaut.png"])
    assert kept.pdq == signals.pdq.hashes[0] == pdq_hash(photos["astronaut.png"])[0]
    assert len(kept.phash_crops) == len(CROP_GRID) == 30
    assert len(set(kept.phash_crops)) > 20  # crops, not the same hash thirty times


# Every flip and rotation.


@pytest.mark.parametrize("transform", list(TRANSPOSES))
def test_a_flipped_or_rotated_photo_lands_on_the_stored_hashes(photos, stored, transform):
    """The copy's hash for the transform undoing it is within 2 bits of the stored hash, for
    pHash and for PDQ, on every photo; and the copy itself (its ``original``) is not."""
    undo = DIHEDRAL.index(INVERSE.get(transform, transform))
    for name, image in photos.items():
        copy = image_signals(image.transpose(TRANSPOSES[transform]))
        kept = stored[name]
        assert distance(copy.phash.hashes[undo], kept.phash) <= 2, name
        assert distance(copy.pdq.hashes[undo], kept.pdq) <= 2, name
        assert distance(copy.pdq.hashes[0], kept.pdq) > PDQ_MATCH, name


@pytest.mark.parametrize("transform", list(TRANSPOSES))
def test_each_variant_is_the_hash_of_that_transform(photos, queried, transform):
    """What a photo's query says for a transform is what hashing the transformed photo gives.

    Up to resampling: a photo larger than PDQ's 512 is reduced onto a grid whose boxes Pillow
    rounds to whole pixels from one side, so a flipped copy's reduction is not quite the
    flipped reduction (a few bits of PDQ on a 640 x 427 photo).
    """
    at = DIHEDRAL.index(transform)
    for name, image in photos.items():
        copy = image.transpose(TRANSPOSES[transform])
        assert distance(queried[name].phash.hashes[at], imaging.phash(copy)) <= 2, name
        assert distance(queried[name].pdq.hashes[at], pdq_hash(copy)[0]) <= 4, name


# Crops.


@pytest.mark.parametrize("fraction", [0.10, 0.12, 0.17, 0.22, 0.25])
@pytest.mark.parametrize("side", ["left", "right", "top", "bottom", "centre"])
def test_a_cropped_photo_is_within_review_of_the_crop_grid(photos, stored, side, fraction):
    """On the grid (10, 25 %) and between its steps (12, 17, 22 %)."""
    for name, image in photos.items():
        copy = imaging.dihedral_phashes(crop(image, side, fraction))
        kept = stored[name]
        assert nearest(copy, (kept.phash, *kept.phash_crops)) <= PHASH_REVIEW, name


def test_without_the_grid_a_one_sided_crop_passes_review(photos, stored):
    """What the grid is for: pHash alone misses one-sided crops (the issue's 10 % crop)."""
    missed = [
        name
        for name, image in photos.items()
        if nearest(imaging.dihedral_phashes(crop(image, "left", 0.17)), (stored[name].phash,))
        > PHASH_REVIEW
    ]
    assert len(missed) >= len(photos) // 2


# Borders.


@pytest.mark.parametrize("fraction", [0.03, 0.08])
@pytest.mark.parametrize("fill", [(255, 255, 255), (0, 0, 0), (128, 40, 200)])
def test_a_bordered_photo_is_trimmed_and_lands_near_the_stored_hashes(
    photos, stored, fraction, fill
):
    for name, image in photos.items():
        width, height = image.size
        framed = ImageOps.expand(image.convert("RGB"), round(max(width, height) * fraction), fill)
        signals = image_signals(framed)
        kept = stored[name]
        assert signals.border_trimmed, name
        assert len(signals.phash.hashes) == len(signals.pdq.hashes) == 16
        assert nearest(signals.phash.hashes, (kept.phash,)) <= 6, name
        assert nearest(signals.pdq.hashes, (kept.pdq,)) <= PDQ_MATCH, name
        # The untrimmed eight alone miss it: trimming is what finds it.
        assert nearest(signals.pdq.hashes[:8], (kept.pdq,)) > PDQ_MATCH, name


def test_trimming_cuts_each_bordered_side_and_leaves_a_borderless_image_alone(photos):
    pixels = np.asarray(photos["astronaut.png"])
    assert trim_border(pixels) is None
    letterboxed = np.pad(pixels, ((40, 40), (0, 0), (0, 0)))
    trimmed = trim_border(letterboxed)
    assert trimmed is not None
    assert trimmed.shape == pixels.shape
    assert (trimmed == pixels).all()
    captioned = np.pad(pixels, ((0, 60), (12, 0), (0, 0)), constant_values=250)
    trimmed = trim_border(captioned)
    assert trimmed is not None
    assert (trimmed == pixels).all()
    # A few lines of one colour along an edge are no border worth a second set of hashes.
    assert trim_border(np.pad(pixels, ((3, 0), (0, 0), (0, 0)))) is None


def test_a_mostly_uniform_image_is_not_trimmed_to_a_sliver():
    canvas = np.full((200, 300, 3), 240, dtype=np.uint8)
    canvas[90:110, 140:160] = (10, 80, 200)
    assert trim_border(canvas) is None
    assert trim_border(np.zeros((64, 64, 3), dtype=np.uint8)) is None


def test_content_a_quarter_wide_is_still_trimmed_and_less_is_not():
    canvas = np.full((200, 400, 3), 255, dtype=np.uint8)
    rng = np.random.default_rng(5)
    canvas[60:120, 100:210] = rng.integers(0, 255, (60, 110, 3), dtype=np.uint8)
    trimmed = trim_border(canvas)
    assert trimmed is not None
    assert trimmed.shape[:2] == (60, 110)
    canvas[:, 100:400] = 255
    canvas[60:120, 100:190] = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    assert trim_border(canvas) is None  # 90 of 400 columns: under a quarter


def test_a_page_framed_again_matches_the_stored_pages_trimmed_entry():
    """A photo on a white page has white edges of its own: a white frame merges with them, so
    the framed copy trims to the page's content, and only the stored side's trimmed copy
    (the entry ``without border``) is near it."""
    with Image.open(FIXTURES / "no_manifest.jpg") as photo:
        page = photo.convert("RGB")
    kept = stored_signals(page)
    assert kept.trimmed_phash is not None
    assert kept.trimmed_pdq is not None
    assert kept.entries("phash")[-1] == (kept.trimmed_phash, TRIMMED)
    assert kept.entries("pdq") == ((kept.pdq, None), (kept.trimmed_pdq, TRIMMED))
    framed = ImageOps.expand(page, round(page.width * 0.08), (255, 255, 255))
    signals = image_signals(framed)
    assert signals.border_trimmed
    others = [value for value, crop in kept.entries("phash") if crop != TRIMMED]
    assert nearest(signals.phash.hashes, (kept.trimmed_phash,)) <= 6
    assert nearest(signals.phash.hashes, tuple(others)) > 10


def test_a_borderless_stored_image_has_no_trimmed_entry(photos):
    kept = stored_signals(photos["astronaut.png"])
    assert kept.trimmed_phash is None
    assert all(crop != TRIMMED for _, crop in kept.entries("phash"))
    assert len(kept.entries("phash")) == 1 + len(CROP_GRID)


# Quality.


def test_flat_and_near_flat_images_have_pdq_quality_below_the_floor(photos, stored):
    rng = np.random.default_rng(3)
    flat = Image.new("RGB", (400, 300), (120, 130, 140))
    ramp = np.linspace(100, 140, 400)[None, :, None] + rng.normal(0, 1.5, (300, 400, 3))
    near_flat = Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))

    assert stored_signals(flat).pdq_quality < 50
    quality = image_signals(near_flat).pdq.quality
    assert quality is not None
    assert quality < 50
    assert all(kept.pdq_quality >= 50 for kept in stored.values())


# Unrelated photos.


def test_no_photo_comes_within_the_bands_of_another(photos, stored, queried):
    """Every photo's query hashes (8 transforms, a trimmed copy's 8 where it has a border)
    against every other photo's stored hashes, the crop grid included."""
    phash, pdq = {}, {}
    for query, other in itertools.permutations(photos, 2):
        signals, kept = queried[query], stored[other]
        phash[query, other] = nearest(signals.phash.hashes, (kept.phash, *kept.phash_crops))
        pdq[query, other] = nearest(signals.pdq.hashes, (kept.pdq,))

    assert {pair: d for pair, d in phash.items() if d <= PHASH_REVIEW} == {}
    assert {pair: d for pair, d in pdq.items() if d <= PDQ_MATCH} == {}
    # Measured: 16 and 100 at the nearest; a change that eats the margin deserves a look.
    assert min(phash.values()) >= 14
    assert min(pdq.values()) >= 80


def test_a_grey_copy_hashes_as_the_photo_does(photos):
    """The gate converts to grey once for every hash; PDQ reads the same luma from it."""
    for name, image in photos.items():
        assert pdq_hash(imaging.grey(image)) == pdq_hash(image), name


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (3, 700), (8000, 2)])
def test_tiny_and_extreme_images_hash_with_quality_zero(size):
    noise = np.random.default_rng(5).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    signals, kept = image_signals(image), stored_signals(image)
    assert len(signals.pdq.hashes) == len(signals.phash.hashes) == 8
    assert len(kept.phash_crops) == 30
    assert kept.pdq_quality == signals.pdq.quality == 0
