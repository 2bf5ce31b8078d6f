"""Every prompt the story engine sends, in one place.

Two formats for writing: ``chat`` (the model's chat template with a kid-safe storyteller system
prompt) and ``storyteller`` (the plain template a story LoRA from ``storyloom train-story`` is trained
on; it must stay byte-for-byte what training used, and the model ends its story with ``END``).
Planning and synopses always use the chat format on the base model: that is not what the LoRA learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storyloom.models.story.writer import TextRequest

STORYTELLER_TEMPLATE = (
    "You are a storyteller. Given a summary of a children's story, generate the full story. Make sure your "
    "story follows the same plot points of the summary and expands on each point. Make sure your story has a "
    "clear beginning, multiple plot points that build on each other, and a clear ending. \n Summary: {summary} "
    "END \n Full story:"
)
STORYTELLER_STOP = "END"

STORYTELLER_SYSTEM_PROMPT = (
    "You are a warm, gentle storyteller who writes picture-book stories for children aged 4 to 8. "
    "Your stories are always safe for children: no violence, no gore, no weapons, nothing frightening, "
    "no romance or adult content, no bad words. Problems are small and are solved with kindness, "
    "courage, cleverness or friendship, and every story has a gentle, happy ending. Use simple words "
    "and short sentences. Write in the same language as the summary."
)

PLANNER_SYSTEM_PROMPT = (
    "You plan the illustrations of a children's picture book. You answer with one JSON object and "
    "nothing else: no explanations, no code fences."
)


@dataclass(frozen=True)
class CastHint:
    """A character the story must use, as the prompts describe it (a registered character)."""

    name: str
    description: str


def story_request(
    summary: str,
    *,
    prompt_format: str,
    pages: int,
    max_new_tokens: int,
    character: CastHint | None = None,
    characters: Sequence[CastHint] = (),
) -> TextRequest:
    """The request that writes a new story from ``summary`` with its registered ``characters`` (or the one
    ``character``)."""
    cast = list(characters) or ([character] if character is not None else [])
    if prompt_format == "storyteller":
        text = summary.strip()
        if cast:
            text = f"{text} {_main_characters(cast)}."
        return TextRequest(STORYTELLER_TEMPLATE.format(summary=text), chat=False, stop=(STORYTELLER_STOP,))
    words = _word_budget(max_new_tokens)
    lines = [
        "Write a children's story from this summary.",
        "",
        f"Summary: {summary.strip()}",
        "",
        "Begin with one line `Title: <a short title>`. Then write the story in "
        f"{pages} to {pages + 2} short paragraphs, about {words} words in all, with a clear beginning, "
        "plot points that build on each other, and a gentle, clear ending.",
    ]
    if cast:
        names = " and ".join(hint.name for hint in cast)
        lines.append(f"{_main_characters(cast)}; call them {names}.")
    lines.append("Write only the title and the story.")
    return TextRequest("\n".join(lines), system=STORYTELLER_SYSTEM_PROMPT)


def _main_characters(cast: Sequence[CastHint]) -> str:
    described = "; ".join(f"{hint.name}, {hint.description}" for hint in cast)
    return f"The main character is {described}" if len(cast) == 1 else f"The main characters are {described}"


def continuation_request(
    *,
    prompt_format: str,
    title: str,
    summary: str,
    memory_label: str,
    memory: str,
    recent: str,
    chapter: int,
    hint: str,
    pages: int,
    max_new_tokens: int,
) -> TextRequest:
    """The request that writes chapter ``chapter`` from the story's summary, its memory and the last pages."""
    goal = hint.strip() or "a new gentle adventure for the same characters"
    if prompt_format == "storyteller":
        parts = [f'Chapter {chapter} of "{title}": {goal}.', f"The story: {summary.strip()}"]
        if memory:
            parts.append(f"{memory_label}: {memory}")
        if recent:
            parts.append(f"The previous chapter ended: {recent}")
        return TextRequest(STORYTELLER_TEMPLATE.format(summary=" ".join(parts)), chat=False, stop=(STORYTELLER_STOP,))
    lines = [f'We are writing a children\'s story called "{title}".', "", f"Summary of the story: {summary.strip()}"]
    lines.append("")
    if memory:
        lines += [f"{memory_label}:", memory, ""]
    if recent:
        lines += ["The last pages of the previous chapter:", recent, ""]
    lines.append(
        f"Write chapter {chapter}: {goal}. Keep the same characters and the same world, and do not retell "
        f"what already happened. Begin with one line `Title: <chapter title>`, then {pages} to {pages + 2} short "
        f"paragraphs, about {_word_budget(max_new_tokens)} words in all, ending gently."
    )
    return TextRequest("\n".join(lines), system=STORYTELLER_SYSTEM_PROMPT)


def plan_request(
    pages: list[str], *, known_cast: list[CastHint], max_new_tokens: int, temperature: float, max_page_chars: int = 600
) -> TextRequest:
    """Ask for title, cast sheet and one scene per page as JSON (base model, low temperature)."""
    numbered = "\n".join(f"Page {index}: {_clip(text, max_page_chars)}" for index, text in enumerate(pages, start=1))
    lines = [
        f"Here is a children's story in {len(pages)} pages.",
        "",
        numbered,
        "",
        "Return one JSON object with these keys:",
        '{"title": "a short title",',
        ' "characters": [{"name": "Name", "description": "fixed look: species or kind, age, colours, clothes"}],',
        ' "pages": [{"page": 1, "scene": "what the picture shows, in English, at most 30 words",',
        '            "characters": [{"name": "Name", "position": "left"}]}]}',
        f"List each main character once (at most 4). Give exactly {len(pages)} pages, numbered 1 to {len(pages)}.",
        "A picture shows at most 3 characters; when it shows several, give each a position: left, center or right.",
    ]
    if known_cast:
        known = "; ".join(f"{hint.name}: {hint.description}" for hint in known_cast)
        lines.append(f"These characters already have a fixed look, keep their names as they are: {known}.")
    return TextRequest(
        "\n".join(lines),
        system=PLANNER_SYSTEM_PROMPT,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        use_adapter=False,
    )


def synopsis_request(chapter_text: str, *, max_new_tokens: int = 160) -> TextRequest:
    """Ask for a two- or three-sentence synopsis of one chapter (the running memory)."""
    prompt = (
        "Summarize this chapter of a children's story in two or three sentences. Name the characters and "
        "say where the chapter ends. Write in the language of the chapter and write only the summary.\n\n"
        f"{chapter_text.strip()}"
    )
    return TextRequest(
        prompt, system=STORYTELLER_SYSTEM_PROMPT, max_new_tokens=max_new_tokens, temperature=0.3, use_adapter=False
    )


def _word_budget(max_new_tokens: int) -> int:
    """Roughly how many words fit in the token budget, leaving room for the title and a clean ending."""
    return max(40, min(700, int(max_new_tokens * 0.55) // 10 * 10))


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split()) if " " in text else text.replace("\n", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"
