"""The cast card: who is who in a story, one portrait per character in a row, name and description under each.

A story's thread opens with it. Composed with Pillow alone (no model), from portraits the story job drew.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from storyloom.domain.book.fonts import picture_fonts, wrap_text

PORTRAIT_SIDE = 256  # each portrait on the card, whatever size it was drawn at
MARGIN = 16
NAME_SIZE = 22
DESCRIPTION_SIZE = 15
DESCRIPTION_LINES = 4
PAPER = (250, 246, 238)
INK = (40, 36, 32)
SOFT_INK = (96, 88, 80)


@dataclass(frozen=True)
class CastPortrait:
    name: str
    description: str
    picture: Image.Image


def compose_cast_card(portraits: Sequence[CastPortrait]) -> Image.Image:
    """The portraits side by side on paper, each scaled to ``PORTRAIT_SIDE``, with its name and (at most
    ``DESCRIPTION_LINES`` lines of) its description under it."""
    if not portraits:
        raise ValueError("a cast card needs at least one portrait")
    sample = " ".join(f"{p.name} {p.description}" for p in portraits)
    name_font, text_font = picture_fonts(sample, NAME_SIZE, DESCRIPTION_SIZE)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    name_height = int(NAME_SIZE * 1.4)
    line_height = int(DESCRIPTION_SIZE * 1.35)
    text_height = name_height + line_height * DESCRIPTION_LINES
    width = MARGIN + len(portraits) * (PORTRAIT_SIDE + MARGIN)
    height = MARGIN + PORTRAIT_SIDE + MARGIN // 2 + text_height + MARGIN
    card = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(card)
    for column, portrait in enumerate(portraits):
        left = MARGIN + column * (PORTRAIT_SIDE + MARGIN)
        picture = portrait.picture.convert("RGB").resize((PORTRAIT_SIDE, PORTRAIT_SIDE), Image.Resampling.LANCZOS)
        card.paste(picture, (left, MARGIN))
        top = MARGIN + PORTRAIT_SIDE + MARGIN // 2
        name = _fit(portrait.name, lambda text: measure.textlength(text, font=name_font))
        x = left + (PORTRAIT_SIDE - measure.textlength(name, font=name_font)) / 2
        draw.text((x, top), name, font=name_font, fill=INK)
        lines = wrap_text(portrait.description, lambda text: measure.textlength(text, font=text_font), PORTRAIT_SIDE)
        if len(lines) > DESCRIPTION_LINES:
            lines = [*lines[: DESCRIPTION_LINES - 1], lines[DESCRIPTION_LINES - 1] + "…"]
        for row, line in enumerate(lines):
            line = _fit(line, lambda text: measure.textlength(text, font=text_font))
            x = left + (PORTRAIT_SIDE - measure.textlength(line, font=text_font)) / 2
            draw.text((x, top + name_height + row * line_height), line, font=text_font, fill=SOFT_INK)
    return card


def _fit(text: str, length: Callable[[str], float]) -> str:
    """``text`` cut with an ellipsis to the portrait's width (``length``: its width in pixels)."""
    if length(text) <= PORTRAIT_SIDE:
        return text
    while text and length(text + "…") > PORTRAIT_SIDE:
        text = text[:-1]
    return text + "…"
