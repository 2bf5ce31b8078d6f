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


def png_bomb(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of ``width``×``height``: a few hundred KB that decode to ``width*height*3``
    bytes (13000×13000 is half a gigabyte). Quick to make: a block of rows is deflated once, with a full flush
    so that its compressed bytes stand for it wherever it repeats."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = bytes(1 + width * 3)  # filter byte 0, then black pixels
    rows_per_block = 64
    blocks, rest = divmod(height, rows_per_block)
    parts, checksum = [b"\x78\xda"], 1
    for count, rows in ((blocks, rows_per_block), (1, rest)):
        raw = row * rows
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        parts.append((deflate.compress(raw) + deflate.flush(zlib.Z_FULL_FLUSH)) * count)
        for _ in range(count):
            checksum = zlib.adler32(raw, checksum)
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush() + struct.pack(">I", checksum))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
