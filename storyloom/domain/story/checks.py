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


@dataclass(frozen=True)
class StoryInputs:
    summary: str
    pages: int
    style: StylePreset
    character: Character | None
    seed: int | None


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
    """Validated inputs with defaults filled in from ``settings``."""
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
    found = characters(character) if isinstance(character, str) and character.strip() else None
    check_seed(seed)
    screen.ensure_allowed(summary)
    return StoryInputs(summary, pages, preset, found, seed)
