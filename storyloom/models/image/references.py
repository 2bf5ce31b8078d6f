"""Characters' reference pictures on a picture: the IP-Adapter "plus" (``models.character_adapter``) steers it
towards each character's look, with no training.

One character (position ``whole``) steers the whole picture. Several share the picture: each reference steers
only its column (left, centre, right: halves for two, thirds for three, with soft edges), through diffusers'
IP-Adapter attention masks (``cross_attention_kwargs={"ip_adapter_masks": ...}``). diffusers 0.42 lets one
adapter take several images, each with its own mask and scale (``ip_adapter_image_embeds`` of shape
``(batch, images, tokens, dim)``, ``set_ip_adapter_scale([[w1, w2]])``), which costs one copy of the adapter's
weights however many characters there are, where one adapter per character would load the same weights again
for each. A character without a reference picture (drawn by its LoRA or its words) adds nothing here.

``drawing_characters`` is the one way a page or a picture is drawn with characters' references and, for a
story's consistent look, with self-attention shared with a reference picture
(``storyloom.models.image.consistent_attention``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image

from storyloom.errors import InvalidInput

Position = Literal["left", "center", "right", "whole"]
COLUMN_ORDER = ("left", "center", "right")
# The soft edge between two regions, as a share of the picture's width on each side of the border.
FEATHER = 0.06
REFERENCE_KEY = "Reference"  # the PNG parameters entry naming the characters drawn with their reference pictures


@dataclass(frozen=True)
class PageCharacter:
    """A character on a picture: where it stands, its reference picture (if it has one) and that picture's
    IP-Adapter scale."""

    name: str
    position: Position
    reference: Image.Image | None
    weight: float


def character_regions(characters: Sequence[PageCharacter]) -> dict[str, tuple[float, float]]:
    """Each positioned character's column as (left, right) shares of the width: the distinct positions in use,
    left to right, split the picture evenly (two: halves, three: thirds); ``whole`` spans it all."""
    used = [position for position in COLUMN_ORDER if any(c.position == position for c in characters)]
    regions: dict[str, tuple[float, float]] = {}
    for character in characters:
        if character.position == "whole":
            regions[character.name] = (0.0, 1.0)
        else:
            column = used.index(character.position)
            regions[character.name] = (column / len(used), (column + 1) / len(used))
    return regions


def region_masks(regions: Sequence[tuple[float, float]], width: int, height: int) -> torch.Tensor:
    """Masks ``(1, len(regions), height, width)`` from 0 to 1: 1 inside a column, falling linearly to 0 across
    ``FEATHER`` of the width on each inner border (the picture's own edges stay 1)."""
    x = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    columns = []
    for left, right in regions:
        rise = torch.ones(width) if left <= 0 else ((x - left) / (2 * FEATHER) + 0.5).clamp(0, 1)
        fall = torch.ones(width) if right >= 1 else ((right - x) / (2 * FEATHER) + 0.5).clamp(0, 1)
        columns.append((rise * fall)[None, :].expand(height, width))
    return torch.stack(columns)[None]


def reference_steering(adapter: Any, characters: Sequence[PageCharacter]) -> Any:
    """The ``ImageSteering`` of the characters' reference pictures (None when none has one): one picture steering
    the whole picture when it is the only character; masked to each character's column otherwise."""
    from storyloom.models.image.image_prompt import AdapterPart, ImageSteering

    guided = [character for character in characters if character.reference is not None]
    if not guided:
        return None
    for character in guided:
        if not 0.0 <= character.weight <= 1.0:
            raise InvalidInput(f"the reference weight of {character.name} must be from 0 to 1 (got {character.weight})")
    embeds = adapter.embed_each([character.reference for character in guided])
    scales = tuple(float(character.weight) for character in guided)
    regions = character_regions(characters)
    columns = [regions[character.name] for character in guided]
    if len(guided) == 1 and columns[0] == (0.0, 1.0):
        return ImageSteering((AdapterPart(adapter, embeds, scales),))
    return ImageSteering((AdapterPart(adapter, embeds, scales, lambda w, h: region_masks(columns, w, h)),))


def character_adapter(task: Any) -> Any:
    """The character IP-Adapter for ``task``'s models, loaded once into its model cache."""
    from storyloom.models.image.image_prompt import load_image_adapter

    return load_image_adapter(task.config, task.cache, character=True)


@contextlib.contextmanager
def drawing_characters(
    task: Any,
    characters: Sequence[PageCharacter],
    *,
    shared_attention: Image.Image | None = None,
    adapter: Any = None,
) -> Iterator[None]:
    """Inside the block every call of ``task`` (``Txt2Img``, and so ``draw_page``; ``Variations``, ``Upscaler``:
    anything with ``steered_by``) is steered by the characters' reference pictures (each masked to its column
    when there are several) and, with ``shared_attention`` (a ``Txt2Img`` only), shares self-attention keys and
    values with that picture. Afterwards the UNet's own attention processors are back and the output is bit for
    bit what it was before. No reference and no shared picture: nothing changes. ``adapter``: the character
    IP-Adapter already loaded by the caller (None: loaded into ``task``'s model cache)."""
    with contextlib.ExitStack() as stack:
        if any(character.reference is not None for character in characters):
            loaded = character_adapter(task) if adapter is None else adapter
            stack.enter_context(task.steered_by(reference_steering(loaded, characters)))
        if shared_attention is not None:
            stack.enter_context(task.sharing_attention(shared_attention))
        yield
