"""Palette images with transparency hash without Pillow's conversion warning."""

from __future__ import annotations

import io
import warnings

from PIL import Image

from verifier import imaging


def test_palette_png_with_transparency_hashes_quietly():
    image = Image.new("P", (32, 32))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    for x in range(16):
        image.putpixel((x, x), 1)
    buffer = io.BytesIO()
    # Per-entry alpha (a tRNS chunk of bytes) is what makes Pillow warn on a direct "L" convert.
    image.save(buffer, "PNG", transparency=bytes([0, 128]))
    decoded = imaging.decode(
        buffer.getvalue(), imaging.ImageLimits(max_bytes=10_000, max_pixels=10_000)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hashes = imaging.perceptual_hashes(decoded.image)
        variants = imaging.dihedral_phashes(decoded.image)
    assert len(hashes.phash) == 16
    assert {len(value) for value in variants} == {16}
