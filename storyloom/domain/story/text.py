"""Plain-text helpers for stories in any script: cleaning model output, titles, sentences, languages.

No model and no torch here: these run on whatever the model wrote, including garbage, and must
never raise on it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Sentence ends that need a space after them (Latin, Cyrillic, Greek, ...).
_SPACED_ENDS = ".!?…"
# Sentence ends that do not (Chinese, Japanese; Devanagari danda; Arabic and Urdu marks).
_UNSPACED_ENDS = "。！？｡।؟۔"
_CLOSERS = "\"'”’»)]）」』》〉】"
_ENDS_AND_CLOSERS = _SPACED_ENDS + _UNSPACED_ENDS + _CLOSERS
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "mt", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e"}

_SPECIAL_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|<unk>|<pad>|\[/?INST\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd\u200b]")
_TITLE_LINE = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*)?\s*(?:title|标题|標題|题目|タイトル)\s*[:：]\s*(.+?)\s*(?:\*\*)?\s*$",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^\s*(?:full story|story|chapter \d+)\s*[:：]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Sentence:
    """A sentence and the separator that followed it in the text ("" between CJK sentences)."""

    text: str
    separator: str


def clean_model_text(text: str) -> str:
    """Model output without special tokens, control characters, markdown emphasis and stray labels."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPECIAL_TOKENS.sub("", text)
    text = _CONTROL.sub("", text)
    text = re.sub(r"\*\*|__|^#+\s*", "", text, flags=re.MULTILINE)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _LABEL.sub("", text.strip())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def extract_title(text: str) -> tuple[str | None, str]:
    """A ``Title: ...`` first line (as the chat prompt asks for) and the text without it."""
    lines = text.strip().split("\n")
    for index, line in enumerate(lines[:3]):
        match = _TITLE_LINE.match(line)
        if match:
            title = match.group(1).strip(" \"'“”「」*")
            rest = "\n".join(lines[:index] + lines[index + 1 :]).strip()
            return (title or None), rest
    return None, text.strip()


def letter_count(text: str) -> int:
    return sum(1 for char in text if unicodedata.category(char).startswith("L"))


def looks_like_text(text: str, *, min_letters: int = 3) -> bool:
    """Whether ``text`` reads like words rather than symbols or byte soup (cheap, script-neutral)."""
    visible = [char for char in text if not char.isspace()]
    letters = letter_count(text)
    if letters < min_letters or not visible:
        return False
    if letters / len(visible) < 0.6:
        return False
    words = text.split()
    if len(words) > 1:
        wordy = sum(1 for word in words if letter_count(word) >= max(1, len(word) // 2))
        return wordy / len(words) >= 0.6
    return True


def has_spaces(text: str) -> bool:
    """Whether words are separated by spaces (False for Chinese, Japanese, Thai)."""
    letters = letter_count(text)
    return letters == 0 or text.count(" ") >= letters / 25


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a text without blank lines uses single line breaks."""
    text = text.strip()
    if not text:
        return []
    parts = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text) else text.split("\n")
    return [part.strip() for part in parts if part.strip()]


def split_sentences(paragraph: str) -> list[Sentence]:
    """Sentences at ``.!?…`` followed by a space and at ``。！？`` (no space needed), closing quotes kept."""
    sentences: list[Sentence] = []
    start, index, size = 0, 0, len(paragraph)
    while index < size:
        char = paragraph[index]
        if char in _SPACED_ENDS or char in _UNSPACED_ENDS:
            end = index + 1
            while end < size and paragraph[end] in _ENDS_AND_CLOSERS:
                end += 1
            gap = end
            while gap < size and paragraph[gap].isspace():
                gap += 1
            unspaced = any(mark in _UNSPACED_ENDS for mark in paragraph[index:end])
            if (unspaced or gap > end or end == size) and not _is_abbreviation(paragraph, start, index):
                sentence = paragraph[start:end].strip()
                if sentence:
                    sentences.append(Sentence(sentence, paragraph[end:gap] and " "))
                start, index = gap, gap
                continue
            index = end
            continue
        index += 1
    if paragraph[start:].strip():
        sentences.append(Sentence(paragraph[start:].strip(), ""))
    return sentences


def _is_abbreviation(text: str, start: int, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.findall(r"[\w.]+$", text[start:dot])
    return bool(word) and (word[-1].lower() in _ABBREVIATIONS or len(word[-1]) == 1 and word[-1].isupper())


_SCRIPT_LANGUAGES = (
    # (language, direction, first code point, last code point)
    ("ja", "ltr", 0x3040, 0x30FF),  # kana: checked before Han, Japanese also uses Han
    ("ko", "ltr", 0xAC00, 0xD7AF),
    ("zh", "ltr", 0x4E00, 0x9FFF),
    ("ru", "ltr", 0x0400, 0x04FF),
    ("el", "ltr", 0x0370, 0x03FF),
    ("he", "rtl", 0x0590, 0x05FF),
    ("ar", "rtl", 0x0600, 0x06FF),
    ("hi", "ltr", 0x0900, 0x097F),
    ("th", "ltr", 0x0E00, 0x0E7F),
)


def detect_language(text: str) -> tuple[str, str]:
    """(BCP 47 language, direction) guessed from the script; Latin text is taken as English.

    Good enough for ``<html lang>`` and font choice; it cannot tell French from English."""
    counts: dict[str, int] = {}
    letters = 0
    for char in text:
        code = ord(char)
        if not unicodedata.category(char).startswith("L"):
            continue
        letters += 1
        for language, _direction, first, last in _SCRIPT_LANGUAGES:
            if first <= code <= last:
                counts[language] = counts.get(language, 0) + 1
                break
    if not letters:
        return "en", "ltr"
    if counts.get("ja", 0) >= 0.1 * letters:
        return "ja", "ltr"
    best = max(counts, key=lambda language: counts[language], default=None)
    if best is None or counts[best] < 0.3 * letters:
        return "en", "ltr"
    direction = next(d for language, d, _first, _last in _SCRIPT_LANGUAGES if language == best)
    return best, direction


def shorten(text: str, max_chars: int) -> str:
    """``text`` cut at a word (or, without spaces, a character) boundary, with an ellipsis when cut."""
    text = " ".join(text.split()) if has_spaces(text) else "".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if has_spaces(cut) and " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:，、") + "…"
