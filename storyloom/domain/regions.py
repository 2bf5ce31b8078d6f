"""Vary (Region), Zoom Out and Pan: which part of a picture is redrawn and how big a grown picture becomes.

Torch-free rules the bot checks before queuing and the worker applies: the allowed zooms and pan directions,
the 3×3 grid's cells as a mask, where the original sits on an outpaint canvas, the largest result allowed,
and the preview that shows a user the region found (tinted and outlined). Masks are Pillow ``"L"`` images,
255 where the picture is redrawn and 0 where it is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from storyloom.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

ZOOM_MIN = 1.1
ZOOM_MAX = 2.0
ZOOM_PRESETS = (1.5, 2.0)  # the Zoom Out buttons; Custom Zoom takes anything in the range
PanDirection = Literal["left", "right", "up", "down"]
PAN_DIRECTIONS: tuple[PanDirection, ...] = get_args(PanDirection)
GRID_SIDE = 3
GRID_CELLS = range(1, GRID_SIDE * GRID_SIDE + 1)  # row-major from the top-left: 1 2 3 / 4 5 6 / 7 8 9
MAX_REGION_CHARS = 200
SIDE_MULTIPLE = 8  # SD 1.5's VAE works in 8-pixel blocks
# The smallest a picture may be scaled down to so that its grown version fits: below this there is too
# little of it left to grow from.
MIN_FITTED_SIDE = 32

# Why a region cannot be redrawn when the words found nothing (shown with the preview).
EMPTY_REGION = (
    "the region to redraw matched nothing in the picture; describe it in other words or choose cells of the grid"
)

# How the preview shows the region: a translucent tint over it and a solid line around it.
PREVIEW_COLOR = (255, 40, 160)
PREVIEW_TINT_ALPHA = 0.45
PREVIEW_OUTLINE_WIDTH = 3


def check_zoom(zoom: float) -> float:
    """``zoom``, or ``InvalidInput`` when it is outside 1.1–2×."""
    if not (math.isfinite(zoom) and ZOOM_MIN <= zoom <= ZOOM_MAX):
        raise InvalidInput(f"zoom {zoom:g} is out of range: Zoom Out takes a factor from {ZOOM_MIN:g} to {ZOOM_MAX:g}")
    return zoom


def parse_zoom(text: str) -> float:
    """A zoom typed by a user ("1.5", "2x", "1.5×") as a checked factor."""
    cleaned = text.strip().lower().rstrip("x×").strip()
    try:
        zoom = float(cleaned)
    except ValueError:
        raise InvalidInput(
            f"zoom {text.strip()!r} is not a number: give a factor from {ZOOM_MIN:g} to {ZOOM_MAX:g}, like 1.5"
        ) from None
    return check_zoom(zoom)


def check_pan(direction: str) -> PanDirection:
    """``direction`` as one of left, right, up, down, or ``InvalidInput`` naming them."""
    cleaned = direction.strip().lower()
    for allowed in PAN_DIRECTIONS:
        if cleaned == allowed:
            return allowed
    raise InvalidInput(f"pan direction {direction!r} is not one of: {', '.join(PAN_DIRECTIONS)}")


def check_region_words(region: str) -> str:
    """The words naming a region ("the hat"), stripped, or ``InvalidInput`` when empty or too long."""
    cleaned = " ".join(region.split())
    if not cleaned:
        raise InvalidInput("describe the part of the picture to change in a few words, like “the hat”")
    if len(cleaned) > MAX_REGION_CHARS:
        raise InvalidInput(
            f"the region description is {len(cleaned)} characters; at most {MAX_REGION_CHARS} are allowed"
        )
    return cleaned


def check_cells(cells: Iterable[int]) -> tuple[int, ...]:
    """Grid cells as a sorted tuple, or ``InvalidInput`` unless they are 1–9 distinct cells numbered 1 to 9."""
    chosen = list(cells)
    if not chosen:
        raise InvalidInput("choose at least one cell of the 3×3 grid (1 to 9)")
    if any(cell not in GRID_CELLS for cell in chosen) or len(set(chosen)) != len(chosen):
        raise InvalidInput(
            f"grid cells must be distinct numbers from 1 to 9 (row by row from the top-left), not {chosen}"
        )
    return tuple(sorted(chosen))


def parse_cells(text: str) -> tuple[int, ...]:
    """Cells typed as "1,2,5" (commas or spaces) as checked cells."""
    parts = text.replace(",", " ").split()
    if not all(part.isdigit() for part in parts):
        raise InvalidInput(f"grid cells {text.strip()!r} are not numbers: give cells from 1 to 9, like 1,2")
    return check_cells(int(part) for part in parts)


def cell_box(cell: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) pixel box of grid ``cell`` on a picture of ``size``; the cells tile it."""
    width, height = size
    row, column = divmod(cell - 1, GRID_SIDE)
    return (
        column * width // GRID_SIDE,
        row * height // GRID_SIDE,
        (column + 1) * width // GRID_SIDE,
        (row + 1) * height // GRID_SIDE,
    )


def cells_mask(cells: Iterable[int], size: tuple[int, int]) -> Image.Image:
    """The mask covering grid ``cells`` on a picture of ``size``."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for cell in check_cells(cells):
        left, top, right, bottom = cell_box(cell, size)
        draw.rectangle((left, top, right - 1, bottom - 1), fill=255)
    return mask


def binary_mask(mask: Image.Image) -> Image.Image:
    """``mask`` as 255 where at least half on and 0 elsewhere (mode ``"L"``)."""
    return mask.convert("L").point(lambda value: 255 if value >= 128 else 0)


def coverage(mask: Image.Image) -> float:
    """The fraction (0–1) of a mask's pixels that are redrawn (at least half on)."""
    histogram = mask.convert("L").histogram()
    return sum(histogram[128:]) / (mask.width * mask.height)


def region_preview(picture: Image.Image, mask: Image.Image) -> Image.Image:
    """``picture`` with the masked region tinted and outlined, the same size (RGB)."""
    from PIL import Image, ImageChops, ImageFilter

    base = picture.convert("RGB")
    binary = binary_mask(mask)
    color = Image.new("RGB", base.size, PREVIEW_COLOR)
    tint = binary.point(lambda value: round(value * PREVIEW_TINT_ALPHA))
    preview = Image.composite(color, base, tint)
    grown = binary.filter(ImageFilter.MaxFilter(2 * PREVIEW_OUTLINE_WIDTH + 1))
    shrunk = binary.filter(ImageFilter.MinFilter(2 * PREVIEW_OUTLINE_WIDTH + 1))
    outline = ImageChops.subtract(grown, shrunk)
    return Image.composite(color, preview, outline)


@dataclass(frozen=True)
class Canvas:
    """A grown picture: ``width × height`` (multiples of 8) with the original's top-left corner at
    (``left``, ``top``); everything outside the original is drawn new."""

    width: int
    height: int
    left: int
    top: int
    source_width: int
    source_height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def original_box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.left + self.source_width, self.top + self.source_height

    def new_area_mask(self) -> Image.Image:
        """255 on the new area, 0 where the original goes."""
        from PIL import Image, ImageDraw

        mask = Image.new("L", self.size, 255)
        left, top, right, bottom = self.original_box
        ImageDraw.Draw(mask).rectangle((left, top, right - 1, bottom - 1), fill=0)
        return mask


def outpaint_canvas(size: tuple[int, int], *, zoom: float | None = None, pan: str | None = None) -> Canvas:
    """Where a ``size`` picture goes when grown. Zoom ``z``: each side × z rounded down to a multiple of 8 (at
    least 8 pixels more), the original centred. Pan: that side grows by half its length (rounded to 8) with the
    original against the opposite edge; the other side is only rounded up to a multiple of 8."""
    if (zoom is None) == (pan is None):
        raise InvalidInput(
            f"give either a zoom ({ZOOM_MIN:g} to {ZOOM_MAX:g}) or a pan direction ({', '.join(PAN_DIRECTIONS)}), "
            "not both"
        )
    width, height = size
    if zoom is not None:
        factor = check_zoom(zoom)
        new_width, new_height = _zoomed_side(width, factor), _zoomed_side(height, factor)
        return Canvas(new_width, new_height, (new_width - width) // 2, (new_height - height) // 2, width, height)
    assert pan is not None
    direction = check_pan(pan)
    if direction in ("left", "right"):
        new_width, new_height = _round_up(width + _half(width)), _round_up(height)
        left = new_width - width if direction == "left" else 0
        return Canvas(new_width, new_height, left, 0, width, height)
    new_width, new_height = _round_up(width), _round_up(height + _half(height))
    top = new_height - height if direction == "up" else 0
    return Canvas(new_width, new_height, 0, top, width, height)


def describe_growth(*, zoom: float | None = None, pan: str | None = None) -> str:
    """How a grown picture was made, in a few words ("Zoom Out 2×", "Pan left")."""
    return f"Zoom Out {zoom:g}×" if zoom is not None else f"Pan {pan}"


def check_result_size(canvas: Canvas, *, max_side: int, max_pixels: int, what: str = "the result") -> None:
    """``InvalidInput`` when a grown picture would be larger than allowed."""
    if max(canvas.size) > max_side or canvas.width * canvas.height > max_pixels:
        raise InvalidInput(
            f"{what} would be {canvas.width}×{canvas.height} pixels; grown pictures may be at most {max_side} "
            f"pixels a side and {max_pixels / 1_000_000:.1f} megapixels (zoom out less, or start from a smaller "
            "picture)"
        )


def fitted_source(
    size: tuple[int, int], *, zoom: float | None = None, pan: str | None = None, max_side: int, max_pixels: int
) -> tuple[int, int]:
    """The size to grow a ``size`` picture from so that the grown picture stays within the largest allowed: the
    picture's own size when it fits, else the largest scaled-down copy (aspect kept) that does, as Midjourney
    zooms out of an upscale at a working size. ``InvalidInput`` when that copy would be under
    ``MIN_FITTED_SIDE`` pixels a side (the limits are set too small for this growth)."""
    width, height = size
    canvas = outpaint_canvas(size, zoom=zoom, pan=pan)
    scale = min(1.0, max_side / max(canvas.size), math.sqrt(max_pixels / (canvas.width * canvas.height)))
    while True:
        fitted = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        if fitted != size and min(fitted) < MIN_FITTED_SIDE:
            raise InvalidInput(
                f"{describe_growth(zoom=zoom, pan=pan)} of this {width}×{height} picture would be "
                f"{canvas.width}×{canvas.height} pixels, and scaled down to fit within {max_side} pixels a side "
                f"it would be under {MIN_FITTED_SIDE} pixels a side; grown pictures may be at most {max_side} "
                f"pixels a side and {max_pixels / 1_000_000:.1f} megapixels"
            )
        grown = outpaint_canvas(fitted, zoom=zoom, pan=pan)
        if max(grown.size) <= max_side and grown.width * grown.height <= max_pixels:
            return fitted
        scale *= 0.99  # rounding to multiples of 8 overshot by a few pixels: a step smaller


def _zoomed_side(side: int, zoom: float) -> int:
    return max(_round_down(side * zoom), _round_up(side + 1))


def _half(side: int) -> int:
    return max(SIDE_MULTIPLE, round(side / 2 / SIDE_MULTIPLE) * SIDE_MULTIPLE)


def _round_down(value: float) -> int:
    return int(value // SIDE_MULTIPLE) * SIDE_MULTIPLE


def _round_up(value: float) -> int:
    return math.ceil(value / SIDE_MULTIPLE) * SIDE_MULTIPLE
