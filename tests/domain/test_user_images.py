"""Opening a user's picture: the pixel limit is checked from the header, before anything is decoded."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from storyloom.domain.user_images import open_user_image
from storyloom.errors import InvalidInput
from tests.support.images import noisy_png, png_bomb


def test_a_small_png_declaring_13000_by_13000_is_refused_quickly_with_a_clear_message() -> None:
    bomb = png_bomb(13000, 13000)
    assert len(bomb) < 1_000_000  # half a gigabyte of pixels in under a megabyte
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidInput) as refused:
            open_user_image(bomb, label="big.png", max_pixels=50_000_000)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == (
        "big.png is 13000×13000 pixels; pictures may have at most 50 megapixels (scale it down and send it again)"
    )
    assert elapsed < 0.5 and peak < 10_000_000  # decoding it would take seconds and 500 MB


def test_the_limit_is_the_callers_not_pillows(tmp_path: Path) -> None:
    """Pillow only warns between its limit and twice it; here any size over the explicit limit is an error."""
    path = tmp_path / "wide.png"
    path.write_bytes(noisy_png(40, 30))
    with pytest.raises(InvalidInput, match=r"wide.png is 40×30 pixels; pictures may have at most 1,199 pixels"):
        open_user_image(path, label="wide.png", max_pixels=1199)
    with open_user_image(path, label="wide.png", max_pixels=1200) as image:
        assert image.size == (40, 30) and image.getpixel((0, 0)) is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some text", "notes is not an image storyloom can read; use PNG, JPEG or WebP"),
        (noisy_png(40, 30)[:200], "notes is a damaged image; use PNG, JPEG or WebP"),
    ],
    ids=["text", "truncated"],
)
def test_what_is_not_a_readable_picture_is_one_clear_line(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        open_user_image(data, label="notes")
    assert str(refused.value) == message
