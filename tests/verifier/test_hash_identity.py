"""One grey conversion shared by every hash gives imagehash's values bit for bit.

Hash lists, consent records and signed outputs store pHashes made before the hashing was
folded into one conversion: the values must not move. The reference below is what the
service computed before (imagehash on the decoded image, palette images through RGBA). The
variants, which nothing stores (only queries use them), are of pHash's own 32x32 grey copy.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from verifier import (
    ImageLimits,
    decode,
    dihedral_phashes,
    grey,
    perceptual_hashes,
    phash,
)

LIMITS = ImageLimits(max_bytes=50_000_000, max_pixels=50_000_000)


def _reference(image: Image.Image) -> tuple[str, str, tuple[str, ...]]:
    """pHash, dHash, and the pHash of each flip and rotation of pHash's own 32x32 grey copy
    (in moderation.signals.DIHEDRAL order, without the original)."""
    image = image.convert("RGBA") if image.mode == "P" else image
    small = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    variants = tuple(
        str(imagehash.phash(small.transpose(t)))
        for t in (
            Image.Transpose.ROTATE_90,
            Image.Transpose.ROTATE_180,
            Image.Transpose.ROTATE_270,
            Image.Transpose.FLIP_TOP_BOTTOM,
            Image.Transpose.FLIP_LEFT_RIGHT,
            Image.Transpose.TRANSPOSE,
            Image.Transpose.TRANSVERSE,
        )
    )
    return str(imagehash.phash(image)), str(imagehash.dhash(image)), variants


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    """Noise under smooth gradients: detail at every scale."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    noise = rng.integers(0, 64, (height, width, 3))
    pixels = (x * [1.0, 0.3, 0.6] + y * [0.2, 0.9, 0.4]) / 1.5 + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _cases() -> list[tuple[str, bytes]]:
    photo = _photo((1600, 1200), seed=7)
    small = _photo((333, 257), seed=8)
    alpha = small.convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize(small.size))
    palette = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 3
    return [
        ("jpeg 1600x1200 (draft-decoded)", _encoded(photo, "JPEG", quality=90)),
        ("jpeg 4000x3000 (draft-decoded)", _encoded(_photo((4000, 3000), 9), "JPEG")),
        ("jpeg grey", _encoded(small.convert("L"), "JPEG")),
        ("jpeg cmyk", _encoded(small.convert("CMYK"), "JPEG")),
        ("png rgb", _encoded(small, "PNG")),
        ("png rgba", _encoded(alpha, "PNG")),
        ("png palette with transparency", _encoded(palette, "PNG")),
        ("png grey with alpha", _encoded(alpha.convert("LA"), "PNG")),
        ("png 16-bit grey", _encoded(small.convert("I;16"), "PNG")),
        ("webp", _encoded(small, "WEBP", quality=80)),
    ]


@pytest.mark.parametrize(("name", "data"), _cases(), ids=[c[0] for c in _cases()])
def test_hashes_are_imagehash_values_bit_for_bit(name, data):
    image = decode(data, LIMITS, hash_only=True).image
    want_phash, want_dhash, want_variants = _reference(image)

    assert phash(image) == want_phash
    hashes = perceptual_hashes(image)
    assert (hashes.phash, hashes.dhash) == (want_phash, want_dhash)
    assert dihedral_phashes(image) == (want_phash, *want_variants)
    # What the gate does: one conversion, handed to both.
    shade = grey(image)
    assert dihedral_phashes(shade) == (want_phash, *want_variants)


def test_grey_keeps_a_grey_image_as_it_is():
    image = _photo((40, 30), seed=1).convert("L")
    assert grey(image) is image
