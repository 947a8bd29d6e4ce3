"""PDQ, Meta's 256-bit perceptual hash, through the ``pdqhash`` binding (its reference C++).

The one module that imports ``pdqhash`` (an import-linter contract): the binding has no type
information, and its dihedral output needs care. ``pdqhash.compute_dihedral`` derives seven
hashes from one DCT; of those, only the transpose equals the hash of the transposed image
bit for bit. Its flips and rotations assume the image's reduction to 64x64 is symmetric under
a flip, and it is not (the Jarosz box filter and the decimation round to one side): they lay
up to 52 bits from hashing the flipped image, measured on scikit-image's photos.
The eight consistent hashes are therefore four runs, one on each of the flips (none, left to
right, top to bottom, both), each giving its own hash and its exact transpose: half the
cost of hashing the eight transforms one by one.

Images are hashed as a prepared copy: RGB, longer side reduced to at most 512 with Pillow's
BOX filter (PDQ's own downscaling sees the same content, and the cost stops growing with the
image). Hashes are 32 bytes, the binding's bits packed most significant first: as hex, the
64 characters ThreatExchange, HMA and StopNCII exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import pdqhash
from PIL import Image

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["PREPARED_SIDE", "dihedral", "hash_of", "prepare"]

PREPARED_SIDE: Final = 512
# compute_dihedral's outputs: 0 is the image's own hash, 6 its transpose (measured exact;
# the other six are the DCT-derived ones that drift).
_OWN, _TRANSPOSE = 0, 6


def prepare(image: Image.Image) -> NDArray[np.uint8]:
    """``image`` as the height x width x 3 uint8 array PDQ hashes."""
    if image.mode == "P":
        # As verifier.imaging.grey: a palette with transparency read through RGBA, no warning.
        image = image.convert("RGBA")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    longer = max(rgb.size)
    if longer > PREPARED_SIDE:
        scale = PREPARED_SIDE / longer
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
    return np.asarray(rgb)


def hash_of(prepared: NDArray[np.uint8]) -> tuple[bytes, int]:
    """The PDQ hash of a prepared image and its quality (0-100)."""
    bits, quality = pdqhash.compute(prepared)
    return _packed(bits), int(quality)


def dihedral(prepared: NDArray[np.uint8]) -> tuple[dict[str, bytes], int]:
    """The PDQ hashes of the eight flips and rotations, by transform name, and the quality of
    the image as it is.

    Names are ``moderation.signals.DIHEDRAL``'s; each hash is the one hashing that transform
    of ``prepared`` gives (rotations counter-clockwise, as Pillow's ``ROTATE_90``).
    """
    # Views, not copies: the binding reads strided arrays (it converts to luma first).
    runs = (
        (prepared, "original", "transpose"),
        (prepared[:, ::-1], "flip_horizontal", "rotate_90"),
        (prepared[::-1], "flip_vertical", "rotate_270"),
        (prepared[::-1, ::-1], "rotate_180", "transverse"),
    )
    hashes: dict[str, bytes] = {}
    quality = 0
    for array, own, transposed in runs:
        outputs, run_quality = pdqhash.compute_dihedral(array)
        hashes[own] = _packed(outputs[_OWN])
        hashes[transposed] = _packed(outputs[_TRANSPOSE])
        if own == "original":
            quality = int(run_quality)
    return hashes, quality


def _packed(bits: NDArray[np.int64]) -> bytes:
    return np.packbits(bits.astype(np.uint8)).tobytes()
