"""An invisible DWT-DCT watermark carrying a short lookup key: a C2PA soft binding.

The registry embeds it when it signs an output, so that a copy whose manifest was stripped
(every social upload) still names its signed output; anyone can read it offline with this
module alone (numpy, PyWavelets and SciPy, which imagehash already brings).

The codec (``org.consent-registry.watermark.dwtdct.1``, docs/watermark.md):

- It works on the luminance only: Y of JFIF YCbCr, ``0.299 R + 0.587 G + 0.114 B``. Adding
  ``d`` to Y with Cb and Cr kept is adding ``d`` to R, G and B alike, so the colours move
  by at most the rounding.
- It works at one canonical size: the luminance is resized to 256 x 256, the mark is put in
  there, and the change (not the image) is resized back to the image's size and added. A
  copy of any size is read by resizing it to 256 x 256 again, so resizing (and
  screenshots, which are resizes) do not move the mark. Cropping does: a crop moves the grid.
- The canonical luminance is split by a one-level Haar DWT; its 128 x 128 LL band into 4 x 4
  blocks (1,024 blocks), each transformed by an orthonormal 2-D DCT. Two low-frequency
  coefficients per block carry one bit each by dithered quantisation index modulation (step
  ``STEP``): 2,048 slots.
- The change is shaped so that it does not show: each embedding pass scales it by the local
  contrast of the image (a smooth sky or gradient takes a quarter of what texture takes) and
  smooths it (a Gaussian of 1.5 canonical pixels, so no block edge appears), then reads the
  result back and corrects again, six passes in all. Reading needs none of this: the
  decoder only looks at the slots.
- The payload is 64 bits: a 40-bit random key and a 24-bit check (the first 24 bits of
  SHA-256 of a fixed label and the key). Each bit goes to 32 slots spread over the whole
  image by a fixed permutation; reading sums the 32 soft votes of each bit.
- A read is a match only if the 24-bit check holds: an image without the mark (noise to
  this reader) passes it with probability 2^-24 (6e-8), and then also has to hit one of the
  registry's keys (N / 2^40 for N signed outputs, 1e-6 for a million), so a false match is
  about 1 in 10^13 per unmarked image read.

``embed`` and ``read`` take Pillow images and never decode bytes themselves: callers decode
within their limits first (``verifier.imaging.decode``). ``read`` never raises for content:
an image too small to hold the mark, or any mode it cannot read, is simply no key.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from typing import TYPE_CHECKING, Final

import msgspec
import numpy as np
import pywt
from PIL import Image, JpegImagePlugin
from scipy import fft, ndimage

from verifier.errors import ImageError
from verifier.imaging import decode
from verifier.report import SOFT_BINDING_LABEL

if TYPE_CHECKING:
    from verifier.imaging import DecodedImage, ImageLimits

__all__ = [
    "ALGORITHM",
    "KEY_HEX_CHARS",
    "MIN_PSNR",
    "MIN_SIDE",
    "SOFT_BINDING_LABEL",
    "Embedded",
    "WatermarkRead",
    "embed",
    "embed_encoded",
    "new_key",
    "psnr",
    "read",
    "soft_binding_assertion",
    "valid_key",
]

ALGORITHM: Final = "org.consent-registry.watermark.dwtdct.1"
"""The ``alg`` of our soft-binding assertions (vendor-namespaced: not in C2PA's list)."""
KEY_BITS: Final = 40
KEY_HEX_CHARS: Final = KEY_BITS // 4
CHECK_BITS: Final = 24
PAYLOAD_BITS: Final = KEY_BITS + CHECK_BITS
MIN_SIDE: Final = 64
"""Images with a side shorter than this get no mark (and reads of them find none)."""
MIN_PSNR: Final = 40.0
"""A marked copy further than this (dB) from the image is not used: the mark must not show."""
_CANON: Final = 256
_BLOCK: Final = 4
_BLOCKS: Final = (_CANON // 2) // _BLOCK
# The DCT coefficients of each 4 x 4 block that carry bits: low frequencies, which JPEG
# keeps at any usual quality and which a resize to half (or less) leaves alone.
_COEFFICIENTS: Final = ((0, 1), (1, 0))
_SLOTS: Final = _BLOCKS * _BLOCKS * len(_COEFFICIENTS)
_REPEATS: Final = _SLOTS // PAYLOAD_BITS
STEP: Final = 32.0
"""The quantisation step (LL-band units); larger is more robust and more visible."""
# Embedding passes: each corrects what the resize to the image's size and back lost.
_PASSES: Final = 6
# Smoothing of each pass's change (canonical pixels): no block edges in the mark.
_SMOOTH: Final = 1.5
# Local contrast (grey levels) at which a pixel takes the full change, and the least share
# a flat one takes.
_TEXTURE: Final = 12.0
_FLAT: Final = 0.25
# No pixel moves by more than this (grey levels): where clipping at 0 or 255 keeps a slot
# off its lattice, further passes would otherwise pile up change around it.
_MAX_CHANGE: Final = 12.0
_CHECK_LABEL: Final = b"org.consent-registry.watermark.v1"
_MARKABLE: Final = frozenset({"RGB", "RGBA", "L"})
# Fixed and public, part of the format: which slots carry which bit (a permutation) and
# each slot's dither, both drawn from SHA-256 so that they never depend on a library's RNG.


def _stream(label: bytes, count: int) -> np.ndarray:
    words = [
        int.from_bytes(hashlib.sha256(_CHECK_LABEL + label + i.to_bytes(4, "big")).digest()[:8])
        for i in range(count)
    ]
    return np.array(words, dtype=np.float64) / float(1 << 64)


_ORDER: Final = np.argsort(_stream(b"/order", _SLOTS), kind="stable")
_BIT_OF_SLOT: Final = np.empty(_SLOTS, dtype=np.int64)
_BIT_OF_SLOT[_ORDER] = np.arange(_SLOTS) % PAYLOAD_BITS
_DITHER: Final = _stream(b"/dither", _SLOTS) * STEP


class Embedded(msgspec.Struct, frozen=True, kw_only=True):
    """A marked copy of an image (same size and mode) and the key it carries."""

    image: Image.Image
    key: str


class WatermarkRead(msgspec.Struct, frozen=True, kw_only=True):
    """What a read found: a key (its check held), and how clear the votes were (0 to 1:
    the mean agreement of each bit's 32 slots; marked copies read 0.5 to 1.00, unmarked images
    about 0.1)."""

    key: str | None
    confidence: float


def new_key() -> str:
    """A fresh random 40-bit key as 10 hex characters (not derived from anything)."""
    return secrets.token_hex(KEY_BITS // 8)


def valid_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == KEY_HEX_CHARS
        and all(char in "0123456789abcdef" for char in value)
    )


def soft_binding_assertion(key: str) -> dict[str, object]:
    """The ``c2pa.soft-binding`` assertion declaring the mark (C2PA 2.x soft-binding-map:
    ``alg``, and one block whose scope is the whole image and whose value is the key)."""
    if not valid_key(key):
        raise ValueError("a watermark key is 10 lowercase hex characters")
    return {
        "label": SOFT_BINDING_LABEL,
        "data": {"alg": ALGORITHM, "blocks": [{"scope": {}, "value": key}]},
    }


def embed(image: Image.Image, key: str) -> Embedded | None:
    """``image`` with ``key`` embedded in its luminance; None when it cannot hold the mark
    (a side under ``MIN_SIDE``, or a mode other than RGB, RGBA or L).

    Each pass reads the canonical luminance of the marked copy as ``read`` will (after the
    rounding and clipping to 8 bits), moves its slots onto their lattices, masks and smooths
    that change, and adds it, resized to the image's size. The work arrays are one float per
    pixel, never one per sample.
    """
    if not valid_key(key):
        raise ValueError("a watermark key is 10 lowercase hex characters")
    if image.mode not in _MARKABLE or min(image.size) < MIN_SIDE:
        return None
    # The passes run on a copy reduced as ``_canonical`` reduces (a box average by a whole
    # factor, at least 512 px a side): they read the same canonical image, at a fraction of
    # the cost. The change is smooth, so it is resized to full size once, at the end.
    factor = min(image.size) // (2 * _CANON)
    work = image.reduce(factor) if factor > 1 else image
    base = np.asarray(work, dtype=np.uint8)
    bits = _payload_bits(key)
    delta = np.zeros((work.height, work.width), dtype=np.float32)
    marked = work
    mask = _mask(_canonical(work))
    for _ in range(_PASSES):
        canonical = _canonical(marked)
        change = ndimage.gaussian_filter((_quantised(canonical, bits) - canonical) * mask, _SMOOTH)
        delta = np.clip(delta + _resize(change, work.size), -_MAX_CHANGE, _MAX_CHANGE)
        marked = _apply(base, delta, image.mode)
    if factor > 1:
        full = _resize(delta, image.size)
        marked = _apply(np.asarray(image, dtype=np.uint8), full, image.mode)
    return Embedded(image=marked, key=key)


def _mask(canonical: np.ndarray) -> np.ndarray:
    """How much change each canonical pixel takes, 0 to 1: the local contrast (standard
    deviation over about 9 x 9 pixels) against ``_TEXTURE``, at least ``_FLAT``, so that a
    smooth sky or gradient (where a mark would show) takes least."""
    mean = ndimage.uniform_filter(canonical, 9)
    variance = np.maximum(ndimage.uniform_filter(canonical**2, 9) - mean**2, 0.0)
    return np.asarray(np.clip(np.sqrt(variance) / _TEXTURE, _FLAT, 1.0), dtype=np.float64)


def embed_encoded(data: bytes, limits: ImageLimits, key: str) -> bytes | None:
    """``data`` (an image within ``limits``) with ``key`` embedded, encoded again in its own
    format; None when the image cannot hold the mark, when the marked copy would be under
    ``MIN_PSNR`` dB from it, or when the mark does not read back from the encoded bytes.

    JPEG keeps its quantisation tables and chroma subsampling (so its quality), PNG stays
    lossless, WebP is encoded at quality 95; the ICC profile and EXIF are kept. Raises the
    ``verifier`` ImageErrors of ``decode`` for what the limits refuse.
    """
    decoded = decode(data, limits)
    marked = embed(decoded.image, key)
    if marked is None or psnr(decoded.image, marked.image) < MIN_PSNR:
        return None
    encoded = _encode(marked.image, decoded)
    try:
        again = decode(encoded, limits, hash_only=True)
    except ImageError:
        return None
    return encoded if read(again.image).key == key else None


def _encode(image: Image.Image, source: DecodedImage) -> bytes:
    info = source.image.info
    options: dict[str, object] = {
        name: info[name] for name in ("icc_profile", "exif", "dpi") if info.get(name)
    }
    if source.format == "JPEG":
        quantization = getattr(source.image, "quantization", None)
        if quantization:
            options["qtables"] = quantization
        sampling = JpegImagePlugin.get_sampling(source.image)
        if sampling >= 0 and image.mode != "L":
            options["subsampling"] = sampling
        else:
            options.setdefault("quality", 95)
    elif source.format == "WEBP":
        options["quality"] = 95
    out = io.BytesIO()
    image.save(out, source.format, **options)
    return out.getvalue()


def read(image: Image.Image) -> WatermarkRead:
    """The key the image carries, if any; never raises for what the image holds."""
    if min(image.size) < MIN_SIDE:
        return WatermarkRead(key=None, confidence=0.0)
    try:
        canonical = _canonical(image)
    except (ValueError, OSError, TypeError):
        return WatermarkRead(key=None, confidence=0.0)
    votes = _votes(_coefficients(canonical))
    sums = np.bincount(_BIT_OF_SLOT, weights=votes, minlength=PAYLOAD_BITS)
    confidence = float(np.mean(np.abs(sums)) / _REPEATS)
    value = 0
    for total in sums:
        value = (value << 1) | int(total < 0)
    key_value, check = value >> CHECK_BITS, value & ((1 << CHECK_BITS) - 1)
    key = f"{key_value:0{KEY_HEX_CHARS}x}"
    if _check(key) != check:
        return WatermarkRead(key=None, confidence=confidence)
    return WatermarkRead(key=key, confidence=confidence)


def psnr(original: Image.Image, changed: Image.Image) -> float:
    """Peak signal-to-noise ratio (dB) between two images of the same size, over RGB."""
    if original.size != changed.size:
        raise ValueError("the images differ in size")
    a = np.asarray(original if original.mode == "RGB" else original.convert("RGB"))
    b = np.asarray(changed if changed.mode == "RGB" else changed.convert("RGB"))
    squared = 0
    step = 256
    for top in range(0, a.shape[0], step):
        diff = a[top : top + step].astype(np.int32) - b[top : top + step].astype(np.int32)
        squared += int(np.sum(diff * diff, dtype=np.int64))
    mse = squared / a.size
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


# The format.


def _check(key: str) -> int:
    digest = hashlib.sha256(_CHECK_LABEL + bytes.fromhex(key)).digest()
    return int.from_bytes(digest[:3], "big")


def _payload_bits(key: str) -> np.ndarray:
    value = (int(key, 16) << CHECK_BITS) | _check(key)
    return np.array([int(bit) for bit in f"{value:0{PAYLOAD_BITS}b}"], dtype=np.float64)


def _canonical(image: Image.Image) -> np.ndarray:
    """The luminance at 256 x 256 (floats): Pillow's "L" (ITU-R 601-2 luma), first reduced
    by a whole factor when large (a box average, so no float copy of a big image), then
    resized with an antialiasing bicubic filter."""
    if image.mode == "P":
        # Through RGBA, as verifier.imaging.grey does, so a palette with transparency reads.
        image = image.convert("RGBA")
    grey = image if image.mode == "L" else image.convert("L")
    factor = min(grey.size) // (2 * _CANON)
    if factor > 1:
        grey = grey.reduce(factor)
    return _resize(np.asarray(grey, dtype=np.float32), (_CANON, _CANON)).astype(np.float64)


def _apply(base: np.ndarray, delta: np.ndarray, mode: str) -> Image.Image:
    """``base`` (8-bit samples) with the rounded ``delta`` added to every colour channel
    (never alpha), clipped to 0..255; row by row in strips to bound the temporary arrays."""
    out = base.copy()
    step = 512
    for top in range(0, base.shape[0], step):
        change = np.rint(delta[top : top + step]).astype(np.int16)
        if base.ndim == 2:  # noqa: PLR2004 - H x W
            strip = base[top : top + step].astype(np.int16) + change
            out[top : top + step] = np.clip(strip, 0, 255).astype(np.uint8)
            continue
        strip = base[top : top + step, :, :3].astype(np.int16) + change[..., None]
        out[top : top + step, :, :3] = np.clip(strip, 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode=mode)


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``values`` (H x W floats) resized to ``size`` (width, height), antialiased."""
    if values.shape == (size[1], size[0]):
        return values.astype(np.float32)
    resized = Image.fromarray(values.astype(np.float32), mode="F").resize(
        size, Image.Resampling.BICUBIC
    )
    return np.asarray(resized, dtype=np.float32)


def _blocks(band: np.ndarray) -> np.ndarray:
    """The LL band as (block row, block column, 4, 4)."""
    return band.reshape(_BLOCKS, _BLOCK, _BLOCKS, _BLOCK).transpose(0, 2, 1, 3)


def _unblocks(blocks: np.ndarray) -> np.ndarray:
    return blocks.transpose(0, 2, 1, 3).reshape(_BLOCKS * _BLOCK, _BLOCKS * _BLOCK)


def _coefficients(canonical: np.ndarray) -> np.ndarray:
    low, _ = pywt.dwt2(canonical, "haar")
    spectra = fft.dctn(_blocks(low), axes=(2, 3), norm="ortho")
    return np.stack([spectra[:, :, u, v].ravel() for u, v in _COEFFICIENTS], axis=1).ravel()


def _quantised(canonical: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``canonical`` with every slot moved to the nearest point of its bit's lattice."""
    low, high = pywt.dwt2(canonical, "haar")
    spectra = fft.dctn(_blocks(low), axes=(2, 3), norm="ortho")
    slots = np.stack([spectra[:, :, u, v].ravel() for u, v in _COEFFICIENTS], axis=1).ravel()
    offset = _DITHER + bits[_BIT_OF_SLOT] * (STEP / 2.0)
    slots = np.round((slots - offset) / STEP) * STEP + offset
    columns = slots.reshape(-1, len(_COEFFICIENTS))
    for index, (u, v) in enumerate(_COEFFICIENTS):
        spectra[:, :, u, v] = columns[:, index].reshape(_BLOCKS, _BLOCKS)
    marked_low = _unblocks(fft.idctn(spectra, axes=(2, 3), norm="ortho"))
    return np.asarray(pywt.idwt2((marked_low, high), "haar"), dtype=np.float64)


def _votes(slots: np.ndarray) -> np.ndarray:
    """+1 for a slot on bit 0's lattice, -1 on bit 1's, in between for slots in between."""
    return np.cos(2.0 * np.pi * (slots - _DITHER) / STEP)
