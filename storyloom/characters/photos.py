"""What a character's training photo must be, checked the same way by the bot (before saving an upload) and by
the trainer (before reading one): torch-free, so the bot can refuse a bad photo at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from storyloom.domain.user_images import open_user_image
from storyloom.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

CAPTION_SUFFIX = ".txt"
MAX_CAPTION_CHARS = 500
MIN_PHOTO_SIDE = 64  # smaller photos carry too little of the subject to learn from
# Training scales every photo down to the model's resolution; 50 megapixels still takes a phone's largest photo.
MAX_PHOTO_PIXELS = 50_000_000
MAX_PHOTO_BYTES = 32 * 1024 * 1024
MAX_PHOTOS_TOTAL_BYTES = 256 * 1024 * 1024  # what one training request may make the bot download
# Folder (inside the data directory) of the class images DreamBooth's prior preservation draws and reuses.
CLASS_IMAGES_DIR = "class-images"


def open_photo(source: bytes | Path, label: str) -> Image.Image:
    """A training photo decoded, or ``InvalidInput``: not a picture, damaged, or more than ``MAX_PHOTO_PIXELS``
    (refused from the header, before decoding). The bot and the trainer open photos only through this."""
    return open_user_image(source, label=label, max_pixels=MAX_PHOTO_PIXELS)


def check_photo_sizes(sizes: Sequence[tuple[str, int]]) -> None:
    """``InvalidInput`` when photos, as (file name, size in bytes), are too large one by one or together; the bot
    checks the sizes Discord declares before downloading anything, and the saved bytes again."""
    for label, size in sizes:
        if size > MAX_PHOTO_BYTES:
            raise InvalidInput(
                f"{label} is {_mib(size)}; each photo may be at most {_mib(MAX_PHOTO_BYTES)} (send a smaller copy)"
            )
    total = sum(size for _, size in sizes)
    if total > MAX_PHOTOS_TOTAL_BYTES:
        raise InvalidInput(
            f"the photos add up to {_mib(total)}; one character's photos may add up to at most "
            f"{_mib(MAX_PHOTOS_TOTAL_BYTES)} (send smaller copies)"
        )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def check_image(data: bytes, label: str) -> str:
    """The image format of ``data`` (``JPEG``, ``PNG``…), or ``InvalidInput`` saying ``label`` is no usable photo."""
    with open_photo(data, label) as image:
        size, kind = image.size, image.format or ""
    if min(size) < MIN_PHOTO_SIDE:
        raise InvalidInput(
            f"{label} is only {size[0]}×{size[1]} pixels; use photos at least {MIN_PHOTO_SIDE} pixels on each side"
        )
    return kind
