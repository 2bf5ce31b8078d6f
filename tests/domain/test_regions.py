"""The shared rules of Vary (Region), Zoom Out and Pan: zooms, directions, grid cells, canvases, size limits."""

from __future__ import annotations

import pytest
from PIL import Image

from storyloom.domain.regions import (
    Canvas,
    cell_box,
    cells_mask,
    check_cells,
    check_pan,
    check_region_words,
    check_result_size,
    check_zoom,
    coverage,
    fitted_source,
    outpaint_canvas,
    parse_cells,
    parse_zoom,
    region_preview,
)
from storyloom.errors import InvalidInput
from storyloom.queue.job import JobKind
from storyloom.queue.params import validate_params


@pytest.mark.parametrize("zoom", [1.1, 1.5, 2.0])
def test_zooms_in_range_are_kept(zoom: float) -> None:
    assert check_zoom(zoom) == zoom


@pytest.mark.parametrize("zoom", [1.0, 1.09, 2.01, 3.0, float("nan"), float("inf")])
def test_zooms_out_of_range_are_refused_naming_the_range(zoom: float) -> None:
    with pytest.raises(InvalidInput, match=r"Zoom Out takes a factor from 1\.1 to 2"):
        check_zoom(zoom)


def test_typed_zooms() -> None:
    assert parse_zoom(" 1.5x ") == 1.5 and parse_zoom("2×") == 2.0 and parse_zoom("1.25") == 1.25
    with pytest.raises(InvalidInput, match="'big' is not a number"):
        parse_zoom("big")
    with pytest.raises(InvalidInput, match="from 1.1 to 2"):
        parse_zoom("4")


def test_pan_directions() -> None:
    assert [check_pan(d) for d in ("left", " Right", "UP", "down")] == ["left", "right", "up", "down"]
    with pytest.raises(InvalidInput, match="'west' is not one of: left, right, up, down"):
        check_pan("west")


def test_region_words() -> None:
    assert check_region_words("  the   red hat ") == "the red hat"
    with pytest.raises(InvalidInput, match="describe the part"):
        check_region_words("   ")
    with pytest.raises(InvalidInput, match="at most 200"):
        check_region_words("hat " * 60)


def test_grid_cells() -> None:
    assert check_cells([5, 1]) == (1, 5)
    assert parse_cells("1, 2 3") == (1, 2, 3)
    for bad in ([], [0], [10], [2, 2]):
        with pytest.raises(InvalidInput):
            check_cells(bad)
    with pytest.raises(InvalidInput, match="not numbers"):
        parse_cells("top left")


def test_cells_tile_the_picture_row_by_row() -> None:
    size = (100, 61)
    boxes = [cell_box(cell, size) for cell in range(1, 10)]
    assert boxes[0] == (0, 0, 33, 20) and boxes[2] == (66, 0, 100, 20) and boxes[8] == (66, 40, 100, 61)
    assert sum((right - left) * (bottom - top) for left, top, right, bottom in boxes) == 100 * 61  # no gap, no overlap
    mask = cells_mask([1, 5], size)
    assert mask.mode == "L" and mask.size == size
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((50, 30)) == 255 and mask.getpixel((99, 60)) == 0
    assert coverage(mask) == pytest.approx((33 * 20 + 33 * 20) / (100 * 61))
    assert coverage(cells_mask(range(1, 10), size)) == 1.0


def test_zoom_out_canvas_centres_the_original() -> None:
    assert outpaint_canvas((512, 512), zoom=2) == Canvas(1024, 1024, 256, 256, 512, 512)
    assert outpaint_canvas((512, 768), zoom=1.5) == Canvas(768, 1152, 128, 192, 512, 768)
    small = outpaint_canvas((64, 64), zoom=1.1)  # 70.4 rounds down to 64: at least 8 pixels are added
    assert small.size == (72, 72) and small.original_box == (4, 4, 68, 68)
    odd = outpaint_canvas((100, 50), zoom=2)  # sides become multiples of 8
    assert odd.size == (200, 96) and odd.width % 8 == 0 and odd.height % 8 == 0


@pytest.mark.parametrize(
    ("direction", "size", "box"),
    [
        ("left", (768, 512), (256, 0, 768, 512)),
        ("right", (768, 512), (0, 0, 512, 512)),
        ("up", (512, 768), (0, 256, 512, 768)),
        ("down", (512, 768), (0, 0, 512, 512)),
    ],
)
def test_pan_extends_one_side_by_half(direction: str, size: tuple[int, int], box: tuple[int, ...]) -> None:
    canvas = outpaint_canvas((512, 512), pan=direction)
    assert canvas.size == size and canvas.original_box == box
    mask = canvas.new_area_mask()
    assert coverage(mask) == pytest.approx(1 / 3)
    assert mask.getpixel((box[0], box[1])) == 0 and mask.getpixel((box[2] - 1, box[3] - 1)) == 0


def test_zoom_and_pan_are_one_or_the_other() -> None:
    for both_or_neither in ({}, {"zoom": 2.0, "pan": "left"}):
        with pytest.raises(InvalidInput, match="either a zoom .* or a pan direction"):
            outpaint_canvas((64, 64), **both_or_neither)  # type: ignore[arg-type]


def test_a_result_larger_than_allowed_is_refused() -> None:
    canvas = outpaint_canvas((1024, 1024), zoom=2)
    check_result_size(canvas, max_side=2048, max_pixels=2048 * 2048)
    with pytest.raises(InvalidInput, match="would be 2048×2048 pixels; grown pictures may be at most 1536 pixels"):
        check_result_size(canvas, max_side=1536, max_pixels=10**8)
    with pytest.raises(InvalidInput, match="2.0 megapixels"):
        check_result_size(canvas, max_side=4096, max_pixels=2_000_000)


@pytest.mark.parametrize(
    ("size", "growth", "fitted"),
    [
        ((512, 512), {"zoom": 2.0}, (512, 512)),  # fits as it is: unchanged
        ((4096, 4096), {"zoom": 2.0}, (1024, 1024)),  # an upscale: grown from a quarter-size copy
        ((4096, 4096), {"zoom": 1.5}, (1365, 1365)),
        ((4096, 3072), {"pan": "left"}, (1365, 1024)),  # aspect kept
        ((3000, 1000), {"pan": "down"}, (2048, 682)),
    ],
)
def test_a_picture_too_large_to_grow_is_grown_from_the_largest_copy_that_fits(size, growth, fitted) -> None:
    limits = {"max_side": 2048, "max_pixels": 2048 * 2048}
    assert fitted_source(size, **growth, **limits) == fitted
    check_result_size(outpaint_canvas(fitted, **growth), **limits)  # within the limits
    larger = (fitted[0] + 8, round((fitted[0] + 8) * size[1] / size[0]))
    if fitted != size:  # and as large as they allow
        with pytest.raises(InvalidInput):
            check_result_size(outpaint_canvas(larger, **growth), **limits)


def test_limits_too_small_for_a_growth_are_refused_naming_them() -> None:
    with pytest.raises(InvalidInput, match=r"Zoom Out 2× of this 512×512 picture would be 1024×1024 pixels.*"
                       r"under 32 pixels a side; grown pictures may be at most 40 pixels a side"):  # fmt: skip
        fitted_source((512, 512), zoom=2.0, max_side=40, max_pixels=10**8)


def test_preview_tints_and_outlines_only_around_the_region() -> None:
    picture = Image.new("RGB", (90, 90), (255, 255, 255))
    mask = cells_mask([5], picture.size)
    preview = region_preview(picture, mask)
    assert preview.size == picture.size and preview.mode == "RGB"
    assert preview.getpixel((45, 45)) not in ((255, 255, 255), (255, 40, 160))  # tinted inside
    assert preview.getpixel((30, 45)) == (255, 40, 160)  # the outline on the region's edge
    assert preview.getpixel((5, 5)) == (255, 255, 255)  # untouched far outside


def test_job_parameters_use_the_same_rules() -> None:
    region = {"prompt": "a golden crown"}
    assert validate_params(JobKind.REGION, {**region, "region": "the hat"})
    assert validate_params(JobKind.REGION, {**region, "cells": [1, 2]})
    for bad, words in (({}, "not both"), ({"region": "a", "cells": [1]}, "not both"), ({"cells": [3, 3]}, "distinct")):
        with pytest.raises(InvalidInput, match=words):
            validate_params(JobKind.REGION, {**region, **bad})
    assert validate_params(JobKind.OUTPAINT, {"zoom": 1.5})
    with pytest.raises(InvalidInput, match="zoom"):
        validate_params(JobKind.OUTPAINT, {"zoom": 2.5})
    with pytest.raises(InvalidInput, match="either a zoom"):
        validate_params(JobKind.OUTPAINT, {"zoom": 1.5, "pan": "up"})
    with pytest.raises(InvalidInput, match="either a zoom"):
        validate_params(JobKind.OUTPAINT, {})
