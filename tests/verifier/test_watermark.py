"""The watermark codec (verifier.watermark) on real photos: it reads back, survives what a
social upload does (JPEG re-encoding, resizing), stays invisible (PSNR >= 40 dB, measured),
and reads nothing from unmarked, tiny or odd images without raising.

The photos are scikit-image's bundled ones (read from its data folder: ``skimage.data``
itself may download) and the C2PA reference SDK's sample photos under tests/fixtures.
"""

from __future__ import annotations

import importlib.resources
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from verifier import ImageLimits, watermark

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "c2pa"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")
LIMITS = ImageLimits(max_bytes=30_000_000, max_pixels=40_000_000)
KEY = "0123456789"


def skimage_photo(name: str) -> Image.Image:
    folder = importlib.resources.files("skimage") / "data"
    with (folder / name).open("rb") as file, Image.open(file) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    loaded = {name: skimage_photo(name) for name in PHOTOS}
    with Image.open(FIXTURES / "CA.jpg") as image:
        loaded["CA.jpg"] = image.convert("RGB")
    return loaded


@pytest.fixture(scope="module")
def marked(photos) -> dict[str, Image.Image]:
    result = {}
    for name, image in photos.items():
        embedded = watermark.embed(image, KEY)
        assert embedded is not None, name
        result[name] = embedded.image
    return result


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def test_every_photo_reads_back_its_key_and_stays_above_40_db(photos, marked):
    for name, image in photos.items():
        found = watermark.read(marked[name])
        assert found.key == KEY, name
        assert found.confidence > 0.5, name
        assert watermark.psnr(image, marked[name]) >= watermark.MIN_PSNR, name
        assert marked[name].size == image.size
        assert marked[name].mode == image.mode


@pytest.mark.parametrize("quality", [90, 75, 50])
def test_a_jpeg_re_encode_keeps_the_key(marked, quality):
    for name, image in marked.items():
        assert watermark.read(jpeg(image, quality)).key == KEY, (name, quality)


def test_a_resize_to_half_and_a_screenshot_keep_the_key(marked):
    for name, image in marked.items():
        half = image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)
        assert watermark.read(jpeg(half, 90)).key == KEY, name
        shown = image.resize((image.width * 3 // 4, image.height * 3 // 4))
        out = io.BytesIO()
        shown.save(out, "PNG")
        assert watermark.read(Image.open(io.BytesIO(out.getvalue()))).key == KEY, name


def test_unmarked_photos_and_synthetic_images_read_no_key(photos):
    rng = np.random.default_rng(7)
    others = [
        Image.new("RGB", (512, 512), (128, 128, 128)),
        Image.new("L", (300, 200), 0),
        Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)),
    ]
    for image in [*photos.values(), *others]:
        found = watermark.read(image)
        assert found.key is None
        assert found.confidence < 0.3


def test_a_tiny_image_gets_no_mark_and_reads_no_key():
    tiny = Image.new("RGB", (watermark.MIN_SIDE - 1, 300), (10, 20, 30))

    assert watermark.embed(tiny, KEY) is None
    assert watermark.read(tiny) == watermark.WatermarkRead(key=None, confidence=0.0)
    assert watermark.read(Image.new("RGB", (1, 1))).key is None


def test_palette_and_16_bit_images_are_read_but_not_marked(photos):
    palette = photos["coffee.png"].convert("P")
    deep = Image.new("I;16", (256, 256))

    assert watermark.embed(palette, KEY) is None
    assert watermark.embed(deep, KEY) is None
    assert watermark.read(palette).key is None
    assert watermark.read(deep).key is None


def test_alpha_is_kept_and_grey_images_are_marked(photos):
    rgba = photos["chelsea.png"].convert("RGBA")
    grey = photos["camera.png"].convert("L")

    marked_rgba = watermark.embed(rgba, KEY)
    marked_grey = watermark.embed(grey, KEY)

    assert marked_rgba is not None
    assert marked_grey is not None
    assert marked_rgba.image.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    assert watermark.read(marked_rgba.image).key == KEY
    assert watermark.read(marked_grey.image).key == KEY


def test_embed_encoded_keeps_the_format_and_reads_back():
    data = (FIXTURES / "sample1.png").read_bytes()
    key = watermark.new_key()

    out = watermark.embed_encoded(data, LIMITS, key)

    assert out is not None
    assert out.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(out)) as image:
        assert watermark.read(image).key == key
    # Too small to hold the mark: nothing to encode.
    assert watermark.embed_encoded((FIXTURES / "libpng-test.png").read_bytes(), LIMITS, key) is None


def test_keys_are_random_hex_and_the_assertion_declares_one():
    keys = {watermark.new_key() for _ in range(100)}

    assert len(keys) == 100
    assert all(watermark.valid_key(key) for key in keys)
    assert watermark.soft_binding_assertion(KEY) == {
        "label": "c2pa.soft-binding",
        "data": {
            "alg": "org.consent-registry.watermark.dwtdct.1",
            "blocks": [{"scope": {}, "value": KEY}],
        },
    }
    for bad in ("", "0123", "ABCDEF0123", "0123456789a", 12345):
        assert not watermark.valid_key(bad)
        with pytest.raises(ValueError, match="10 lowercase hex"):
            watermark.embed(Image.new("RGB", (128, 128)), bad)  # type: ignore[arg-type]


def test_every_payload_bit_has_the_same_number_of_slots():
    counts = np.bincount(watermark._BIT_OF_SLOT, minlength=watermark.PAYLOAD_BITS)

    assert set(counts.tolist()) == {watermark._SLOTS // watermark.PAYLOAD_BITS}


def test_the_offline_cli_reads_the_key_and_says_when_there_is_none(tmp_path, photos, marked):
    import json

    from verifier.cli import main

    (tmp_path / "marked.jpg").write_bytes(jpeg_bytes(marked["coffee.png"], 75))
    (tmp_path / "plain.jpg").write_bytes(jpeg_bytes(photos["coffee.png"], 75))
    (tmp_path / "junk.jpg").write_bytes(b"not an image")

    out = io.StringIO()
    assert main(["watermark", str(tmp_path / "marked.jpg"), "--json"], out) == 0
    result = json.loads(out.getvalue())
    assert (result["key"], result["algorithm"]) == (KEY, watermark.ALGORITHM)
    out = io.StringIO()
    assert main(["watermark", str(tmp_path / "plain.jpg")], out) == 1
    assert "no watermark" in out.getvalue()
    assert main(["watermark", str(tmp_path / "junk.jpg")], io.StringIO()) == 64


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_large_photo_is_marked_through_its_reduced_copy_and_reads_back():
    data = (FIXTURES / "no_manifest.jpg").read_bytes()  # 2100 x 1500: passes at 1/2 size

    out = watermark.embed_encoded(data, LIMITS, KEY)

    assert out is not None
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(out)) as after:
        assert after.size == before.size == (2100, 1500)
        assert watermark.psnr(before, after) >= watermark.MIN_PSNR
        assert watermark.read(jpeg(after, 75)).key == KEY
