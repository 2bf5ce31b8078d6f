"""Training photos: sizes known before downloading, and pixels checked before decoding, in the bot and the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyloom.characters.photos import MAX_PHOTO_BYTES, check_image, check_photo_sizes
from storyloom.characters.uploads import Upload, save_training_photos
from storyloom.errors import InvalidInput
from tests.support.images import noisy_png, png_bomb


def test_a_photo_declaring_13000_by_13000_pixels_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(InvalidInput, match=r"^big.png is 13000×13000 pixels; pictures may have at most 50 megapixels"):
        check_image(png_bomb(13000, 13000), "big.png")


def test_sizes_are_checked_one_by_one_and_together() -> None:
    check_photo_sizes([("a.jpg", MAX_PHOTO_BYTES)] * 5)
    with pytest.raises(InvalidInput, match="huge.jpg is 33 MB; each photo may be at most 32 MB"):
        check_photo_sizes([("a.jpg", 1000), ("huge.jpg", MAX_PHOTO_BYTES + 1024 * 1024)])
    with pytest.raises(InvalidInput, match="the photos add up to 288 MB; .* at most 256 MB"):
        check_photo_sizes([("a.jpg", MAX_PHOTO_BYTES)] * 9)


def test_saving_refuses_a_bomb_among_good_photos_and_writes_nothing(tmp_path: Path) -> None:
    uploads = [Upload(f"cat_{i}.png", noisy_png(80, 80, seed=i)) for i in range(4)]
    uploads.append(Upload("bomb.png", png_bomb(13000, 13000)))
    with pytest.raises(InvalidInput, match="bomb.png is 13000×13000 pixels"):
        save_training_photos(tmp_path, uploads, min_images=3, max_images=10)
    assert not (tmp_path / "uploads").exists()
