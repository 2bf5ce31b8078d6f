"""Deterministic fallbacks for when the model gives no usable plan: who is in the story, what a page shows.

Built from the text alone, with no randomness: the same story always gets the same cast and the same
scenes, and a character's look, once chosen, is the same on every page.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from storyloom.domain.story.plan import CastMember
from storyloom.domain.story.scenes import place_characters
from storyloom.domain.story.text import has_spaces, looks_like_text, shorten, split_sentences

MAX_GUESSED_CAST = 3
MAX_FALLBACK_SCENE_CHARS = 160

_NAMED = re.compile(r"\b(?:a|an|the)\s+((?:[a-z]+\s+){0,3}?[a-z]+)\s*,?\s+(?:named|called)\s+([A-Z][\w'-]+)")
_NAMED_ZH = re.compile(r"(?:名叫|叫做|叫)([\u4e00-\u9fff]{1,3})的([\u4e00-\u9fff]{1,6})")
_CAPITALIZED = re.compile(r"\b[A-Z][a-z]{2,}\b")
_NOT_NAMES = {
    "The",
    "Once",
    "One",
    "Then",
    "When",
    "They",
    "She",
    "Her",
    "His",
    "And",
    "But",
    "Every",
    "After",
    "Before",
    "Soon",
    "There",
    "This",
    "That",
    "What",
    "Where",
    "Why",
    "How",
    "Title",
    "Page",
    "Chapter",
    "End",
    "Finally",
    "Suddenly",
    "Together",
    "Yes",
    "Hello",
    "Thank",
    "Good",
    "Morning",
    "Night",
    "Monday",
    "Sunday",
}
_COLOURS = ("red", "blue", "yellow", "green", "orange", "purple", "pink", "teal")
_ITEMS = ("scarf", "hat", "backpack", "bow", "vest", "boots")
_QUOTE_MARKS = '"“”«»「」『』'


def guess_cast(text: str, summary: str = "") -> list[CastMember]:
    """Main characters found in the summary and text: "a little cat named Bhna" patterns first, then
    capitalised names used more than once; each gets a fixed look derived from the name."""
    found: dict[str, str] = {}
    for source in (summary, text):
        for kind, name in _NAMED.findall(source):
            found.setdefault(name, f"a {kind.strip()}")
        for name, kind in _NAMED_ZH.findall(source):
            found.setdefault(name, kind)
    counts: Counter[str] = Counter(word for source in (summary, text) for word in _CAPITALIZED.findall(source))
    # A capitalised word that also appears in lower case ("The"/"the") starts sentences; it is no name.
    lower = set(re.findall(r"\b[a-z]{3,}\b", f"{summary}\n{text}"))
    for word, count in counts.most_common():
        if count >= 2 and word.lower() not in lower and word not in _NOT_NAMES:
            found.setdefault(word, "a friendly storybook character")
    cast = []
    for name, kind in list(found.items())[:MAX_GUESSED_CAST]:
        cast.append(CastMember(name=name, description=f"{kind}, {_signature_look(name)}"))
    return cast


def _signature_look(name: str) -> str:
    """A look that depends only on the name, so every page draws the same character."""
    digest = hashlib.sha256(name.lower().encode()).digest()
    return f"wearing a {_COLOURS[digest[0] % len(_COLOURS)]} {_ITEMS[digest[1] % len(_ITEMS)]}"


def mentioned(name: str, text: str) -> bool:
    """Whether ``name`` occurs in ``text`` as a word (or, in scripts without spaces, at all)."""
    return _mention(name, text) is not None


def first_mention(name: str, text: str) -> int:
    """Where ``name`` first occurs in ``text`` as a word (``len(text)`` when it does not)."""
    found = _mention(name, text)
    return len(text) if found is None else found


def _mention(name: str, text: str) -> int | None:
    """Where ``name`` first occurs in ``text``: as a word, or in scripts without spaces anywhere; None if not."""
    if not name:
        return None
    if not has_spaces(name + " " + text[:200]) or not name.isascii():
        found = text.lower().find(name.lower())
        return found if found >= 0 else None
    match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE)
    return match.start() if match else None


def fallback_positions(names: list[str], text: str) -> dict[str, str]:
    """Where the page's characters stand, read from the text: the first one mentioned stands on the left (as a
    reader meets them), the next on the right (or in the middle when there are three)."""
    return place_characters(sorted(names, key=lambda name: first_mention(name, text)))


def fallback_scene(text: str, summary: str = "") -> str:
    """A scene from the page itself: its first sentence that reads like text, without dialogue marks."""
    for sentence in split_sentences(" ".join(text.split()) if has_spaces(text) else text.replace("\n", "")):
        candidate = sentence.text.translate({ord(mark): None for mark in _QUOTE_MARKS}).strip()
        if looks_like_text(candidate, min_letters=8):
            return shorten(candidate, MAX_FALLBACK_SCENE_CHARS)
    if summary.strip():
        return "a gentle scene from the story: " + shorten(summary, MAX_FALLBACK_SCENE_CHARS - 32)
    return "a cozy, friendly scene from a children's story"
