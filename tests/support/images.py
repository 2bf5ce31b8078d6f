"""Small images for tests: PNG bytes made up on the spot, and artifacts read back as pictures."""

from __future__ import annotations

import io


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that compresses badly (like a real picture), for upload-limit tests."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), bytes(rng.randrange(256) for _ in range(width * height * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def artifact_image(artifact):
    """An image artifact's bytes as a loaded PIL image."""
    from PIL import Image

    picture = Image.open(io.BytesIO(artifact.data))
    picture.load()
    return picture
