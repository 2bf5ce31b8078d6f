"""A page's picture as words: who is in the scene, where each one stands, and the prompt that draws it.

One home for the page prompt, so the planner's pages and an edited page (✏️ Edit, rebuilt from its new scene)
are written the same way. Torch-free: the bot rebuilds an edited page's prompt before queueing its redraw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from storyloom.domain.story.plan import CastMember, PagePlan
from storyloom.domain.story.styles import StylePreset, get_style
from storyloom.domain.story.text import shorten

MAX_SCENE_CHARS = 240
MAX_PROMPT_CHARS = 900
MAX_PAGE_CHARACTERS = 3  # the picture's regions: left, center, right

Position = Literal["left", "center", "right"]
POSITIONS: tuple[Position, ...] = ("left", "center", "right")
# Where several characters stand when nothing else is known: two share the picture, a third takes the middle.
_LAYOUTS: dict[int, tuple[Position, ...]] = {2: ("left", "right"), 3: ("left", "center", "right")}
_SPOKEN = {"left": "on the left", "center": "in the middle", "right": "on the right"}


def place_characters(names: Sequence[str], hints: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each of ``names`` (at most three) stands: name -> left/center/right. One character (or none) stands
    nowhere in particular (an empty mapping: the whole picture is theirs, as a page always was). ``hints`` (the
    planner's answer) are kept where they are valid and distinct; the others fill the free places in order."""
    names = list(names)[:MAX_PAGE_CHARACTERS]
    if len(names) < 2:
        return {}
    hinted = {name.lower(): str(place).strip().lower() for name, place in (hints or {}).items()}
    hinted = {name: "center" if place in ("centre", "middle") else place for name, place in hinted.items()}
    places: dict[str, str] = {}
    for name in names:
        place = hinted.get(name.lower())
        if place in POSITIONS and place not in places.values():
            places[name] = place
    free = [place for place in _LAYOUTS[len(names)] if place not in places.values()]
    free += [place for place in POSITIONS if place not in free and place not in places.values()]
    for name in names:
        if name not in places:
            places[name] = free.pop(0)
    return {name: places[name] for name in names}


def compose_prompt(
    style: StylePreset, scene: str, members: Sequence[CastMember], positions: Mapping[str, str] | None = None
) -> str:
    """The illustration prompt: the scene, the fixed look of everyone in it (and where each stands when there
    are several), in the story's style.

    Story text never carries prompt syntax: brackets (emphasis) and ``BREAK`` are taken out of the scene and
    descriptions, so only the emphasis added here for trained characters applies."""
    scene = shorten(prompt_safe(scene), MAX_SCENE_CHARS).rstrip(". ")
    positions = positions or {}
    described = []
    for member in members:
        cleaned = member.model_copy(
            update={"name": prompt_safe(member.name), "description": prompt_safe(member.description)}
        )
        place = _SPOKEN.get(positions.get(member.name, ""))
        described.append(f"{cleaned.prompt_text()} {place}" if place else cleaned.prompt_text())
    cast = "; ".join(described)
    subject = f"{scene}, {cast}" if cast else scene
    return style.apply(shorten(subject, MAX_PROMPT_CHARS) if len(subject) > MAX_PROMPT_CHARS else subject)


PORTRAIT_SCENE = "a portrait of one character standing, facing the viewer, full body, plain light background"


def portrait_prompt(style: StylePreset, member: CastMember) -> str:
    """The prompt of ``member``'s portrait on the cast card: their fixed look alone, in the story's style."""
    return compose_prompt(style, PORTRAIT_SCENE, [member])


def page_prompt(style_name: str, cast: Sequence[CastMember], page: PagePlan, scene: str) -> str:
    """``page``'s prompt for ``scene``, with the page's characters and places (an edited scene is drawn so)."""
    by_name = {member.name: member for member in cast}
    members = [by_name[name] for name in page.characters if name in by_name]
    return compose_prompt(get_style(style_name), scene, members, page.positions)


def prompt_safe(text: str) -> str:
    """``text`` without the characters and words that mean something to the prompt parser."""
    text = re.sub(r"[()\[\]{}<>\\|]", " ", text)
    text = re.sub(r"\bBREAK\b", "break", text)
    return " ".join(text.split())
