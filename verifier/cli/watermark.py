"""``watermark IMAGE``: read our invisible watermark (the soft binding) from an image, offline.

A copy whose C2PA manifest was stripped still carries, in its pixels, the 40-bit lookup key
of the output it was signed as (``verifier.watermark``). This command reads it with nothing
but this package: the image is decoded within the verifier's caps (bytes, pixels, JPEG, PNG
or WebP), and the key printed when its 24-bit check holds. The registry's
``POST /v1/provenance/lookup`` (or ``/verify``) names the output for the same image.

Exit status: 0, a key was read; 1, the image carries no watermark of ours (too small, never
marked, or cropped: a crop moves the mark's grid); 64, the file cannot be read or decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from verifier import watermark
from verifier.cli.common import EXIT_INVALID, EXIT_VERIFIED, MAX_IMAGE_BYTES, UsageError, safe
from verifier.cli.sources import read_file
from verifier.errors import ImageError
from verifier.imaging import ImageLimits, decode

if TYPE_CHECKING:
    import argparse

__all__ = ["add_watermark_parser", "watermark_command"]

# A copy this large has been through no social upload; the cap keeps one decode bounded.
_MAX_PIXELS = 100_000_000


class WatermarkOutcome(msgspec.Struct, frozen=True, kw_only=True):
    image: str
    algorithm: str
    key: str | None
    """The lookup key the pixels carry; None when they carry none of ours."""
    confidence: float
    """How clear the votes were, 0 to 1 (marked copies read 0.5 and more, unmarked images
    about 0.1)."""


def add_watermark_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "watermark", help="read the registry's invisible watermark (soft binding) from an image"
    )
    parser.add_argument("image", help="the image file (JPEG, PNG or WebP)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def watermark_command(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.image)
    data = read_file(path, MAX_IMAGE_BYTES)
    try:
        decoded = decode(
            data, ImageLimits(max_bytes=MAX_IMAGE_BYTES, max_pixels=_MAX_PIXELS), hash_only=True
        )
    except ImageError as exc:
        raise UsageError(f"{path}: {exc.message}") from None
    found = watermark.read(decoded.image)
    outcome = WatermarkOutcome(
        image=str(path), algorithm=watermark.ALGORITHM, key=found.key, confidence=found.confidence
    )
    if args.json:
        out.write(msgspec.json.encode(outcome).decode("utf-8") + "\n")
    elif found.key is not None:
        out.write(f"watermark: key {found.key} ({watermark.ALGORITHM})\n")
        out.write(f"confidence: {found.confidence:.2f}\n")
    else:
        out.write(f"no watermark of ours in {safe(str(path))}\n")
    return EXIT_VERIFIED if found.key is not None else EXIT_INVALID
