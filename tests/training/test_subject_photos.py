"""The trainer opens a character's photos through the same pixel check as the bot: a bomb placed in the folder
by hand is an error naming the file, not half a gigabyte of memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyloom.errors import InvalidInput
from storyloom.training.subject_data import load_instance_images, square_pixels
from tests.support.images import noisy_png, png_bomb


def test_the_trainer_refuses_a_decompression_bomb_in_the_photo_folder(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"cat_{index}.png").write_bytes(noisy_png(80, 80, seed=index))
    bomb = tmp_path / "zz_bomb.png"
    bomb.write_bytes(png_bomb(13000, 13000))
    with pytest.raises(InvalidInput, match="zz_bomb.png is 13000×13000 pixels"):
        load_instance_images(
            tmp_path, identifier="bhna", class_name="cat", instance_prompt="a photo of {identifier} {class_name}",
            min_images=3, max_images=10,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="zz_bomb.png is 13000×13000 pixels"):
        square_pixels(bomb, 64)
    assert tuple(square_pixels(tmp_path / "cat_0.png", 64).shape) == (3, 64, 64)
