"""Checking a character's reference picture and request, and what is stored of the picture: the refusals name
what was wrong and what is allowed; a good picture becomes an upright RGB PNG (transparency on white) and a
small JPEG preview."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from storyloom.characters.references import (
    PREVIEW_SIDE,
    STORED_SIDE,
    check_reference_request,
    prepare_reference,
)
from storyloom.domain.pictures import MAX_PICTURE_BYTES
from storyloom.errors import InvalidInput
from tests.support.images import noisy_png, png, png_bomb

MIN_SIDE = 64


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (80, 80), color) for color in ((255, 0, 0), (0, 0, 255))]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some text, no picture", "pip.png is not an image storyloom can read; use PNG, JPEG or WebP"),
        (png(40, 200, (1, 2, 3)), "pip.png is only 40×200 pixels; a character's picture must be at least 64 pixels"),
        (png(8, 8, (1, 2, 3)), "pip.png is only 8×8 pixels"),
        (png_bomb(5000, 5000), "pip.png is 5000×5000 pixels; pictures may have at most 17 megapixels"),
        (bytes(MAX_PICTURE_BYTES + 1), "pip.png is 16.0 MB; pictures may be at most 16 MB"),
        (animated_gif(), "pip.png is animated; use a still picture"),
        (encoded(Image.new("RGB", (80, 80)), "BMP"), "pip.png is a BMP file; use PNG, JPEG, WebP or a still GIF"),
        (noisy_png(96, 96)[:300], "pip.png is a damaged image"),
    ],
    ids=["not an image", "too small", "tiny", "too many pixels", "too many bytes", "animated", "bmp", "damaged"],
)
def test_a_bad_reference_picture_is_refused_naming_what_was_wrong(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        prepare_reference(data, "pip.png", min_side=MIN_SIDE)
    assert message in str(refused.value)


def test_a_picture_is_stored_as_an_rgb_png_with_a_small_jpeg_preview() -> None:
    original = Image.open(io.BytesIO(noisy_png(96, 80, seed=3))).convert("RGB")
    stored = prepare_reference(encoded(original, "PNG"), "pip.png", min_side=MIN_SIDE)
    picture = Image.open(io.BytesIO(stored.png))
    assert (picture.format, picture.mode, picture.size, stored.width, stored.height) == ("PNG", "RGB", (96, 80), 96, 80)
    assert picture.tobytes() == original.tobytes()  # lossless: the character is exactly what was given
    preview = Image.open(io.BytesIO(stored.preview))
    assert (preview.format, preview.size) == ("JPEG", (96, 80))
    # the same picture is the same blob
    assert prepare_reference(encoded(original, "PNG"), "again.png", min_side=MIN_SIDE).png == stored.png


def test_a_large_photo_is_scaled_down_and_turned_upright() -> None:
    photo = Image.new("RGB", (2400, 1200), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was held upright: the pixels are to be turned 90° clockwise
    stored = prepare_reference(encoded(photo, "JPEG", exif=exif), "photo.jpg", min_side=MIN_SIDE)
    assert (stored.width, stored.height) == (STORED_SIDE // 2, STORED_SIDE)
    preview = Image.open(io.BytesIO(stored.preview))
    assert preview.size == (PREVIEW_SIDE // 2, PREVIEW_SIDE)


def test_a_transparent_drawing_is_put_on_white_paper() -> None:
    drawing = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    drawing.paste((0, 0, 255, 255), (25, 25, 75, 75))
    stored = prepare_reference(encoded(drawing, "PNG"), "drawing.png", min_side=MIN_SIDE)
    picture = Image.open(io.BytesIO(stored.png))
    assert picture.getpixel((5, 5)) == (255, 255, 255) and picture.getpixel((50, 50)) == (0, 0, 255)


def test_the_request_is_checked() -> None:
    request = check_reference_request("  Pip  the Dragon ", " a  small red dragon ", 0.7)
    assert (request.name, request.description, request.weight) == ("Pip the Dragon", "a small red dragon", 0.7)
    assert check_reference_request("Pip").weight is None
    for args, message in [
        (("",), "name is empty"),
        (("Pip!",), "not allowed"),
        (("Pip", "x" * 301), "longer than 300 characters"),
        (("Pip", "", 1.2), "use a number from 0 to 1"),
        (("Pip", "", -0.5), "use a number from 0 to 1"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            check_reference_request(*args)
