"""Checking a story request before any model runs, and accepting (or not) what the model wrote.

Bad input gets one polite line naming the value and what is allowed. Bad output is retried once with
another seed; a model that writes nothing usable twice gets a clear failure, never a crash and never
a book of blank pages. Garbage that is at least text still becomes a book (the planner falls back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storyloom.config import StoryConfig
from storyloom.errors import InvalidInput, StoryloomError
from storyloom.models.progress import CancelCheck, ProgressCallback
from storyloom.models.story_plan import MAX_SEED, Character, CharacterLookup
from storyloom.models.story_safety import SafetyScreen
from storyloom.models.story_styles import StylePreset, get_style
from storyloom.models.story_text import (
    clean_model_text,
    extract_title,
    letter_count,
    looks_like_text,
    paragraphs,
    shorten,
    split_sentences,
)
from storyloom.models.story_writer import LanguageModel, TextRequest

MAX_PAGES = 20
MAX_TITLE_CHARS = 80
# A story needs at least this many letters (and one per page) to be worth a book.
MIN_STORY_LETTERS = 20
# When generation hit the token limit, drop the unfinished last sentence if that keeps this much text.
_KEEP_WHEN_CUT = 0.7


class StoryFailed(StoryloomError):
    """The model did not write a usable story (empty, too short or unsuitable), even after a retry."""


@dataclass(frozen=True)
class StoryInputs:
    summary: str
    pages: int
    style: StylePreset
    character: Character | None
    seed: int | None


@dataclass(frozen=True)
class WrittenText:
    title: str | None
    body: str
    notes: list[str] = field(default_factory=list)


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
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise InvalidInput(f"seed must be a whole number between 0 and {MAX_SEED} (got {seed})")
    screen.ensure_allowed(summary)
    return StoryInputs(summary, pages, preset, found, seed)


def write_text(
    lm: LanguageModel,
    screen: SafetyScreen,
    request: TextRequest,
    pages: int,
    *,
    seed: int,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    attempts: int = 2,
) -> WrittenText:
    """Generate, clean and accept a story text; retry with the next seed when it is empty or unsuitable."""
    problem = ""
    for attempt in range(attempts):
        generation = lm.generate(request, seed=seed + attempt, progress=progress, should_cancel=should_cancel)
        title, body = extract_title(clean_model_text(generation.text))
        if letter_count(body) < max(MIN_STORY_LETTERS, pages):
            problem = "returned no story text" if not body.strip() else "returned too little text"
            continue
        verdict = screen.check(f"{title or ''}\n{body}")
        if not verdict.allowed:
            problem = "wrote something unsuitable for children"
            continue
        notes = [] if attempt == 0 else [f"the first attempt {problem}; the second was used"]
        if generation.finish_reason == "length":
            cut = _drop_unfinished_sentence(body)
            ending = "was cut at its last full sentence" if cut != body else "may end mid-sentence"
            notes.append(f"the story reached story.max_new_tokens and {ending}")
            body = cut
        return WrittenText(title, body, notes)
    raise StoryFailed(f"The story model {problem} ({attempts} tries). Please try again, or change the summary.")


def accept_title(screen: SafetyScreen, *candidates: str | None) -> str | None:
    """The first candidate title that reads like text and is suitable, shortened; None if none is."""
    for candidate in candidates:
        if candidate and looks_like_text(candidate, min_letters=2) and screen.check(candidate).allowed:
            return shorten(candidate, MAX_TITLE_CHARS)
    return None


def fallback_title(summary: str) -> str:
    """A title from the summary's first sentence, when the model gave none."""
    first = next((s.text for p in paragraphs(summary) for s in split_sentences(p)), summary)
    title = shorten(first, 60).rstrip(".!?。！？…")
    return title[:1].upper() + title[1:] if title else "A Story"


def _drop_unfinished_sentence(body: str) -> str:
    ends = [body.rfind(mark) for mark in ".!?。！？…\"”"]
    cut = max(ends)
    if cut >= 0 and cut + 1 >= _KEEP_WHEN_CUT * len(body):
        return body[: cut + 1].rstrip()
    return body
