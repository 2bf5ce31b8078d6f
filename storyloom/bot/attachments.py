"""Fitting files into Discord's upload limit without losing anything.

The store keeps the full PNG; what Discord gets may be re-encoded (WebP, then JPEG) or scaled down until it
fits the limit of the channel it goes to, and the message then says so. The limit comes from the most recent
interaction seen in that guild or DM (Discord sends ``attachment_size_limit`` with every interaction); when the
bot does not know it (after a restart), Discord's default applies and a 413 answer shrinks the file further.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

DEFAULT_LIMIT = 10 * 1024 * 1024  # what every Discord guild and DM allows
SMALLEST_SIDE = 16  # below this a picture is no longer worth sending
_QUALITIES = (90, 80, 65, 50)


@dataclass(frozen=True)
class FittedFile:
    """What to upload; ``note`` is empty when the original was sent unchanged."""

    data: bytes
    filename: str
    note: str = ""

    @property
    def fits(self) -> bool:
        return bool(self.data)


def fit_image(data: bytes, filename: str, limit: int) -> FittedFile:
    """``data`` (an image) as it is if it fits ``limit`` bytes, else re-encoded or scaled down to fit.

    Returns an empty ``data`` with a note when not even a thumbnail fits (the caller then posts text only)."""
    if len(data) <= limit:
        return FittedFile(data, filename)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    stem = filename.rsplit(".", 1)[0]
    original = image.size
    while True:
        for fmt, extension in (("WEBP", "webp"), ("JPEG", "jpg")):
            for quality in _QUALITIES:
                encoded = _encode(image, fmt, quality)
                if len(encoded) <= limit:
                    how = f"re-encoded as {fmt.replace('WEBP', 'WebP')} (quality {quality})"
                    if image.size != original:
                        how += f" and scaled down to {image.width}×{image.height}"
                    note = f"{how} to fit the {_size(limit)} upload limit; the full PNG is kept"
                    return FittedFile(encoded, f"{stem}.{extension}", note)
        if min(image.size) <= SMALLEST_SIDE:
            return FittedFile(b"", filename, f"the picture does not fit the {_size(limit)} upload limit here")
        ratio = max(0.25, min(0.8, (limit / max(1, len(encoded))) ** 0.5))
        size = (max(SMALLEST_SIDE, int(image.width * ratio)), max(SMALLEST_SIDE, int(image.height * ratio)))
        image = image.resize(size, Image.Resampling.LANCZOS)


_OPUS_BITRATES = (16000, 10000, 6000)  # Opus stays intelligible for speech down to 6 kbps


def fit_audio(data: bytes, filename: str, limit: int) -> FittedFile:
    """``data`` (Ogg/Opus narration) as it is if it fits ``limit`` bytes, else re-encoded at a lower bitrate.

    Returns an empty ``data`` with a note when not even the lowest bitrate fits."""
    if len(data) <= limit:
        return FittedFile(data, filename)
    import av

    with av.open(io.BytesIO(data), "r") as source:
        frames = list(source.decode(audio=0))
    for bitrate in _OPUS_BITRATES:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="ogg") as target:
            stream = target.add_stream("libopus", rate=48000, layout="mono")
            stream.bit_rate = bitrate
            for frame in frames:
                frame.pts = None
                for packet in stream.encode(frame):
                    target.mux(packet)
            for packet in stream.encode(None):
                target.mux(packet)
        if len(buffer.getvalue()) <= limit:
            note = f"re-encoded at {bitrate // 1000} kbps to fit the {_size(limit)} upload limit; the original is kept"
            return FittedFile(buffer.getvalue(), filename, note)
    return FittedFile(b"", filename, f"the recording does not fit the {_size(limit)} upload limit here")


def _encode(image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):.0f} MB"
    if limit >= 1024:
        return f"{limit / 1024:.0f} KB"
    return f"{limit} byte"


class SizeLimits:
    """The upload limit last seen for each guild (or DM channel), learned from interactions and 413s."""

    def __init__(self, default: int = DEFAULT_LIMIT) -> None:
        self._default = default
        self._known: dict[int, int] = {}

    @staticmethod
    def _key(guild_id: int | None, channel_id: int | None) -> int:
        return guild_id or channel_id or 0

    def learn(self, guild_id: int | None, channel_id: int | None, limit: int | None) -> None:
        if limit and limit > 0:
            self._known[self._key(guild_id, channel_id)] = int(limit)

    def shrink(self, guild_id: int | None, channel_id: int | None, refused_size: int) -> int:
        """Discord refused ``refused_size`` bytes: remember a smaller limit and return it."""
        smaller = max(1024, min(self.limit(guild_id, channel_id), refused_size) // 2)
        self._known[self._key(guild_id, channel_id)] = smaller
        return smaller

    def limit(self, guild_id: int | None, channel_id: int | None, fallback: int | None = None) -> int:
        """The limit last seen there, else ``fallback`` (the guild's own limit, when known), else the default."""
        return self._known.get(self._key(guild_id, channel_id), fallback or self._default)
