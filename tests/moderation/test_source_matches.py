"""The output's distance to the declared source photos whose pHash the registry holds."""

from __future__ import annotations

from PIL import Image

from moderation import ConsentCheck, ImageFacts, SourceEvidence, source_matches
from tests.moderation.support import image_hashes, make_image


def _facts(image: Image.Image) -> ImageFacts:
    phash, variants = image_hashes(image)
    return ImageFacts(decoded=True, phash=phash, variants=variants)


def _source(asset_id: str, phash: str | None) -> SourceEvidence:
    check = ConsentCheck(valid=True, asset_phash=phash) if phash is not None else None
    return SourceEvidence(type="photo", asset_id=asset_id, token_present=True, check=check)


def test_a_flipped_copy_of_the_source_is_close_and_an_unrelated_image_is_not():
    photo = make_image(7)
    photo_hash, _ = image_hashes(photo)
    other_hash, _ = image_hashes(make_image(8))
    output = _facts(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    found = source_matches(
        output, [_source("ast_photo", photo_hash), _source("ast_other", other_hash)]
    )
    by_asset = {m.asset_id: m.distance for m in found}
    assert by_asset["ast_photo"] <= 6
    assert by_asset["ast_other"] >= 16
    assert {m.type for m in found} == {"photo"}


def test_sources_without_a_known_phash_and_unhashed_outputs_give_nothing():
    photo_hash, _ = image_hashes(make_image(7))
    assert source_matches(_facts(make_image(7)), [_source("ast_hash_only", None)]) == ()
    assert source_matches(ImageFacts(decoded=False), [_source("ast", photo_hash)]) == ()
