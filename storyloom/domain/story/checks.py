"""Checking a story request before any model runs: one polite line naming the value and what is allowed.

Torch-free, so the bot refuses a bad request before it is queued and the worker checks it again the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storyloom.config import StoryConfig
from storyloom.domain.seeds import check_seed
from storyloom.domain.story.plan import Character, CharacterLookup
from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.styles import StylePreset, get_style
from storyloom.domain.story.text import letter_count
from storyloom.errors import InvalidInput

MAX_PAGES = 20
MAX_CHARACTERS = 3  # registered characters one story can have (a page draws at most three regions)


@dataclass(frozen=True)
class StoryInputs:
    summary: str
    pages: int
    style: StylePreset
    characters: tuple[Character, ...]
    seed: int | None

    @property
    def character(self) -> Character | None:
        """The first (or only) registered character."""
        return self.characters[0] if self.characters else None


def character_names(names: Any) -> list[str]:
    """The distinct, non-blank names of ``names`` (a name or a list of them), in order; more than
    ``MAX_CHARACTERS`` is refused naming the limit."""
    given = [names] if isinstance(names, str) else list(names or [])
    found: list[str] = []
    for name in given:
        if isinstance(name, str) and name.strip() and name.strip().casefold() not in {n.casefold() for n in found}:
            found.append(name.strip())
    if len(found) > MAX_CHARACTERS:
        raise InvalidInput(
            f"a story can have at most {MAX_CHARACTERS} characters; you gave {len(found)}: {', '.join(found)}"
        )
    return found


def check_story_inputs(
    settings: StoryConfig,
    screen: SafetyScreen,
    characters: CharacterLookup,
    summary: Any,
    pages: Any = None,
    style: Any = None,
    character: Any = None,
    seed: Any = None,
) -> StoryInputs:
    """Validated inputs with defaults filled in from ``settings``; ``character`` is one registered name or a
    list of up to three."""
    if not isinstance(summary, str) or not summary.strip():
        raise InvalidInput("the summary is empty; describe the story in a sentence or two")
    summary = summary.strip()
    if len(summary) > settings.max_summary_chars:
        limit = settings.max_summary_chars
        raise InvalidInput(f"the summary is {len(summary):,} characters long; the limit is {limit:,}")
    if letter_count(summary) < 3:
        raise InvalidInput("the summary has no words in it; describe the story in a sentence or two")
    pages = settings.pages if pages is None else pages
    if not isinstance(pages, int) or isinstance(pages, bool) or not 1 <= pages <= MAX_PAGES:
        raise InvalidInput(f"pages must be between 1 and {MAX_PAGES} (got {pages})")
    preset = get_style(settings.style if style is None else style)
    found = tuple(characters(name) for name in character_names(character))
    check_seed(seed)
    screen.ensure_allowed(summary)
    return StoryInputs(summary, pages, preset, found, seed)
