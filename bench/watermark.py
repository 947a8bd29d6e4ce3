"""The watermark soft binding against the pHash lookup, on the same real photos and edits.

Run alone with ``python -m bench watermark``; ``measure()`` returns the figures, so a test
can read them. Each photo goes through what signing does to it: encoded as the generator's
JPEG (quality 92; the C2PA fixture photos as they are), marked by
``verifier.watermark.embed_encoded`` (the JPEG keeps its quantisation tables), and its pHash
recorded from the unmarked pixels, as ``registry.provenance.images.sign_image`` records it.
Each edit is then applied to the marked copy (which has no manifest: Pillow drops it), and
the copy is decoded as the lookup decodes it (``verifier.imaging.decode``, hash_only). Found
by watermark: the read key is the photo's. Found by pHash: within the default lookup
distance (``REGISTRY_PROVENANCE_LOOKUP_MAX_DISTANCE``, 8 bits of 64) of the recorded pHash.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
import numpy as np
from PIL import Image

from bench.robustness import PHOTOS as ROBUSTNESS_PHOTOS
from bench.robustness import MarkdownTable
from registry.core.settings import Settings as ServiceSettings
from verifier import ImageLimits, decode, hamming, phash, watermark

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.context import Bench

__all__ = ["EDITS", "PHOTOS", "Edit", "Photo", "WatermarkBench", "measure", "run", "tables"]

_ROOT = Path(__file__).resolve().parent.parent
FIXTURES: Final = _ROOT / "tests" / "fixtures" / "c2pa"
# scikit-image's photographs (the robustness section's) and the C2PA reference SDK's sample
# photos under tests/fixtures (CA.jpg, XCA.jpg and E-sig-CA.jpg are the same photo as
# boxhash.jpg; C_with_CAWG_data.jpg the same as C.jpg).
SKIMAGE_PHOTOS: Final = ROBUSTNESS_PHOTOS
FIXTURE_PHOTOS: Final = ("C.jpg", "boxhash.jpg", "no_manifest.jpg", "sample1.png")
PHOTOS: Final = SKIMAGE_PHOTOS + FIXTURE_PHOTOS
LIMITS: Final = ImageLimits(max_bytes=50_000_000, max_pixels=40_000_000)
MAX_DISTANCE: Final[int] = next(
    f.default
    for f in msgspec.structs.fields(ServiceSettings)
    if f.name == "provenance_lookup_max_distance"
)
# What a screenshot is here: the copy shown on a screen at most 800 pixels wide (or at 3/4
# of its size when smaller), captured as a PNG at that size.
_DISPLAY: Final = 800
_RANDOM_READS: Final = 500


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _jpeg(quality: int) -> Callable[[Image.Image], bytes]:
    return lambda image: _encoded(image, "JPEG", quality=quality)


def _half(image: Image.Image) -> bytes:
    small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)
    return _encoded(small, "JPEG", quality=90)


def _crop(image: Image.Image) -> bytes:
    width, height = image.size
    dx, dy = round(width * 0.05), round(height * 0.05)
    return _encoded(image.crop((dx, dy, width - dx, height - dy)), "JPEG", quality=90)


def _screenshot(image: Image.Image) -> bytes:
    scale = _DISPLAY / image.width if image.width > _DISPLAY else 0.75
    size = (round(image.width * scale), round(image.height * scale))
    return _encoded(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), "PNG")


EDITS: Final[dict[str, Callable[[Image.Image], bytes]]] = {
    "stripped (same pixels, PNG)": lambda image: _encoded(image, "PNG"),
    "JPEG q90": _jpeg(90),
    "JPEG q75": _jpeg(75),
    "JPEG q50": _jpeg(50),
    "resize 50 % (then JPEG q90)": _half,
    "crop 10 % centred (5 % a side, JPEG q90)": _crop,
    "screenshot (shown at <= 800 px, PNG)": _screenshot,
}


@dataclass(frozen=True)
class Photo:
    name: str
    width: int
    height: int
    marked: bool
    psnr: float
    confidence: float
    phash_shift: int
    """Bits the mark moved the pHash by (marked pixels against the recorded, unmarked)."""
    embed_ms: float
    read_ms: float


@dataclass(frozen=True)
class Edit:
    edit: str
    photos: int
    watermark: int
    phash: int
    either: int
    missed_by_watermark: tuple[str, ...]
    missed_by_phash: tuple[str, ...]


@dataclass(frozen=True)
class WatermarkBench:
    photos: tuple[Photo, ...]
    edits: tuple[Edit, ...]
    unmarked_reads: int
    unmarked_keys: int
    random_reads: int
    random_keys: int
    seconds: float


def _upload(name: str) -> bytes:
    if name in FIXTURE_PHOTOS:
        return (FIXTURES / name).read_bytes()
    folder = importlib.resources.files("skimage") / "data"
    with (folder / name).open("rb") as file, Image.open(file) as image:
        grey = image.mode in {"L", "I;16"}
        return _encoded(image.convert("L" if grey else "RGB"), "JPEG", quality=92)


def _looked_up(data: bytes) -> tuple[str, str | None]:
    """What the lookup reads from a copy: its pHash and its watermark key."""
    decoded = decode(data, LIMITS, hash_only=True)
    return phash(decoded.image), watermark.read(decoded.image).key


def measure() -> WatermarkBench:
    started = time.monotonic()
    photos: list[Photo] = []
    found: dict[str, list[tuple[str, bool, bool]]] = {edit: [] for edit in EDITS}
    unmarked_reads = unmarked_keys = 0
    for name in PHOTOS:
        upload = _upload(name)
        original = decode(upload, LIMITS).image
        recorded = phash(decode(upload, LIMITS, hash_only=True).image)
        # A key per photo, fixed so that runs compare (signing draws a random one).
        key = hashlib.sha256(name.encode()).hexdigest()[: watermark.KEY_HEX_CHARS]
        began = time.perf_counter()
        marked_bytes = watermark.embed_encoded(upload, LIMITS, key)
        embed_ms = (time.perf_counter() - began) * 1000
        if marked_bytes is None:
            photos.append(
                Photo(
                    name=name,
                    width=original.width,
                    height=original.height,
                    marked=False,
                    psnr=0.0,
                    confidence=0.0,
                    phash_shift=0,
                    embed_ms=embed_ms,
                    read_ms=0.0,
                )
            )
            continue
        marked = decode(marked_bytes, LIMITS).image
        began = time.perf_counter()
        reading = watermark.read(decode(marked_bytes, LIMITS, hash_only=True).image)
        read_ms = (time.perf_counter() - began) * 1000
        photos.append(
            Photo(
                name=name,
                width=original.width,
                height=original.height,
                marked=True,
                psnr=watermark.psnr(original, marked),
                confidence=reading.confidence,
                phash_shift=hamming(recorded, phash(marked)),
                embed_ms=embed_ms,
                read_ms=read_ms,
            )
        )
        for edit, apply in EDITS.items():
            copy_phash, copy_key = _looked_up(apply(marked))
            by_phash = hamming(copy_phash, recorded) <= MAX_DISTANCE
            found[edit].append((name, copy_key == key, by_phash))
            # The same edit of the unmarked photo: what an image that was never signed reads.
            _, unmarked_key = _looked_up(apply(original))
            unmarked_reads += 1
            unmarked_keys += unmarked_key is not None
    rng = np.random.default_rng(17)
    random_keys = sum(
        watermark.read(Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8))).key
        is not None
        for _ in range(_RANDOM_READS)
    )
    edits = tuple(
        Edit(
            edit=edit,
            photos=len(rows),
            watermark=sum(w for _, w, _ in rows),
            phash=sum(p for _, _, p in rows),
            either=sum(w or p for _, w, p in rows),
            missed_by_watermark=tuple(n for n, w, _ in rows if not w),
            missed_by_phash=tuple(n for n, _, p in rows if not p),
        )
        for edit, rows in found.items()
    )
    return WatermarkBench(
        photos=tuple(photos),
        edits=edits,
        unmarked_reads=unmarked_reads,
        unmarked_keys=unmarked_keys,
        random_reads=_RANDOM_READS,
        random_keys=random_keys,
        seconds=time.monotonic() - started,
    )


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f} %)" if total else "-"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[0]


def tables(result: WatermarkBench) -> list[MarkdownTable]:
    marked = [p for p in result.photos if p.marked]
    survival = MarkdownTable(
        f"Watermark against pHash lookup on stripped copies ({len(marked)} photos)",
        (
            "edit of the signed output",
            "found by watermark",
            f"found by pHash (<= {MAX_DISTANCE})",
            "either",
            "missed by the watermark",
            "missed by pHash",
        ),
        [
            (
                e.edit,
                _rate(e.watermark, e.photos),
                _rate(e.phash, e.photos),
                _rate(e.either, e.photos),
                ", ".join(_short(n) for n in e.missed_by_watermark) or "-",
                ", ".join(_short(n) for n in e.missed_by_phash) or "-",
            )
            for e in result.edits
        ],
        (
            (
                f"False keys: {result.unmarked_keys} of {result.unmarked_reads} reads of the "
                f"same edits of the unmarked photos, {result.random_keys} of "
                f"{result.random_reads} reads of random noise images passed the 24-bit check."
            ),
        ),
        text_columns=frozenset({0, 4, 5}),
    )
    per_photo = MarkdownTable(
        "Invisibility and cost per photo (PSNR over RGB, marked against the original; "
        f"section total {result.seconds:.0f} s)",
        ("photo", "size", "PSNR", "read confidence", "pHash moved", "embed", "read"),
        [
            *(
                (
                    _short(p.name),
                    f"{p.width} x {p.height}",
                    f"{p.psnr:.1f} dB" if p.marked else "not marked",
                    f"{p.confidence:.2f}" if p.marked else "-",
                    f"{p.phash_shift} bits" if p.marked else "-",
                    f"{p.embed_ms:.0f} ms",
                    f"{p.read_ms:.0f} ms" if p.marked else "-",
                )
                for p in result.photos
            ),
            (
                "min / median",
                "",
                (
                    f"{min(p.psnr for p in marked):.1f} / "
                    f"{statistics.median(p.psnr for p in marked):.1f} dB"
                ),
                (
                    f"{min(p.confidence for p in marked):.2f} / "
                    f"{statistics.median(p.confidence for p in marked):.2f}"
                ),
                f"max {max(p.phash_shift for p in marked)} bits",
                f"{statistics.median(p.embed_ms for p in marked):.0f} ms",
                f"{statistics.median(p.read_ms for p in marked):.0f} ms",
            ),
        ],
    )
    return [survival, per_photo]


def run(_: Bench) -> list[MarkdownTable]:
    return tables(measure())
