"""Writing a story's text and accepting (or not) what the model wrote.

Bad output is retried once with another seed; a model that writes nothing usable twice gets a clear failure,
never a crash and never a book of blank pages. Garbage that is at least text still becomes a book (the
planner falls back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.text import (
    clean_model_text,
    extract_title,
    letter_count,
    looks_like_text,
    paragraphs,
    shorten,
    split_sentences,
)
from storyloom.errors import StoryloomError
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback
from storyloom.models.story.writer import LanguageModel, TextRequest

MAX_TITLE_CHARS = 80
# A story needs at least this many letters (and one per page) to be worth a book.
MIN_STORY_LETTERS = 20
# When generation hit the token limit, drop the unfinished last sentence if that keeps this much text.
_KEEP_WHEN_CUT = 0.7


class StoryFailed(StoryloomError):
    """The model did not write a usable story (empty, too short or unsuitable), even after a retry."""


@dataclass(frozen=True)
class WrittenText:
    title: str | None
    body: str
    notes: list[str] = field(default_factory=list)


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
    ends = [body.rfind(mark) for mark in '.!?。！？…"”']
    cut = max(ends)
    if cut >= 0 and cut + 1 >= _KEEP_WHEN_CUT * len(body):
        return body[: cut + 1].rstrip()
    return body
