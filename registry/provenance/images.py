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


class SignedImage(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes
    inspected: Inspected
    """Of the signed bytes: the SHA-256 changes with the manifest, the pixels do not."""

    def __repr__(self) -> str:
        return f"SignedImage({len(self.data)} bytes, {self.inspected!r})"


def inspect(upload: Upload, limits: ImageLimits) -> Inspected:
    """Hashes and size of an allowed, decodable image; raises the ``verifier`` ImageErrors."""
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
        inspected = inspect(upload, limits)
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
    )


def sign_image(
    upload: Upload,
    limits: ImageLimits,
    facts: GenerationFacts,
    identity: C2paIdentity,
    *,
    thumbnail: bool,
    timestamp: TimestampAuthority | None = None,
) -> SignedImage:
    inspected = inspect(upload, limits)
    signed = sign(
        upload.data,
        inspected.media_type,
        facts,
        identity,
        thumbnail=thumbnail,
        timestamp=timestamp,
    )
    return SignedImage(
        data=signed, inspected=msgspec.structs.replace(inspected, sha256=sha256_hex(signed))
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
