"""The cast card: portraits in a row, each with its name and description under it."""

from __future__ import annotations

from PIL import Image

from storyloom.domain.story.cast_card import MARGIN, PAPER, PORTRAIT_SIDE, CastPortrait, compose_cast_card


def portrait(name: str, colour: tuple[int, int, int], size: int = 64) -> CastPortrait:
    return CastPortrait(
        name,
        f"{name} wears a very long striped scarf and smiles at everyone " * 3,
        Image.new("RGB", (size, size), colour),
    )


def test_portraits_stand_side_by_side_scaled_with_their_names_under_them() -> None:
    cast = [portrait("Bhna", (200, 40, 40)), portrait("Pip", (40, 200, 40), size=96), portrait("Mo", (40, 40, 200))]
    card = compose_cast_card(cast)
    assert card.width == MARGIN + 3 * (PORTRAIT_SIDE + MARGIN) and card.height > PORTRAIT_SIDE + 2 * MARGIN
    for column, member in enumerate(cast):
        left = MARGIN + column * (PORTRAIT_SIDE + MARGIN)
        centre = (left + PORTRAIT_SIDE // 2, MARGIN + PORTRAIT_SIDE // 2)
        assert card.getpixel(centre) == member.picture.getpixel((0, 0))  # each portrait in its own column
        assert card.getpixel((left - MARGIN // 2, MARGIN + 5)) == PAPER  # paper between them
        text_band = card.crop((left, MARGIN + PORTRAIT_SIDE + 4, left + PORTRAIT_SIDE, card.height - 4))
        assert text_band.getextrema() != tuple((v, v) for v in PAPER)  # the name and description are written


def test_one_character_makes_a_card_of_one_portrait_and_none_is_refused() -> None:
    card = compose_cast_card([portrait("Bhna", (10, 20, 30))])
    assert card.width == PORTRAIT_SIDE + 2 * MARGIN
    try:
        compose_cast_card([])
    except ValueError as exc:
        assert "at least one portrait" in str(exc)
    else:
        raise AssertionError("an empty cast made a card")
