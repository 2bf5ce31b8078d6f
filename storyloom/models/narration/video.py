"""The pictures of a narrated video: a slow pan and zoom over each page (the Ken Burns effect) and the sentence
being read, drawn at the bottom in a font that has its script."""

from __future__ import annotations

from PIL import Image, ImageDraw

from storyloom.domain.book.fonts import picture_font, wrap_text

ZOOM = 0.12  # how much closer the last frame of a page is than the first (or the reverse)
PAN = 0.04  # how far the view drifts, as a share of the picture
SUBTITLE_LINES = 3


def frame_size(picture_size: tuple[int, int], side: int) -> tuple[int, int]:
    """Frames of the pictures' shape with the longer side ``side``; both even, as H.264 4:2:0 needs."""
    width, height = picture_size
    scale = side / max(width, height, 1)
    return max(16, int(width * scale) // 2 * 2), max(16, int(height * scale) // 2 * 2)


class KenBurns:
    """Frames of one page: ``frame(t)`` for t from 0 (page starts) to 1 (page ends)."""

    def __init__(self, picture: Image.Image | None, size: tuple[int, int], *, zoom_in: bool) -> None:
        width, height = size
        if picture is None:  # a page without a picture: a plain warm page
            picture = Image.new("RGB", size, (246, 241, 231))
        # Work from a copy a little larger than the frame, so zooming in never magnifies past the source.
        scale = max(width / picture.width, height / picture.height) * (1 + ZOOM)
        self.source = picture.convert("RGB").resize(
            (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.LANCZOS
        )
        self.size = size
        self.zoom_in = zoom_in

    def frame(self, t: float) -> Image.Image:
        t = min(1.0, max(0.0, t))
        eased = t * t * (3 - 2 * t)  # smoothstep: starts and ends gently
        progress = eased if self.zoom_in else 1 - eased
        zoom = 1 + ZOOM * progress
        width, height = self.size
        aspect = width / height
        box_width = min(self.source.width, self.source.height * aspect) / zoom
        box_height = box_width / aspect
        center_x = self.source.width * (0.5 + PAN * (progress - 0.5))
        center_y = self.source.height * (0.5 - PAN * (progress - 0.5) / 2)
        left = min(max(0.0, center_x - box_width / 2), self.source.width - box_width)
        top = min(max(0.0, center_y - box_height / 2), self.source.height - box_height)
        box = (left, top, left + box_width, top + box_height)
        return self.source.resize(self.size, Image.Resampling.BILINEAR, box=box)


class SubtitleRenderer:
    """Draws a sentence on a frame: wrapped to the frame's width, white on a translucent band."""

    def __init__(self, width: int, height: int, sample_text: str) -> None:
        self.width, self.height = width, height
        self.font_size = max(8, height // 18)
        self.font = picture_font(sample_text, self.font_size)
        self._cache: dict[str, Image.Image | None] = {}

    def draw(self, frame: Image.Image, text: str) -> Image.Image:
        if not text:
            return frame
        if text not in self._cache:
            self._cache = {text: self._band(text)}  # one sentence at a time is on screen
        band = self._cache[text]
        if band is None:
            return frame
        frame = frame.copy()
        frame.paste(band, (0, self.height - band.height), band)
        return frame

    def _band(self, text: str) -> Image.Image | None:
        measure = ImageDraw.Draw(Image.new("L", (1, 1)))
        lines = wrap_text(text, lambda line: measure.textlength(line, font=self.font), self.width * 0.9)
        lines = lines[:SUBTITLE_LINES]
        if not lines:
            return None
        line_height = int(self.font_size * 1.3)
        band = Image.new("RGBA", (self.width, line_height * len(lines) + self.font_size // 2), (0, 0, 0, 140))
        draw = ImageDraw.Draw(band)
        for index, line in enumerate(lines):
            x = (self.width - measure.textlength(line, font=self.font)) / 2
            draw.text((x, self.font_size // 4 + index * line_height), line, font=self.font, fill=(255, 255, 255, 255))
        return band
