"""What Discord works out about an uploaded file: its content type and, for images, its size in pixels."""

from __future__ import annotations

import io
import mimetypes


def guess_content_type(filename: str) -> str | None:
    """Discord derives ``content_type`` from the file name; discord.py uploads everything as octet-stream."""
    guessed, _ = mimetypes.guess_type(filename)
    if guessed and guessed.startswith("text/"):
        guessed += "; charset=utf-8"
    return guessed


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` for images Pillow can identify, else None (only the header is read)."""
    try:
        from PIL import Image  # local import: optional, and only needed when images are uploaded
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception:
        return None
