"""Aspect ratios (``16:9``) to pixel sizes the UNet accepts, and the sizes each upscale mode takes.

Keeping the pixel count near the model's native ``base_width × base_height`` keeps quality and memory the
same whatever the shape; sides are multiples of 8 because the VAE downsamples by 8 (SD 1.5).
"""

from __future__ import annotations

import math
import re

from storyloom.errors import InvalidInput

MIN_RATIO = 1 / 4
MAX_RATIO = 4.0
SIZE_MULTIPLE = 8

# The smallest picture worth upscaling, and the largest each mode takes: the chain re-draws at 2× with Stable
# Diffusion, which is the expensive part; Real-ESRGAN alone goes further. The bot offers only upscales that fit.
MIN_UPSCALE_SOURCE_SIDE = 32
MAX_UPSCALE_SOURCE_SIDE: dict[str, int] = {"chain": 1024, "esrgan": 2048}

_RATIO_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_ALLOWED = "write it as W:H with positive numbers, between 1:4 and 4:1 (for example 16:9 or 2:3)"


def parse_aspect_ratio(aspect_ratio: str) -> float:
    """``"16:9"`` → 1.777…; anything malformed or outside 1:4..4:1 is an ``InvalidInput`` saying what is allowed."""
    match = _RATIO_RE.match(aspect_ratio or "")
    if not match:
        raise InvalidInput(f"aspect ratio {aspect_ratio!r} is not valid: {_ALLOWED}")
    width, height = float(match.group(1)), float(match.group(2))
    if width <= 0 or height <= 0:
        raise InvalidInput(f"aspect ratio {aspect_ratio!r} has a zero side: {_ALLOWED}")
    ratio = width / height
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise InvalidInput(f"aspect ratio {aspect_ratio!r} is too extreme: {_ALLOWED}")
    return ratio


def size_for_aspect_ratio(aspect_ratio: str, base_width: int, base_height: int) -> tuple[int, int]:
    """(width, height), multiples of 8, with about ``base_width * base_height`` pixels and the asked shape."""
    ratio = parse_aspect_ratio(aspect_ratio)
    area = base_width * base_height
    width = math.sqrt(area * ratio)
    height = width / ratio
    return _round_to_multiple(width), _round_to_multiple(height)


def _round_to_multiple(value: float) -> int:
    return max(SIZE_MULTIPLE, int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE)


def fits_upscale(width: int, height: int, mode: str) -> bool:
    """Whether a ``width × height`` picture is within what upscale ``mode`` takes."""
    return MIN_UPSCALE_SOURCE_SIDE <= min(width, height) and max(width, height) <= MAX_UPSCALE_SOURCE_SIDE[mode]
