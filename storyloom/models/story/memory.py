"""Continuation memory: what the model is told about earlier chapters, trimmed to its context window.

Two memories, chosen by ``story.memory``:

- ``summary``: a running synopsis (two or three sentences per chapter, written by the model right after
  each chapter) plus the last ``recent_pages`` pages word for word. The prompt stays short however long
  the book grows, at the price of one extra model call per chapter and details the synopsis left out.
- ``full``: every earlier chapter word for word. Most faithful while it fits; once it does not, the
  oldest text is cut first, so a long book forgets its beginning entirely.

Either way the prompt is measured with the real tokenizer (chat template included) and trimmed until
prompt + answer fit the context window: memory first (oldest first), then the recent pages, then the
summary; the answer's room is reserved before anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from storyloom.domain.story.plan import StoryPlan
from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.text import clean_model_text, looks_like_text, paragraphs, shorten, split_sentences
from storyloom.errors import InvalidInput
from storyloom.models.story.prompts import continuation_request, synopsis_request
from storyloom.models.story.writer import LanguageModel, TextRequest

# Pieces longer than this are cut into chunks so trimming can keep part of them.
_MAX_PIECE_CHARS = 200
MAX_SYNOPSIS_CHARS = 600

Side = Literal["front", "back"]  # which end of a part is dropped first


@dataclass(frozen=True)
class FittedRequest:
    """A request that fits the context window with room for its answer."""

    request: TextRequest
    prompt_tokens: int
    answer_tokens: int
    trimmed: tuple[str, ...]


def answer_room(lm: LanguageModel, max_new_tokens: int) -> int:
    """Tokens reserved for the answer: as configured, but never more than half the window."""
    return max(16, min(max_new_tokens, lm.context_window // 2))


def fit_request(
    lm: LanguageModel,
    render: Callable[[dict[str, str]], TextRequest],
    parts: dict[str, str],
    trim_order: list[tuple[str, Side]],
    answer_tokens: int,
) -> FittedRequest:
    """Render ``parts`` and trim them, in ``trim_order``, until prompt + ``answer_tokens`` fit the window."""
    budget = lm.context_window - answer_tokens
    parts = dict(parts)
    trimmed: list[str] = []

    def measure(values: dict[str, str]) -> int:
        return lm.prompt_tokens(render(values))

    tokens = measure(parts)
    for name, side in trim_order:
        if tokens <= budget:
            break
        pieces = _pieces(parts[name])
        trimmed.append(name)
        # Binary search for the most pieces that still fit (fewer pieces never need more tokens).
        low, high = 0, len(pieces)
        while low < high:
            keep = (low + high + 1) // 2
            candidate = dict(parts, **{name: _keep(pieces, keep, side)})
            if measure(candidate) <= budget:
                low = keep
            else:
                high = keep - 1
        parts[name] = _keep(pieces, low, side)
        tokens = measure(parts)
    if tokens > budget:
        raise InvalidInput(
            f"the prompt needs {tokens} tokens but only {budget} fit beside the answer in the story model's "
            f"context of {lm.context_window} tokens; raise story.context_tokens or lower story.max_new_tokens"
        )
    request = replace(render(parts), max_new_tokens=answer_tokens)
    return FittedRequest(request, tokens, answer_tokens, tuple(trimmed))


def continuation(
    plan: StoryPlan,
    lm: LanguageModel,
    *,
    memory: Literal["summary", "full"],
    prompt_format: str,
    recent_pages: int,
    pages: int,
    max_new_tokens: int,
    hint: str = "",
) -> FittedRequest:
    """The request that writes the next chapter of ``plan``, fitted to ``lm``'s context window."""
    if memory == "full":
        label = "The story so far"
        remembered = "\n\n".join(f"Chapter {c.number}: {c.title}\n{c.text}" for c in plan.chapters)
        recent = ""  # already the end of the full text
    else:
        label = "Earlier chapters in short"
        remembered = plan.synopsis
        last_chapter = plan.chapters[-1].number if plan.chapters else 0
        last_pages = [page.text for page in plan.pages if page.chapter == last_chapter]
        recent = "\n\n".join(last_pages[-recent_pages:]) if recent_pages else ""
    answer = answer_room(lm, max_new_tokens)
    chapter = len(plan.chapters) + 1

    def render(values: dict[str, str]) -> TextRequest:
        return continuation_request(
            prompt_format=prompt_format,
            title=plan.title,
            summary=values["summary"],
            memory_label=label,
            memory=values["memory"],
            recent=values["recent"],
            chapter=chapter,
            hint=values["hint"],
            pages=pages,
            max_new_tokens=answer,
        )

    parts = {"summary": plan.summary, "memory": remembered, "recent": recent, "hint": hint}
    order: list[tuple[str, Side]] = [("memory", "front"), ("recent", "front"), ("summary", "back"), ("hint", "back")]
    return fit_request(lm, render, parts, order, answer)


def chapter_synopsis(lm: LanguageModel, chapter_text: str, *, seed: int, screen: SafetyScreen | None = None) -> str:
    """Two or three sentences about a chapter, for the running memory; extractive when the model fails."""
    screen = screen or SafetyScreen()
    answer = answer_room(lm, 160)
    try:
        fitted = fit_request(lm, _synopsis_render, {"text": chapter_text}, [("text", "front")], answer)
        text = clean_model_text(lm.generate(fitted.request, seed=seed).text)
    except InvalidInput:
        text = ""
    if looks_like_text(text, min_letters=12) and screen.check(text).allowed:
        return shorten(" ".join(text.split()), MAX_SYNOPSIS_CHARS)
    return extractive_synopsis(chapter_text)


def _synopsis_render(values: dict[str, str]) -> TextRequest:
    return synopsis_request(values["text"])


def extractive_synopsis(chapter_text: str) -> str:
    """The chapter's first and last sentences: crude, but it never invents anything."""
    sentences = [s.text for paragraph in paragraphs(chapter_text) for s in split_sentences(paragraph)]
    if not sentences:
        return ""
    chosen = sentences[:1] + sentences[-1:] if len(sentences) > 1 else sentences
    return shorten(" ".join(chosen), MAX_SYNOPSIS_CHARS)


def _pieces(text: str) -> list[str]:
    """``text`` as sentences (paragraph breaks kept), long ones cut into chunks."""
    pieces: list[str] = []
    for paragraph in paragraphs(text):
        sentences = split_sentences(paragraph)
        for index, sentence in enumerate(sentences):
            tail = "\n\n" if index == len(sentences) - 1 else sentence.separator
            body = sentence.text
            while len(body) > _MAX_PIECE_CHARS:
                pieces.append(body[:_MAX_PIECE_CHARS])
                body = body[_MAX_PIECE_CHARS:]
            pieces.append(body + tail)
    return pieces


def _keep(pieces: list[str], count: int, side: Side) -> str:
    if count <= 0:
        return ""
    kept = pieces[-count:] if side == "front" else pieces[:count]
    text = "".join(kept).strip()
    if count < len(pieces):
        text = f"… {text}" if side == "front" else f"{text} …"
    return text
