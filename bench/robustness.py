"""Robustness of hash-list matching: real photos under everyday edits, and unrelated photos.

Run alone with ``python -m bench robustness``; ``measure()`` returns the figures, so a test
can read them. The photos are the ones scikit-image ships inside its package, opened from
its files with Pillow (``skimage.data``'s loaders may download; these files never do).

For each photo and edit, the query is ``image_signals`` of the edited copy and the stored
side ``stored_signals`` of the original, as the gate and a hash list hold them. Hits follow
the default policy's review distances: pHash within 10 bits of the stored pHash or of any
of its crop grid, PDQ within 31 bits of the stored PDQ, each the nearest over every hash
the query carries (eight flips and rotations, eight more when a border was trimmed).
"""

from __future__ import annotations

import importlib.resources
import io
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from moderation import default_policy
from moderation.signals import (
    TRIMMED,
    ImageSignals,
    StoredSignals,
    image_signals,
    stored_signals,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from bench.context import Bench
    from bench.load import Settings

__all__ = [
    "PHOTOS",
    "TRANSFORMS",
    "FalseMatches",
    "MarkdownTable",
    "Nearest",
    "Robustness",
    "Timing",
    "TransformResult",
    "measure",
    "run",
    "tables",
]

# The default policy's distances: review is what counts as a hit here, block is reported
# alongside because it decides whether a hit blocks on its own or waits for a person.
_BANDS = default_policy().hashes
PHASH_BLOCK, PHASH_REVIEW = _BANDS.bands("phash")
PDQ_BLOCK, PDQ_REVIEW = _BANDS.bands("pdq")
# The entries of a stored image that are the image itself, not a crop of its grid.
_OWN: Final = (None, TRIMMED)
# Every photograph in scikit-image 0.26's package directory. Left out: the drawn or
# synthetic images (chessboard_*, color, logo, phantom, horse: a black silhouette) and
# motorcycle_right, the same scene as motorcycle_left from a camera beside it, which is
# neither a copy nor an unrelated photo.
PHOTOS: Final = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
TIMING_REPEATS: Final = 5
_BORDER: Final = 0.04
_WATERMARK: Final = "SAMPLE - NOT FOR REUSE"
# Of the width the watermark spans, and its outline, a fraction of its font size.
_WATERMARK_SPAN: Final = 0.85
_WATERMARK_STROKE: Final = 0.08
_HUE_STEP: Final = 21  # of Pillow's 256 hue steps: about 30 degrees
_BALANCE: Final = (1.2, 1.0, 0.8)  # red up, blue down: a warmer white balance


def _crop(side: str, fraction: float) -> Callable[[Image.Image], Image.Image]:
    """A cut as ``moderation.signals.CROP_GRID`` names them ("centre": half from each side)."""

    def cut(image: Image.Image) -> Image.Image:
        width, height = image.size
        dx, dy = round(width * fraction), round(height * fraction)
        boxes = {
            "left": (dx, 0, width, height),
            "top": (0, dy, width, height),
            "centre": (dx // 2, dy // 2, width - dx // 2, height - dy // 2),
        }
        return image.crop(boxes[side])

    return cut


def _transpose(method: Image.Transpose) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.transpose(method)


def _rotate(degrees: float) -> Callable[[Image.Image], Image.Image]:
    # Counter-clockwise, same size: the corners the turn uncovers are black.
    return lambda image: image.rotate(degrees, Image.Resampling.BICUBIC, expand=False)


def _jpeg(image: Image.Image) -> Image.Image:
    encoded = io.BytesIO()
    image.convert("L" if image.mode == "L" else "RGB").save(encoded, "JPEG", quality=50)
    encoded.seek(0)
    with Image.open(encoded) as decoded:
        decoded.load()
        return decoded.copy()


def _half(image: Image.Image) -> Image.Image:
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)))


def _hue(image: Image.Image) -> Image.Image:
    hue, saturation, value = image.convert("RGB").convert("HSV").split()
    shifted = hue.point(lambda h: (h + _HUE_STEP) % 256)
    return Image.merge("HSV", (shifted, saturation, value)).convert("RGB")


def _balance(image: Image.Image) -> Image.Image:
    channels = image.convert("RGB").split()
    scaled = [
        band.point(lambda v, gain=gain: min(255, round(v * gain)))
        for band, gain in zip(channels, _BALANCE, strict=True)
    ]
    return Image.merge("RGB", scaled)


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L")


def _framed(image: Image.Image) -> Image.Image:
    width = round(max(image.size) * _BORDER)
    return ImageOps.expand(image.convert("RGB"), width, (255, 255, 255))


def _watermarked(image: Image.Image) -> Image.Image:
    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    # Sized so the line spans most of the width, whatever the photo's size.
    probe = 100
    span = draw.textlength(_WATERMARK, font=ImageFont.load_default(size=probe))
    size = max(8, round(probe * _WATERMARK_SPAN * marked.width / span))
    draw.text(
        (marked.width / 2, marked.height / 2),
        _WATERMARK,
        fill=(255, 255, 255),
        font=ImageFont.load_default(size=size),
        anchor="mm",
        stroke_width=max(1, round(size * _WATERMARK_STROKE)),
        stroke_fill=(0, 0, 0),
    )
    return marked


# Name to edit, in the order the table lists them. "none" is the photo itself: the floor
# every other row is read against.
TRANSFORMS: Final[dict[str, Callable[[Image.Image], Image.Image]]] = {
    "none": lambda image: image,
    "JPEG quality 50": _jpeg,
    "resize 50 %": _half,
    "crop 10 % centred": _crop("centre", 0.10),
    "crop 20 % centred": _crop("centre", 0.20),
    "crop 10 % left": _crop("left", 0.10),
    "crop 20 % left": _crop("left", 0.20),
    "crop 10 % top": _crop("top", 0.10),
    "crop 20 % top": _crop("top", 0.20),
    "crop 17 % left (between grid steps)": _crop("left", 0.17),
    "crop 35 % left (beyond the grid)": _crop("left", 0.35),
    "rotate 90": _transpose(Image.Transpose.ROTATE_90),
    "rotate 180": _transpose(Image.Transpose.ROTATE_180),
    "rotate 270": _transpose(Image.Transpose.ROTATE_270),
    "flip vertical": _transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "flip horizontal": _transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "transpose": _transpose(Image.Transpose.TRANSPOSE),
    "transverse": _transpose(Image.Transpose.TRANSVERSE),
    "rotate +5 degrees": _rotate(5),
    "rotate -5 degrees": _rotate(-5),
    "hue shift 30 degrees": _hue,
    "colour balance (R x1.2, B x0.8)": _balance,
    "greyscale": _grey,
    "4 % white border": _framed,
    "text overlay": _watermarked,
}


@dataclass(frozen=True)
class TransformResult:
    """One edit over every photo: how many each signal found, and the nearest distances.

    Distances are per photo, in ``Robustness.photos`` order: pHash's nearest over the stored
    pHash and its crop grid, PDQ's to the stored PDQ.
    """

    transform: str
    photos: int
    phash_primary_hits: int
    phash_hits: int
    pdq_hits: int
    either_hits: int
    phash_distances: tuple[int, ...]
    pdq_distances: tuple[int, ...]
    missed: tuple[str, ...]


@dataclass(frozen=True)
class Nearest:
    """The closest an unrelated query came to a stored image: which photo, edited how
    (``"none"``: as it is), against which stored photo."""

    distance: int
    query: str
    edit: str
    stored: str


@dataclass(frozen=True)
class FalseMatches:
    """Queries against every other photo's stored signals, at the default policy's bands."""

    scope: str
    pairs: int
    phash_review: int
    phash_block: int
    pdq_review: int
    pdq_block: int
    either_review: int
    nearest_phash_primary: Nearest
    nearest_phash_grid: Nearest
    nearest_pdq: Nearest


@dataclass(frozen=True)
class Timing:
    photo: str
    width: int
    height: int
    pdq_quality: int
    image_signals_ms: float
    stored_signals_ms: float


@dataclass(frozen=True)
class Robustness:
    photos: tuple[str, ...]
    transforms: tuple[TransformResult, ...]
    false_matches: tuple[FalseMatches, ...]
    timings: tuple[Timing, ...]
    timing_repeats: int
    seconds: float


@dataclass(frozen=True)
class _Stored:
    """A stored image's hashes as integers: pHash (with its trimmed copy's), its crop grid,
    PDQ (with its trimmed copy's)."""

    phash: NDArray[np.uint64]
    crops: NDArray[np.uint64]
    pdq: tuple[int, ...]


@dataclass(frozen=True)
class _Query:
    phash: NDArray[np.uint64]
    pdq: tuple[int, ...]


@dataclass(frozen=True)
class _Distances:
    phash_primary: int
    phash_grid: int
    pdq: int

    @property
    def phash(self) -> int:
        return min(self.phash_primary, self.phash_grid)

    @property
    def hit(self) -> bool:
        return self.phash <= PHASH_REVIEW or self.pdq <= PDQ_REVIEW


def _stored(signals: StoredSignals) -> _Stored:
    # The entries a list stores (the image's own hash, without its border when it has one,
    # and on pHash its crop grid): the grid is counted apart, to show what it adds.
    phashes = signals.entries("phash")
    return _Stored(
        phash=np.array([int(h, 16) for h, crop in phashes if crop in _OWN], dtype=np.uint64),
        crops=np.array([int(h, 16) for h, crop in phashes if crop not in _OWN], dtype=np.uint64),
        pdq=tuple(int(h, 16) for h, _ in signals.entries("pdq")),
    )


def _query(signals: ImageSignals) -> _Query:
    return _Query(
        phash=np.array([int(h, 16) for h in signals.phash.hashes], dtype=np.uint64),
        pdq=tuple(int(h, 16) for h in signals.pdq.hashes),
    )


def _nearest(hashes: NDArray[np.uint64], stored: NDArray[np.uint64]) -> int:
    return int(np.bitwise_count(hashes[:, None] ^ stored[None, :]).min())


def _distances(query: _Query, stored: _Stored) -> _Distances:
    return _Distances(
        phash_primary=_nearest(query.phash, stored.phash),
        phash_grid=_nearest(query.phash, stored.crops),
        pdq=min((q ^ p).bit_count() for q in query.pdq for p in stored.pdq),
    )


def _load(names: Sequence[str]) -> dict[str, Image.Image]:
    folder = importlib.resources.files("skimage") / "data"
    loaded = {}
    for name in names:
        with (folder / name).open("rb") as file, Image.open(file) as image:
            image.load()
            loaded[name] = image.copy()
    return loaded


def _median_ms(fn: Callable[[Image.Image], object], image: Image.Image, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(image)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


@dataclass
class _FalseTally:
    """Running counts and nearest pairs for one scope of unrelated queries."""

    scope: str
    pairs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    nearest: dict[str, Nearest] = field(default_factory=dict)

    def add(self, query: str, edit: str, stored: str, found: _Distances) -> None:
        self.pairs += 1
        bands = {
            "phash_review": found.phash <= PHASH_REVIEW,
            "phash_block": found.phash <= PHASH_BLOCK,
            "pdq_review": found.pdq <= PDQ_REVIEW,
            "pdq_block": found.pdq <= PDQ_BLOCK,
            "either_review": found.hit,
        }
        for band, inside in bands.items():
            self.counts[band] = self.counts.get(band, 0) + inside
        for signal, distance in (
            ("phash_primary", found.phash_primary),
            ("phash_grid", found.phash_grid),
            ("pdq", found.pdq),
        ):
            best = self.nearest.get(signal)
            if best is None or distance < best.distance:
                self.nearest[signal] = Nearest(distance, query, edit, stored)

    def result(self) -> FalseMatches:
        return FalseMatches(
            scope=self.scope,
            pairs=self.pairs,
            phash_review=self.counts["phash_review"],
            phash_block=self.counts["phash_block"],
            pdq_review=self.counts["pdq_review"],
            pdq_block=self.counts["pdq_block"],
            either_review=self.counts["either_review"],
            nearest_phash_primary=self.nearest["phash_primary"],
            nearest_phash_grid=self.nearest["phash_grid"],
            nearest_pdq=self.nearest["pdq"],
        )


def measure(photos: Sequence[str] = PHOTOS, *, timing_repeats: int = TIMING_REPEATS) -> Robustness:
    """Every photo under every edit against its original, then against every other photo."""
    started = time.monotonic()
    images = _load(photos)
    kept = {name: stored_signals(image) for name, image in images.items()}
    stored = {name: _stored(signals) for name, signals in kept.items()}
    as_they_are = _FalseTally("each photo as it is, against every other photo")
    edited = _FalseTally("each edited copy, against every other photo")
    results = []
    for transform, edit in TRANSFORMS.items():
        found: dict[str, _Distances] = {}
        for name, image in images.items():
            query = _query(image_signals(edit(image)))
            found[name] = _distances(query, stored[name])
            tally = as_they_are if transform == "none" else edited
            for other in photos:
                if other != name:
                    tally.add(name, transform, other, _distances(query, stored[other]))
        results.append(
            TransformResult(
                transform=transform,
                photos=len(photos),
                phash_primary_hits=sum(d.phash_primary <= PHASH_REVIEW for d in found.values()),
                phash_hits=sum(d.phash <= PHASH_REVIEW for d in found.values()),
                pdq_hits=sum(d.pdq <= PDQ_REVIEW for d in found.values()),
                either_hits=sum(d.hit for d in found.values()),
                phash_distances=tuple(found[name].phash for name in photos),
                pdq_distances=tuple(found[name].pdq for name in photos),
                missed=tuple(name for name in photos if not found[name].hit),
            )
        )
    timings = tuple(
        Timing(
            photo=name,
            width=image.width,
            height=image.height,
            pdq_quality=kept[name].pdq_quality,
            image_signals_ms=_median_ms(image_signals, image, timing_repeats),
            stored_signals_ms=_median_ms(stored_signals, image, timing_repeats),
        )
        for name, image in images.items()
    )
    return Robustness(
        photos=tuple(photos),
        transforms=tuple(results),
        false_matches=(as_they_are.result(), edited.result()),
        timings=timings,
        timing_repeats=timing_repeats,
        seconds=time.monotonic() - started,
    )


@dataclass
class MarkdownTable:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()
    # Which columns hold text (left-aligned); the others are figures.
    text_columns: frozenset[int] = frozenset({0})

    def show(self, _: Settings) -> None:
        print(f"\n## {self.title}\n")
        print("| " + " | ".join(self.header) + " |")
        rule = ("---" if i in self.text_columns else "---:" for i in range(len(self.header)))
        print("|" + "|".join(rule) + "|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        for note in self.notes:
            print(f"\n{note}")


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f} %)"


def _spread(distances: Sequence[int]) -> str:
    return f"{statistics.median(distances):g} / {max(distances)}"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _pair(nearest: Nearest) -> str:
    edit = "" if nearest.edit == "none" else f", {nearest.edit}"
    return f"{nearest.distance} ({_short(nearest.query)}{edit} vs {_short(nearest.stored)})"


def tables(result: Robustness) -> list[MarkdownTable]:
    photos = len(result.photos)
    hits = MarkdownTable(
        f"Hash matching under edits ({photos} scikit-image photos)",
        (
            "edit",
            f"pHash <= {PHASH_REVIEW}, own hash only",
            f"pHash <= {PHASH_REVIEW}, with crop grid",
            f"PDQ <= {PDQ_REVIEW}",
            "either",
            "pHash nearest median / max",
            "PDQ nearest median / max",
            "missed by both",
        ),
        [
            (
                r.transform,
                _rate(r.phash_primary_hits, r.photos),
                _rate(r.phash_hits, r.photos),
                _rate(r.pdq_hits, r.photos),
                _rate(r.either_hits, r.photos),
                _spread(r.phash_distances),
                _spread(r.pdq_distances),
                ", ".join(_short(m) for m in r.missed) or "-",
            )
            for r in result.transforms
        ],
        (
            (
                "Query: image_signals of the edited copy; stored: stored_signals of the "
                f"original. Photos: {', '.join(_short(p) for p in result.photos)}."
            ),
        ),
        text_columns=frozenset({0, 7}),
    )
    false = MarkdownTable(
        "False matches between unrelated photos",
        (
            "queries",
            "pairs",
            f"pHash <= {PHASH_REVIEW} (block <= {PHASH_BLOCK})",
            f"PDQ <= {PDQ_REVIEW} (block <= {PDQ_BLOCK})",
            "either",
            "nearest pHash vs own hash",
            "nearest pHash vs crop grid",
            "nearest PDQ",
        ),
        [
            (
                f.scope,
                f"{f.pairs:,}",
                f"{f.phash_review} ({f.phash_block})",
                f"{f.pdq_review} ({f.pdq_block})",
                str(f.either_review),
                _pair(f.nearest_phash_primary),
                _pair(f.nearest_phash_grid),
                _pair(f.nearest_pdq),
            )
            for f in result.false_matches
        ],
    )
    timing = MarkdownTable(
        "Hashing time per image (median of "
        f"{result.timing_repeats} calls, one at a time; section total {result.seconds:.0f} s)",
        ("photo", "size", "PDQ quality", "image_signals", "stored_signals"),
        [
            *(
                (
                    _short(t.photo),
                    f"{t.width} x {t.height}",
                    str(t.pdq_quality),
                    f"{t.image_signals_ms:.1f} ms",
                    f"{t.stored_signals_ms:.1f} ms",
                )
                for t in result.timings
            ),
            (
                "median of the photos",
                "",
                "",
                f"{statistics.median(t.image_signals_ms for t in result.timings):.1f} ms",
                f"{statistics.median(t.stored_signals_ms for t in result.timings):.1f} ms",
            ),
        ],
    )
    return [hits, false, timing]


def run(_: Bench) -> list[MarkdownTable]:
    return tables(measure())
