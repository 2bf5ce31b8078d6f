"""Aspect ratios to UNet-friendly sizes."""

from __future__ import annotations

import pytest

from storyloom.domain.sizes import parse_aspect_ratio, size_for_aspect_ratio
from storyloom.errors import InvalidInput


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("1:1", (512, 512)),
        ("16:9", (680, 384)),
        ("9:16", (384, 680)),
        ("2:3", (416, 624)),
        ("3:2", (624, 416)),
        ("4:1", (1024, 256)),
    ],
)
def test_sizes_near_the_base_area(ratio: str, expected: tuple[int, int]) -> None:
    width, height = size_for_aspect_ratio(ratio, 512, 512)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width * height - 512 * 512) / (512 * 512) < 0.05
    w, h = (float(x) for x in ratio.split(":"))
    assert abs(width / height - w / h) / (w / h) < 0.03


def test_tiny_base_size() -> None:
    assert size_for_aspect_ratio("2:3", 64, 64) == (56, 80)
    assert size_for_aspect_ratio("1:4", 64, 64) == (32, 128)


def test_spaces_and_decimals_are_accepted() -> None:
    assert parse_aspect_ratio(" 2.35 : 1 ") == pytest.approx(2.35)


@pytest.mark.parametrize(
    ("ratio", "word"),
    [
        ("0:1", "zero"),
        ("1:0", "zero"),
        ("abc", "W:H"),
        ("16/9", "W:H"),
        ("", "W:H"),
        ("-1:2", "W:H"),
        ("1:100", "extreme"),
        ("5:1", "extreme"),
    ],
)
def test_bad_ratios_name_the_allowed_format(ratio: str, word: str) -> None:
    with pytest.raises(InvalidInput) as info:
        size_for_aspect_ratio(ratio, 512, 512)
    message = str(info.value)
    assert word in message and "1:4" in message and "4:1" in message
    assert len(message) < 160
