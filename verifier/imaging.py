"""Safe decoding and perceptual hashing of every image that enters the service.

Order of checks matters: byte cap, then the type the bytes are (never the name or the
declared type), then the declared type against it, then the pixel count from the header,
and only then the full decode. A file that declares 20,000 x 20,000 pixels is refused
from its header, before Pillow allocates the pixel buffer.
"""

from __future__ import annotations

import hashlib
import io

import imagehash
import msgspec
from PIL import Image, UnidentifiedImageError

from verifier.errors import (
    ImageCorrupt,
    ImageFormatNotAllowed,
    ImageTooLarge,
    ImageTooManyPixels,
    ImageTypeMismatch,
)

__all__ = [
    "DEFAULT_FORMATS",
    "DecodedImage",
    "Hashes",
    "ImageLimits",
    "decode",
    "dihedral_phashes",
    "grey",
    "hamming",
    "media_type_for_format",
    "perceptual_hashes",
    "phash",
    "sha256_hex",
    "sniff_media_type",
]

DEFAULT_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})
# Pillow format name for each media type we can recognise from magic bytes.
_FORMATS: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/heic": "HEIF",
    "image/avif": "AVIF",
}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale instead of full size, keeping both sides
# at least this large: PDQ hashes a copy whose longer side is 512 (moderation.pdq), and the
# 32x32 DCT of pHash sees the same content from it.
_HASH_DRAFT_SIZE = (512, 512)
_HASH_HEX_CHARS = 16
# The sizes imagehash resizes to (pHash: 8 x 4; dHash: 9 x 8).
_PHASH_SIZE = (32, 32)
_DHASH_SIZE = (9, 8)
# The flips and rotations after the image as it is, in moderation.signals.DIHEDRAL's order
# (rotations counter-clockwise, as Pillow's).
_VARIANT_TRANSPOSES = (
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
_FTYP_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heic"}
_FTYP_BRANDS |= {b"avif": "image/avif", b"avis": "image/avif"}
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


class ImageLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Caps for one decode: bytes, pixels (width x height) and Pillow format names allowed."""

    max_bytes: int
    max_pixels: int
    formats: frozenset[str] = DEFAULT_FORMATS


class DecodedImage(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded image and what its bytes are; ``width``/``height`` come from the header.

    ``image`` may be a reduced-size draft when decoded for hashing only.
    """

    media_type: str
    format: str
    width: int
    height: int
    image: Image.Image


class Hashes(msgspec.Struct, frozen=True, kw_only=True):
    """64-bit perceptual hashes as 16 hex characters."""

    phash: str
    dhash: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff_media_type(data: bytes) -> str | None:
    """The media type the magic bytes say, or None when they name no image we recognise."""
    for prefix, media_type in _MAGIC:
        if data.startswith(prefix):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    return None


def media_type_for_format(pillow_format: str) -> str | None:
    for media_type, name in _FORMATS.items():
        if name == pillow_format:
            return media_type
    return None


def decode(
    data: bytes,
    limits: ImageLimits,
    declared_media_type: str | None = None,
    *,
    hash_only: bool = False,
) -> DecodedImage:
    """Decode ``data`` within ``limits``; ``hash_only`` allows a reduced JPEG draft decode.

    Raises an ImageError subclass: image_too_large, image_format_not_allowed,
    image_type_mismatch, image_too_many_pixels or image_corrupt.
    """
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    media_type = _allowed_media_type(data, limits, declared_media_type)
    pillow_format = _FORMATS[media_type]
    image = _open_header(data, pillow_format)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageCorrupt("the image header declares no pixels")
    if width * height > limits.max_pixels:
        raise ImageTooManyPixels(
            f"image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels"
        )
    if hash_only and pillow_format == "JPEG":
        image.draft("RGB", _HASH_DRAFT_SIZE)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooManyPixels("the image decodes to too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise ImageCorrupt(f"the {media_type} data is truncated or corrupt") from None
    return DecodedImage(
        media_type=media_type, format=pillow_format, width=width, height=height, image=image
    )


def _allowed_media_type(data: bytes, limits: ImageLimits, declared: str | None) -> str:
    media_type = sniff_media_type(data)
    if media_type is None:
        raise ImageFormatNotAllowed("the bytes are not a recognised image format")
    if _FORMATS[media_type] not in limits.formats:
        raise ImageFormatNotAllowed(f"{media_type} is not an allowed image format")
    if declared is not None and _normalise_media_type(declared) != media_type:
        shown = _normalise_media_type(declared)[:64]
        raise ImageTypeMismatch(f"declared {shown!r} but the bytes are {media_type}")
    return media_type


def _open_header(data: bytes, pillow_format: str) -> Image.Image:
    """Open lazily: Pillow reads the header (size, mode), not the pixels."""
    try:
        return Image.open(io.BytesIO(data), formats=[pillow_format])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooManyPixels("the image header declares too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageCorrupt(f"the {pillow_format} header does not parse") from None


def grey(image: Image.Image) -> Image.Image:
    """``image`` in grey ("L"), as every hash here reads it: convert once, then pass the
    result to ``phash``, ``perceptual_hashes`` and ``dihedral_phashes`` alike.

    The hashes are those imagehash computes from ``image`` itself, bit for bit: imagehash
    converts to grey and resizes with LANCZOS, and so do these, once.
    """
    if image.mode == "L":
        return image
    if image.mode == "P":
        # Pillow warns when a palette image with transparency goes straight to grey; going
        # through RGBA reads the same pixels without the warning.
        image = image.convert("RGBA")
    return image.convert("L")


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # imagehash's own step; on an image already this size it becomes a copy.
    return grey(image).resize(size, Image.Resampling.LANCZOS)


def phash(image: Image.Image) -> str:
    """The 64-bit pHash (imagehash's) as 16 hex characters."""
    return str(imagehash.phash(_resized(image, _PHASH_SIZE)))


def perceptual_hashes(image: Image.Image) -> Hashes:
    """pHash and dHash; for pHash alone (what matching reads), call ``phash``."""
    shared = grey(image)
    return Hashes(phash=phash(shared), dhash=str(imagehash.dhash(_resized(shared, _DHASH_SIZE))))


def dihedral_phashes(image: Image.Image) -> tuple[str, ...]:
    """The pHash of ``image`` (``phash``'s value) and of its seven flips and rotations.

    Each transform is of the same 32x32 grey copy the pHash itself is computed from: LANCZOS
    weighs pixels symmetrically about each sample, so resizing then flipping is, within a bit
    or two, what pHash does to a flipped copy, and the transforms cost nothing next to the
    one resize. A copy of another size is hashed through a second resize and tells another
    story: from a 64x64 copy, the mirror image of a finely textured photo lay 34 bits from
    its "variant".
    """
    small = _resized(image, _PHASH_SIZE)
    return (
        str(imagehash.phash(small)),
        *(str(imagehash.phash(small.transpose(t))) for t in _VARIANT_TRANSPOSES),
    )


def hamming(a_hex: str, b_hex: str) -> int:
    """Bits that differ between two 64-bit hashes given as 16 hex characters."""
    return (_hash_int(a_hex) ^ _hash_int(b_hex)).bit_count()


def _hash_int(value: str) -> int:
    if len(value) != _HASH_HEX_CHARS:
        raise ValueError("a perceptual hash is 16 hex characters")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError("a perceptual hash is 16 hex characters") from None


def _normalise_media_type(value: str) -> str:
    media_type = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(media_type, media_type)
