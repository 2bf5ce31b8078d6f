"""What a picture given to a command must be: checked from its bytes before anything is queued."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from storyloom.domain.pictures import (
    MAX_PICTURE_BYTES,
    check_declared_size,
    check_picture,
    open_picture,
    start_strength,
)
from storyloom.errors import InvalidInput
from tests.support.images import noisy_png, png, png_bomb


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_a_good_picture_gives_its_format_and_size() -> None:
    info = check_picture(noisy_png(80, 60), "cat.png")
    assert (info.format, info.width, info.height, info.mime) == ("PNG", 80, 60, "image/png")
    jpeg = encoded(Image.new("RGB", (40, 30), (1, 2, 3)), "JPEG")
    assert check_picture(jpeg, "cat.jpg").mime == "image/jpeg"
    opened = open_picture(png(32, 48, (200, 10, 10)))
    assert (opened.mode, opened.size, opened.getpixel((0, 0))) == ("RGB", (32, 48), (200, 10, 10))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"just some text", "not an image"),
        (png(64, 64, (0, 0, 0))[:60], "damaged"),
        (png_bomb(20000, 20000), "at most 17 megapixels"),
        (png(8, 64, (0, 0, 0)), "at least 16 pixels"),
        (encoded(Image.new("RGB", (32, 32)), "BMP"), "BMP file"),
    ],
)
def test_bad_pictures_are_refused_with_what_is_allowed(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as refused:
        check_picture(data, "upload.png")
    assert "upload.png" in str(refused.value)


def test_an_animated_picture_is_refused_and_a_still_gif_is_fine() -> None:
    frames = [Image.new("RGB", (32, 32), color) for color in ((255, 0, 0), (0, 255, 0))]
    animated = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(InvalidInput, match="animated"):
        check_picture(animated, "dance.gif")
    assert check_picture(encoded(frames[0], "GIF"), "still.gif").format == "GIF"


def test_a_start_picture_keeps_its_weight_and_leaves_at_least_one_step() -> None:
    assert start_strength(0.6, 30) == pytest.approx(0.4)
    assert start_strength(1.0, 30) == 0.05  # always redrawn a little
    with pytest.raises(InvalidInput, match="only 0.05 of 10 steps would run"):
        start_strength(1.0, 10)


def test_too_many_bytes_are_refused_before_reading() -> None:
    with pytest.raises(InvalidInput, match="at most 16 MB"):
        check_declared_size(MAX_PICTURE_BYTES + 1, "huge.png")
    check_declared_size(MAX_PICTURE_BYTES, "fine.png")
