"""What the service learns from an uploaded image, and the blocking work done on it.

These functions block (Pillow, the C2PA SDK, hashing) and run in ``BoundedWork`` threads.
Checks come in the order of ``verifier.imaging.decode``: byte cap, the type the bytes are,
the declared type and the file name's extension against it, the pixel count from the
header, and only then decoding and C2PA work. Verification alone goes on when the pixels do
not decode (a flipped byte in a header, a truncated file): the manifest is checked all the
same, and ``ImageCheck`` reports the decoding apart from the C2PA verdict.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import msgspec

from verifier import (
    ImageCorrupt,
    ImageLimits,
    ImageTypeMismatch,
    Report,
    decode,
    phash,
    sha256_hex,
    sign,
    sniff_media_type,
    verify,
    watermark,
)

if TYPE_CHECKING:
    from keys.c2pa_identity import C2paIdentity
    from verifier import GenerationFacts, TimestampAuthority, TrustSettings

__all__ = [
    "ImageCheck",
    "Inspected",
    "SignedImage",
    "Upload",
    "VerifiedImage",
    "inspect",
    "sign_image",
    "verify_image",
]

# Declared types that say nothing about the bytes (clients send them for any file).
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_EXTENSIONS: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heic",
    ".avif": "image/avif",
}


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded file part: its bytes and what the client said they are."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None

    def __repr__(self) -> str:
        return f"Upload({len(self.data)} bytes, {self.content_type!r}, {self.filename!r})"


class Inspected(msgspec.Struct, frozen=True, kw_only=True):
    media_type: str
    width: int
    height: int
    sha256: str
    phash: str
    watermark_key: str | None = None
    """The key our invisible watermark in the pixels carries (its check held), if any."""


class ImageCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the pixels decode, reported beside the C2PA verdict and never instead of it."""

    media_type: str
    """The type the bytes are (JPEG, PNG or WebP)."""
    decoded: bool
    """The pixels decode; when false, the image is matched to our outputs by SHA-256 only."""
    width: int | None = None
    height: int | None = None
    problem: str | None = None
    """When not decoded: the stable code (``image_corrupt``)."""
    detail: str | None = None
    """When not decoded: what does not parse."""


class VerifiedImage(msgspec.Struct, frozen=True, kw_only=True):
    report: Report
    image: ImageCheck
    sha256: str
    phash: str | None
    """None when the pixels do not decode."""
    watermark_key: str | None = None
    """The key of our watermark in the pixels, when they decode and carry one."""


class SignedImage(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes
    inspected: Inspected
    """The SHA-256 is of the signed bytes (marked pixels and manifest); the pHash is of the
    upload's pixels, before the watermark (``watermark_key`` set when they carry it)."""

    def __repr__(self) -> str:
        return f"SignedImage({len(self.data)} bytes, {self.inspected!r})"


def inspect(upload: Upload, limits: ImageLimits, *, read_watermark: bool = False) -> Inspected:
    """Hashes and size of an allowed, decodable image; raises the ``verifier`` ImageErrors.

    ``read_watermark``: also read our watermark from the pixels (from the same decode; the
    reader resizes to 256 x 256, so a JPEG draft decode reads as well as a full one).
    """
    declared = _declared_type(upload.content_type)
    _check_extension(upload)
    decoded = decode(upload.data, limits, declared, hash_only=True)
    return Inspected(
        media_type=decoded.media_type,
        width=decoded.width,
        height=decoded.height,
        sha256=sha256_hex(upload.data),
        # pHash alone: it is what lookup and the manifest read (no dHash is kept).
        phash=phash(decoded.image),
        watermark_key=watermark.read(decoded.image).key if read_watermark else None,
    )


def verify_image(upload: Upload, limits: ImageLimits, trust: TrustSettings) -> VerifiedImage:
    """The C2PA report and whether the pixels decode.

    Raises the ``verifier`` ImageErrors for what the limits refuse (bytes, type, declared type
    or name, pixel count), never for pixels that do not decode: ``decode`` raises
    image_corrupt only after the byte cap and the type checks passed, and the SDK reads the
    manifest and hashes the bytes without decoding any pixel. (A header that does not parse
    declares no pixel count to check; the SDK allocates nothing from it.)
    """
    try:
        inspected = inspect(upload, limits, read_watermark=True)
    except ImageCorrupt as exc:
        media_type = sniff_media_type(upload.data)
        if media_type is None:  # decode sniffed an allowed type before it raised
            raise
        return VerifiedImage(
            report=verify(upload.data, media_type, trust),
            image=ImageCheck(
                media_type=media_type, decoded=False, problem=exc.code, detail=exc.message
            ),
            sha256=sha256_hex(upload.data),
            phash=None,
        )
    return VerifiedImage(
        report=verify(upload.data, inspected.media_type, trust),
        image=ImageCheck(
            media_type=inspected.media_type,
            decoded=True,
            width=inspected.width,
            height=inspected.height,
        ),
        sha256=inspected.sha256,
        phash=inspected.phash,
        watermark_key=inspected.watermark_key,
    )


def sign_image(
    upload: Upload,
    limits: ImageLimits,
    facts: GenerationFacts,
    identity: C2paIdentity,
    *,
    thumbnail: bool,
    timestamp: TimestampAuthority | None = None,
    watermark_key: str | None = None,
) -> SignedImage:
    """Sign the upload, first marking its pixels with ``watermark_key`` when given.

    The order is fixed by what each step covers. The pHash recorded is of the upload's
    pixels: the ones the publish gate decided on (and recorded with its decision), so the
    output and its decision name the same picture; the mark moves the pHash of a photo by
    0 bits, of a flat or blocky image by a few (docs/watermark.md). The watermark then
    changes the pixels (re-encoded in the upload's format and quality,
    ``verifier.watermark``), and the C2PA manifest is embedded last, so that its hard
    binding (and the SHA-256 recorded) covers the final, marked bytes. When the image cannot
    carry the mark (too small, a palette or 16-bit image, or a copy that would differ by
    more than the PSNR floor), it is signed unmarked and ``watermark_key`` is None.
    """
    inspected = inspect(upload, limits)
    data = upload.data
    marked = None
    if watermark_key is not None:
        marked = watermark.embed_encoded(upload.data, limits, watermark_key)
    if marked is not None:
        data = marked
    key = watermark_key if marked is not None else None
    signed = sign(
        data,
        inspected.media_type,
        facts,
        identity,
        thumbnail=thumbnail,
        timestamp=timestamp,
        watermark_key=key,
    )
    return SignedImage(
        data=signed,
        inspected=msgspec.structs.replace(inspected, sha256=sha256_hex(signed), watermark_key=key),
    )


def _declared_type(content_type: str | None) -> str | None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return None if media_type in _GENERIC_TYPES else media_type


def _check_extension(upload: Upload) -> None:
    if not upload.filename:
        return
    extension = posixpath.splitext(upload.filename.replace("\\", "/"))[1].lower()
    named = _EXTENSIONS.get(extension)
    actual = sniff_media_type(upload.data)
    if named is not None and actual is not None and named != actual:
        raise ImageTypeMismatch(f"the file name says {named} but the bytes are {actual}")
