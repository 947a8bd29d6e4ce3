"""The perceptual-hash signals an image is matched on: PDQ and pHash, and the hashes of both.

Two signals: ``pdq`` (Meta's 256-bit PDQ, what hash-sharing programmes exchange;
``moderation.pdq``) and ``phash`` (imagehash's 64-bit pHash, ``verifier.imaging.phash``;
consent tokens and signed outputs carry it). A hash travels as lower-case hex in JSON and as
big-endian ``bytes`` everywhere else (``parse_hash``, ``format_hash``).

The two sides of a match are hashed differently, each to cover what the other cannot:

- a query image (``image_signals``: the gate, a lookup by image) is hashed in all eight flips
  and rotations (``DIHEDRAL``), for both signals, each computed from the same prepared copy
  as its primary hash so a flipped copy lands on the stored hash within a bit or two. When
  the query has a border (near-uniform rows or columns along an edge: a frame, letterboxing,
  a screenshot's margin), the copy without it is hashed too: neither signal survives a
  border of a few per cent, both survive its removal.
- an image added to a list (``stored_signals``) keeps PDQ and pHash of itself as it is, of
  itself without its border when it has one (``TRIMMED``: a photo on a white page, framed
  again in white, trims to the same content on both sides, where the frame alone merges with
  the page and is no border of its own), and the pHash of a grid of crops (``CROP_GRID``):
  5 to 30 % off each side, and centred. PDQ
  moves more than 100 bits under a 10 % crop; pHash also moves past its review band (14
  bits for a one-sided 10 %), but a one-sided or centred crop of 10-25 %, on the grid's
  steps or between them, lands within 8 bits of the nearest grid crop, while no photo's
  hashes came nearer than 16 to another's grid (scikit-image's photos,
  ``tests/moderation/test_signals.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import msgspec
import numpy as np
from PIL import Image

from moderation import pdq
from moderation.errors import HashValueInvalid
from verifier import imaging

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

__all__ = [
    "CROP_GRID",
    "CROP_NAMES",
    "DIHEDRAL",
    "SIGNALS",
    "SIGNAL_BITS",
    "TRIMMED",
    "ImageSignals",
    "Signal",
    "SignalHashes",
    "StoredSignals",
    "format_hash",
    "image_signals",
    "parse_hash",
    "pdq_hash",
    "stored_signals",
    "trim_border",
]

Signal: TypeAlias = Literal["pdq", "phash"]
SIGNALS: Final[tuple[Signal, ...]] = ("pdq", "phash")
SIGNAL_BITS: Final[Mapping[Signal, int]] = {"pdq": 256, "phash": 64}
# The order of the eight hashes of an image, for every signal, everywhere. Rotations are
# counter-clockwise (Pillow's ROTATE_90); flip_vertical is top to bottom, flip_horizontal a
# mirror image; transpose mirrors across the main diagonal, transverse across the other.
DIHEDRAL: Final[tuple[str, ...]] = (
    "original",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    "flip_vertical",
    "flip_horizontal",
    "transpose",
    "transverse",
)
# (side, fraction cut off): 5 to 30 % from the left, right, top or bottom, or "centre": the
# fraction of the width and of the height, half from each side (a 10 % centred crop keeps
# the middle 90 % of each). Thirty crops, fraction by fraction.
CROP_GRID: Final[tuple[tuple[str, float], ...]] = tuple(
    (side, percent / 100)
    for percent in (5, 10, 15, 20, 25, 30)
    for side in ("left", "right", "top", "bottom", "centre")
)
# What each crop's entry is called ("left 10%"), in CROP_GRID's order.
CROP_NAMES: Final[tuple[str, ...]] = tuple(f"{side} {round(f * 100)}%" for side, f in CROP_GRID)
# A row or column is part of a border when no channel varies in it by more than this (of
# 255): JPEG ringing and noise in a flat border stay below it, photo content does not.
_BORDER_TOLERANCE: Final = 12
# The crop name of the entry made from a listed image without its border.
TRIMMED: Final = "without border"
# A border is trimmed only while this fraction of each dimension is left (at least
# _MIN_CONTENT pixels of the prepared copy): less is a mostly uniform image, whose few lines
# of detail are its content, not a picture inside a frame.
_MIN_CONTENT_FRACTION: Final = 0.25
_MIN_CONTENT: Final = 32
# A side counts as bordered from this fraction of the image's size (at least 2 pixels): a
# line of one colour along an edge is often the photo itself, and hashing twice for it buys
# nothing.
_BORDER_MIN_FRACTION: Final = 0.01
_LINES_PER_READ: Final = 16
_HEX: Final = re.compile(r"[0-9a-fA-F]+")


class SignalHashes(msgspec.Struct, frozen=True, kw_only=True):
    """The hashes of one signal of a query image, as lower-case hex.

    ``hashes`` holds eight in ``DIHEDRAL`` order, then, when a border was trimmed, the eight
    of the trimmed copy. ``quality`` is PDQ's (0-100, of the image as it is); None for phash.
    """

    signal: Signal
    hashes: tuple[str, ...]
    quality: int | None = None


class ImageSignals(msgspec.Struct, frozen=True, kw_only=True):
    """What a query image is matched on: both signals, and whether a border was trimmed."""

    pdq: SignalHashes
    phash: SignalHashes
    border_trimmed: bool = False


class StoredSignals(msgspec.Struct, frozen=True, kw_only=True):
    """What an image added to a list is stored as, in lower-case hex.

    ``phash`` is ``verifier.imaging.phash``'s value; ``phash_crops`` the pHashes of the
    ``CROP_GRID`` crops, in its order; ``trimmed_pdq`` and ``trimmed_phash`` the hashes of
    the image without its border, when it has one (``trim_border``).
    """

    pdq: str
    pdq_quality: int
    phash: str
    phash_crops: tuple[str, ...]
    trimmed_pdq: str | None = None
    trimmed_phash: str | None = None

    def entries(self, signal: Signal) -> tuple[tuple[str, str | None], ...]:
        """The entries a list of ``signal`` stores for this image: (hash, crop name), the
        image's own hash first (crop None)."""
        if signal == "pdq":
            rows: list[tuple[str, str | None]] = [(self.pdq, None)]
            trimmed = self.trimmed_pdq
        else:
            rows = [(self.phash, None)]
            rows += zip(self.phash_crops, CROP_NAMES, strict=True)
            trimmed = self.trimmed_phash
        if trimmed is not None:
            rows.append((trimmed, TRIMMED))
        return tuple(rows)


def parse_hash(signal: Signal, value: str) -> bytes:
    """A hash of ``signal`` from hex (either case) to its big-endian bytes.

    Raises hash_value_invalid for another length, a character that is not a hex digit
    (spaces and ``0x`` included), or a signal that is not one of ``SIGNALS``.
    """
    bits = SIGNAL_BITS.get(signal)
    if bits is None:
        raise HashValueInvalid(f"unknown signal {str(signal)[:32]!r}; expected pdq or phash")
    chars = bits // 4
    if len(value) != chars or not _HEX.fullmatch(value):
        raise HashValueInvalid(f"a {signal} hash is {chars} hex characters ({bits} bits)")
    return bytes.fromhex(value)


def format_hash(value: bytes) -> str:
    """A hash's bytes as lower-case hex."""
    return value.hex()


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """The PDQ hash of ``image`` as it is (hex) and its quality (0-100).

    For a photo that is only kept, not matched in every orientation: a consent asset.
    """
    value, quality = pdq.hash_of(pdq.prepare(image))
    return format_hash(value), quality


def image_signals(image: Image.Image) -> ImageSignals:
    """Both signals of a query image: eight hashes each, sixteen when a border was trimmed.

    pHash is computed from ``image`` itself (the primary value is ``verifier.imaging.phash``'s,
    which tokens carry); PDQ from its prepared copy (``moderation.pdq.prepare``). The trimmed
    copy is cut from the prepared one for both: a border is found, and cut, at that size.
    Its grey copy (``verifier.imaging.grey``) hashes the same, PDQ too (no bit apart on
    scikit-image's photos): a caller that has made one may pass it.
    """
    prepared = pdq.prepare(image)
    pdq_hashes, quality = _pdq_dihedral(prepared)
    phashes = imaging.dihedral_phashes(image)
    trimmed = trim_border(prepared)
    if trimmed is not None:
        pdq_hashes += _pdq_dihedral(trimmed)[0]
        phashes += imaging.dihedral_phashes(Image.fromarray(trimmed))
    return ImageSignals(
        pdq=SignalHashes(signal="pdq", hashes=pdq_hashes, quality=quality),
        phash=SignalHashes(signal="phash", hashes=phashes),
        border_trimmed=trimmed is not None,
    )


def stored_signals(image: Image.Image) -> StoredSignals:
    """What an image added to a list keeps: PDQ and its quality, pHash and its crop grid.

    The crops are cut from the full-size grey copy and hashed as ``verifier.imaging.phash``
    hashes any image, so a cropped copy's own pHash is what they are compared with.
    """
    prepared = pdq.prepare(image)
    value, quality = pdq.hash_of(prepared)
    shade = imaging.grey(image)
    # Cut at the prepared size, as a query's border is (image_signals), so both sides trim
    # the same lines.
    trimmed = trim_border(prepared)
    return StoredSignals(
        pdq=format_hash(value),
        pdq_quality=quality,
        phash=imaging.phash(shade),
        phash_crops=tuple(imaging.phash(shade.crop(_crop_box(shade.size, *c))) for c in CROP_GRID),
        trimmed_pdq=None if trimmed is None else format_hash(pdq.hash_of(trimmed)[0]),
        trimmed_phash=None if trimmed is None else imaging.phash(Image.fromarray(trimmed)),
    )


def trim_border(pixels: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """``pixels`` (height x width x channels) without its border, or None when it has none.

    A border is a run of near-uniform rows or columns along an edge (each side on its own:
    a letterbox has two, a caption strip one). An image that is mostly uniform (the runs
    would leave less than a quarter of a dimension) is not trimmed: that is its content.
    """
    height, width = pixels.shape[:2]
    columns = pixels.transpose(1, 0, 2)
    top, bottom = _run(pixels), _run(pixels[::-1])
    left, right = _run(columns), _run(columns[::-1])
    if top + bottom + left + right == 0:
        return None
    if not (_content_left(height, top + bottom) and _content_left(width, left + right)):
        return None
    return pixels[top : height - bottom, left : width - right]


def _content_left(size: int, cut: int) -> bool:
    left = size - cut
    return left >= _MIN_CONTENT and left >= size * _MIN_CONTENT_FRACTION


def _pdq_dihedral(prepared: NDArray[np.uint8]) -> tuple[tuple[str, ...], int]:
    hashes, quality = pdq.dihedral(prepared)
    return tuple(format_hash(hashes[name]) for name in DIHEDRAL), quality


def _run(lines: NDArray[np.uint8]) -> int:
    """How many of the leading lines (rows of ``lines``, each width x channels) are near
    uniform; 0 when too few to be a border.

    Read a few lines at a time from the edge inwards: most images have no border, and their
    first line settles it.
    """
    size = len(lines)
    run = 0
    while run < size:
        chunk = lines[run : run + _LINES_PER_READ]
        spread = chunk.max(axis=1).astype(np.int16) - chunk.min(axis=1)
        varied = np.flatnonzero(spread.max(axis=1) > _BORDER_TOLERANCE)
        if varied.size:
            run += int(varied[0])
            break
        run += len(chunk)
    return run if run >= max(2, round(size * _BORDER_MIN_FRACTION)) else 0


def _crop_box(size: tuple[int, int], side: str, fraction: float) -> tuple[int, int, int, int]:
    width, height = size
    dx, dy = round(width * fraction), round(height * fraction)
    boxes = {
        "left": (dx, 0, width, height),
        "right": (0, 0, width - dx, height),
        "top": (0, dy, width, height),
        "bottom": (0, 0, width, height - dy),
        "centre": (dx // 2, dy // 2, width - dx // 2, height - dy // 2),
    }
    return boxes[side]
