"""What a picture given to a command must be (an image prompt, a /blend or /describe picture), checked the
same way by the bot before anything is queued and by the worker before it uses the pixels.

Opening goes through ``domain.user_images`` (the pixel count is checked from the header before anything is
decoded, so a decompression bomb is refused without being inflated); on top of that a picture given to a
command must be small enough in bytes, of a format the bot accepts, still (not animated) and not tiny.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from storyloom.domain.user_images import open_user_image
from storyloom.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

MIN_START_STRENGTH = 0.05  # a start picture is always redrawn a little
MAX_PICTURE_BYTES = 16 * 1024 * 1024
MAX_PICTURE_PIXELS = 4096 * 4096
MIN_PICTURE_SIDE = 16
PICTURE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
ALLOWED = "PNG, JPEG, WebP or a still GIF"


@dataclass(frozen=True)
class PictureInfo:
    format: str  # Pillow's name: PNG, JPEG, WEBP, GIF
    width: int
    height: int

    @property
    def mime(self) -> str:
        return PICTURE_FORMATS[self.format]


def start_strength(image_weight: float, steps: int) -> float:
    """The img2img strength of a start picture whose ``image_weight`` is how much of it stays, or ``InvalidInput``
    when at ``steps`` denoising steps not one step would be left to run."""
    strength = max(MIN_START_STRENGTH, 1.0 - image_weight)
    if int(steps * strength) < 1:
        raise InvalidInput(
            f"with image_weight {image_weight:g} only {strength:g} of {steps} steps would run; use a lower image_weight "
            "or more steps"
        )
    return strength


def check_declared_size(size: int, label: str) -> None:
    """Refuse a file by the size its sender declares, before downloading it."""
    if size > MAX_PICTURE_BYTES:
        raise InvalidInput(
            f"{label} is {size / (1024 * 1024):.1f} MB; pictures may be at most {MAX_PICTURE_BYTES // (1024 * 1024)} MB"
        )


def check_picture(data: bytes, label: str) -> PictureInfo:
    """The picture's format and size, or ``InvalidInput`` naming what is wrong with ``label`` and what is allowed:
    not an image, an unsupported format, animated, too large in bytes or pixels, too small, or damaged."""
    with _opened(data, label) as image:
        return _info(image, label)


def open_picture(data: bytes, label: str = "the picture") -> Image.Image:
    """``data`` checked (see ``check_picture``) and decoded as an RGB image."""
    with _opened(data, label) as image:
        _info(image, label)
        return image.convert("RGB")


def _opened(data: bytes, label: str) -> Image.Image:
    check_declared_size(len(data), label)
    return open_user_image(data, label=label, max_pixels=MAX_PICTURE_PIXELS)


def _info(image: Image.Image, label: str) -> PictureInfo:
    info = PictureInfo(image.format or "", image.width, image.height)
    if info.format not in PICTURE_FORMATS:
        raise InvalidInput(f"{label} is a {info.format or 'picture'} file; use {ALLOWED}")
    if getattr(image, "n_frames", 1) > 1:
        raise InvalidInput(f"{label} is animated; use a still picture ({ALLOWED})")
    if min(info.width, info.height) < MIN_PICTURE_SIDE:
        raise InvalidInput(
            f"{label} is only {info.width}×{info.height} pixels; use a picture at least {MIN_PICTURE_SIDE} pixels "
            "on each side"
        )
    return info
