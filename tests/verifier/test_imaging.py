"""Safe decoding: every refusal has its code; hashes are stable and transform-aware."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image, ImageDraw

from verifier import (
    ImageCorrupt,
    ImageFormatNotAllowed,
    ImageLimits,
    ImageTooLarge,
    ImageTooManyPixels,
    ImageTypeMismatch,
    decode,
    hamming,
    perceptual_hashes,
    sniff_media_type,
)
from verifier.imaging import dihedral_phashes

LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=1_000_000)


def png_header_only(width, height):
    """A PNG whose IHDR declares ``width`` x ``height`` with one tiny IDAT: no real pixels."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def textured(size=(256, 192)):
    """Smooth shapes on a gradient: a stand-in for a photo, cheap to draw at any size."""
    width, height = size
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
            Image.new("L", size, 90),
        ),
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 10, height // 8, width // 2, height * 3 // 4), fill=(240, 220, 30))
    draw.rectangle(
        (width * 3 // 5, height // 2, width * 9 // 10, height * 9 // 10), fill=(20, 40, 200)
    )
    return image


def encode(image, pillow_format):
    buffer = io.BytesIO()
    image.save(buffer, pillow_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("media_type", "pillow_format"),
    [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/webp", "WEBP")],
)
def test_allowed_formats_decode_with_their_sniffed_type(make_image, media_type, pillow_format):
    data = make_image(media_type)

    decoded = decode(data, LIMITS, media_type)

    assert sniff_media_type(data) == media_type
    assert decoded.media_type == media_type
    assert decoded.format == pillow_format
    assert (decoded.width, decoded.height) == (64, 48)


def test_declared_type_parameters_and_aliases_are_accepted(make_image):
    data = make_image("image/jpeg")

    assert decode(data, LIMITS, "IMAGE/JPG; charset=binary").media_type == "image/jpeg"


def test_more_bytes_than_the_cap_are_refused_before_anything_else():
    with pytest.raises(ImageTooLarge) as caught:
        decode(os.urandom(2048), ImageLimits(max_bytes=1024, max_pixels=10))

    assert caught.value.code == "image_too_large"


@pytest.mark.parametrize(
    "data",
    [os.urandom(512), b"", b"GIF89a" + bytes(64), b"BM" + bytes(64)],
    ids=["random", "empty", "gif", "bmp"],
)
def test_bytes_outside_the_allow_list_are_refused(data):
    with pytest.raises(ImageFormatNotAllowed) as caught:
        decode(data, LIMITS)

    assert caught.value.code == "image_format_not_allowed"


def test_allow_list_is_configurable(make_image):
    with pytest.raises(ImageFormatNotAllowed) as caught:
        decode(
            make_image("image/webp"),
            ImageLimits(max_bytes=10**6, max_pixels=10**6, formats=frozenset({"PNG"})),
        )

    assert caught.value.code == "image_format_not_allowed"


@pytest.mark.parametrize(
    ("media_type", "declared"),
    [("image/png", "image/jpeg"), ("image/jpeg", "image/webp"), ("image/webp", "text/html")],
)
def test_declared_type_that_disagrees_with_the_bytes_is_refused(make_image, media_type, declared):
    with pytest.raises(ImageTypeMismatch) as caught:
        decode(make_image(media_type), LIMITS, declared)

    assert caught.value.code == "image_type_mismatch"


def test_huge_png_is_refused_from_its_header():
    data = png_header_only(20_000, 20_000)

    with pytest.raises(ImageTooManyPixels) as caught:
        decode(data, ImageLimits(max_bytes=10**6, max_pixels=50_000_000))

    assert caught.value.code == "image_too_many_pixels"
    assert len(data) < 100


def test_pixel_cap_is_checked_from_the_header_before_decoding():
    # Below Pillow's own bomb threshold, so it is our cap that refuses, with the header's size.
    data = png_header_only(9_000, 9_000)

    with pytest.raises(ImageTooManyPixels) as caught:
        decode(data, ImageLimits(max_bytes=10**6, max_pixels=50_000_000))

    assert "9000x9000" in caught.value.message


@pytest.mark.parametrize(
    ("media_type", "cut"),
    [("image/jpeg", 0.5), ("image/png", 0.6), ("image/webp", 0.5), ("image/jpeg", 0.05)],
)
def test_truncated_images_are_corrupt(media_type, cut):
    data = encode(
        textured(), {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}[media_type]
    )

    with pytest.raises(ImageCorrupt) as caught:
        decode(data[: int(len(data) * cut)], LIMITS, media_type)

    assert caught.value.code == "image_corrupt"


def test_header_with_garbage_after_the_magic_is_corrupt():
    with pytest.raises(ImageCorrupt) as caught:
        decode(b"\x89PNG\r\n\x1a\n" + os.urandom(200), LIMITS)

    assert caught.value.code == "image_corrupt"


def test_perceptual_hashes_are_16_hex_digits_and_tell_images_apart():
    one = perceptual_hashes(textured())
    other = perceptual_hashes(textured().transpose(Image.Transpose.FLIP_TOP_BOTTOM))

    for value in (one.phash, one.dhash):
        assert len(value) == 16
        int(value, 16)
    assert hamming(one.phash, other.phash) > 10


def test_draft_decode_for_hashing_stays_close_to_the_full_decode():
    data = encode(textured((1600, 1200)), "JPEG")

    full = decode(data, ImageLimits(max_bytes=10**7, max_pixels=10**7))
    draft = decode(data, ImageLimits(max_bytes=10**7, max_pixels=10**7), hash_only=True)

    assert draft.image.size[0] < full.image.size[0]
    assert (draft.width, draft.height) == (1600, 1200)
    distance = hamming(perceptual_hashes(full.image).phash, perceptual_hashes(draft.image).phash)
    assert distance <= 4


def test_draft_decode_for_hashing_keeps_both_sides_at_least_512():
    """PDQ hashes a copy whose longer side is 512: the draft must not go below it."""
    data = encode(textured((4000, 3000)), "JPEG")
    limits = ImageLimits(max_bytes=10**8, max_pixels=10**8)

    draft = decode(data, limits, hash_only=True)

    assert draft.image.size == (1000, 750)  # a quarter; an eighth would be 500 x 375
    assert (draft.width, draft.height) == (4000, 3000)


def test_dihedral_phashes_match_flipped_and_rotated_copies():
    image = textured()
    original, *others = dihedral_phashes(image)
    copies = {
        "rotate_90": Image.Transpose.ROTATE_90,
        "rotate_180": Image.Transpose.ROTATE_180,
        "rotate_270": Image.Transpose.ROTATE_270,
        "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
        "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
        "transpose": Image.Transpose.TRANSPOSE,
        "transverse": Image.Transpose.TRANSVERSE,
    }
    assert original == perceptual_hashes(image).phash

    for variant, (name, transform) in zip(others, copies.items(), strict=True):
        copy_hash = perceptual_hashes(image.transpose(transform)).phash
        assert hamming(variant, copy_hash) <= 2, name
        assert hamming(original, copy_hash) > 10, name


@pytest.mark.parametrize(("a", "b"), [("abc", "0" * 16), ("g" * 16, "0" * 16)])
def test_hamming_refuses_values_that_are_not_64_bit_hex(a, b):
    with pytest.raises(ValueError, match="16 hex"):
        hamming(a, b)


def test_hamming_counts_differing_bits():
    assert hamming("0" * 16, "0" * 15 + "7") == 3
    assert hamming("f" * 16, "0" * 16) == 64
