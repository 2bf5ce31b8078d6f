"""What a character's training photo must be, checked the same way by the bot (before saving an upload) and by
the trainer (before reading one): torch-free, so the bot can refuse a bad photo at once.
"""

from __future__ import annotations

import io

from storyloom.errors import InvalidInput

CAPTION_SUFFIX = ".txt"
MAX_CAPTION_CHARS = 500
MIN_PHOTO_SIDE = 64  # smaller photos carry too little of the subject to learn from
# Folder (inside the data directory) of the class images DreamBooth's prior preservation draws and reuses.
CLASS_IMAGES_DIR = "class-images"


def check_image(data: bytes, label: str) -> str:
    """The image format of ``data`` (``JPEG``, ``PNG``…), or ``InvalidInput`` saying ``label`` is no usable photo."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # structure and checksums
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the pixels themselves: a truncated file fails here
            size, kind = image.size, image.format or ""
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        what = "not an image" if isinstance(exc, UnidentifiedImageError) else "a damaged image"
        raise InvalidInput(f"{label} is {what}; use JPEG, PNG or WebP photos") from None
    if min(size) < MIN_PHOTO_SIDE:
        raise InvalidInput(
            f"{label} is only {size[0]}×{size[1]} pixels; use photos at least {MIN_PHOTO_SIDE} pixels on each side"
        )
    return kind
