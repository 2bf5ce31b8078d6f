"""Opening a picture a user gave us (an upload, a training photo, a file named on the command line) safely.

The size in pixels is read from the file's header and checked against an explicit limit before a single
pixel is decoded, so a decompression bomb (a small PNG that declares 13000×13000) is refused at once and
costs neither time nor memory. Pillow's own guard is no substitute: below twice its limit it only warns.
Torch-free: the bot and the workers use the same rule.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from storyloom.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

# What a picture from a user may have unless the caller's use needs less; a 64-megapixel camera still fits.
MAX_USER_IMAGE_PIXELS = 8192 * 8192
READABLE = "use PNG, JPEG or WebP"


def megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f} megapixels" if pixels >= 1_000_000 else f"{pixels:,} pixels"


def check_pixels(size: tuple[int, int], label: str, max_pixels: int) -> None:
    """``InvalidInput`` when a ``size`` (width, height) has more than ``max_pixels`` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise InvalidInput(
            f"{label} is {width}×{height} pixels; pictures may have at most {megapixels(max_pixels)} "
            "(scale it down and send it again)"
        )


def open_user_image(source: bytes | Path, *, label: str, max_pixels: int = MAX_USER_IMAGE_PIXELS) -> Image.Image:
    """The picture in ``source`` (bytes or a file), decoded, or one ``InvalidInput`` naming ``label``: not a
    picture, damaged, or more than ``max_pixels`` pixels (checked from the header, before decoding)."""
    from PIL import Image, UnidentifiedImageError

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns about large images instead of refusing them; the explicit check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError:
        raise InvalidInput(
            f"{label} is far too large; pictures may have at most {megapixels(max_pixels)} (scale it down)"
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput(f"{label} is not an image storyloom can read; {READABLE}") from None
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {label}") from None
    except (OSError, ValueError, SyntaxError):
        raise InvalidInput(f"{label} is a damaged image; {READABLE}") from None
    try:
        check_pixels(image.size, label, max_pixels)
        image.load()
    except InvalidInput:
        image.close()
        raise
    except (OSError, ValueError, SyntaxError):
        image.close()
        raise InvalidInput(f"{label} is a damaged image; {READABLE}") from None
    return image
