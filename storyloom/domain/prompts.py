"""AUTOMATIC1111 prompt emphasis, validated and translated for compel (``models.image.conditioning`` encodes it).

Users write prompts the way every SD web UI taught them: ``(x)`` ×1.1, ``((x))`` ×1.21, ``(x:1.3)``,
``[x]`` ÷1.1, ``\\(`` for a literal bracket, ``BREAK`` to start a new 77-token chunk. compel has its own
syntax and reads none of this (``((cat))`` stays at weight 1.0 and ``(cat:1.3)`` becomes the text
"cat:1 . 3"), so the prompt is parsed here into weighted chunks and re-written in compel's form
``(text)1.21`` (``to_compel``). compel then does the actual weighting and the chunking of prompts longer than
77 tokens; the encoder hands compel the parsed fragments directly (``to_conjunction``), which is what compel's
own parser would make of the translated string, minus its cost.

Parsing and validation import neither torch nor compel, so the bot can reject a bad prompt immediately.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from storyloom.errors import InvalidInput

MIN_WEIGHT = 0.0
MAX_WEIGHT = 3.0
ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1

# ":1.3)" closing a round bracket; exponents, inf and nan are matched too so they can be rejected clearly.
_WEIGHT_RE = re.compile(r":\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))\s*\)", re.IGNORECASE)
_BREAK_RE = re.compile(r"\s*\bBREAK\b\s*")
_ESCAPABLE = "()[]\\"
_CLOSING = {")": "(", "]": "["}

# Characters compel treats as syntax inside a weighted group. "(", ")" and '"' can be escaped there;
# the others cannot be carried inside a group, so they are written between groups at weight 1.
_COMPEL_ESCAPES = {"(": "\\(", ")": "\\)", '"': '\\"'}
_COMPEL_SYNTAX = set('()",.+-=\\')


@dataclass(frozen=True)
class PromptChunk:
    """A run of prompt text and the attention weight A1111 semantics give it."""

    text: str
    weight: float = 1.0


# A1111 represents BREAK as its own chunk; so do we (it never reaches compel as text).
BREAK = PromptChunk("BREAK", -1.0)


def validate_prompt(
    prompt: str, *, max_chars: int, name: str = "prompt", allow_empty: bool = False
) -> list[PromptChunk]:
    """Check length and emptiness, then parse; every problem is an ``InvalidInput`` naming what is allowed."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"{name} must be text")
    if not allow_empty and not prompt.strip():
        raise InvalidInput(f"{name} is empty: describe what to draw")
    if len(prompt) > max_chars:
        raise InvalidInput(f"{name} is {len(prompt):,} characters long; the limit is {max_chars:,} characters")
    return parse_emphasis(prompt, name=name)


def parse_emphasis(prompt: str, *, name: str = "prompt") -> list[PromptChunk]:
    """Parse A1111 emphasis into weighted chunks (``BREAK`` entries mark chunk boundaries).

    Unlike A1111, which silently guesses, unbalanced or mismatched brackets and absurd weights are errors:
    a user who typed ``(((cat`` should learn that the weight never applied.
    """
    chunks: list[list[Any]] = []  # [text, weight] pairs, mutated as brackets close
    open_brackets: list[tuple[str, int, int]] = []  # (bracket, position, first chunk index)
    text: list[str] = []

    def flush() -> None:
        if text:
            _append_text(chunks, "".join(text))
            text.clear()

    def close(factor: float) -> None:
        flush()
        _bracket, _position, start = open_brackets.pop()
        for chunk in chunks[start:]:
            if chunk[1] >= 0:
                chunk[1] *= factor

    index = 0
    while index < len(prompt):
        char = prompt[index]
        if char == "\\" and index + 1 < len(prompt) and prompt[index + 1] in _ESCAPABLE:
            text.append(prompt[index + 1])
            index += 2
            continue
        if char in "([":
            flush()
            open_brackets.append((char, index, len(chunks)))
        elif (
            char == ":" and open_brackets and open_brackets[-1][0] == "(" and (match := _WEIGHT_RE.match(prompt, index))
        ):
            weight = _explicit_weight(match.group(1), prompt, open_brackets[-1][1], match.end(), name)
            close(weight)
            index = match.end()
            continue
        elif char in _CLOSING:
            _check_closing(char, index, open_brackets, name)
            close(ROUND_FACTOR if char == ")" else SQUARE_FACTOR)
        else:
            text.append(char)
        index += 1
    flush()
    if open_brackets:
        bracket, position, _start = open_brackets[0]
        closing = ")" if bracket == "(" else "]"
        count = f"{len(open_brackets)} brackets are" if len(open_brackets) > 1 else "a bracket is"
        raise InvalidInput(
            f"unbalanced brackets in {name}: {count} never closed, the first '{bracket}' at position {position + 1} "
            f"(add '{closing}', or write \\{bracket} for a literal bracket)"
        )
    result = _merge([PromptChunk(t, w) for t, w in chunks if t])
    for chunk in result:
        if chunk != BREAK and not MIN_WEIGHT <= chunk.weight <= MAX_WEIGHT:
            raise InvalidInput(
                f"the weight of {chunk.text.strip()[:40]!r} in {name} comes to {chunk.weight:.3g} "
                f"(too many nested brackets); weights must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}"
            )
    return result


def _append_text(chunks: list[list[Any]], raw: str) -> None:
    parts = _BREAK_RE.split(raw)
    for number, part in enumerate(parts):
        if number:
            chunks.append([BREAK.text, BREAK.weight])
        if part:
            chunks.append([part, 1.0])


def _explicit_weight(raw: str, prompt: str, start: int, end: int, name: str) -> float:
    weight = float(raw)
    if not math.isfinite(weight) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        snippet = prompt[start:end]
        if len(snippet) > 40:
            snippet = snippet[:37] + "..."
        raise InvalidInput(
            f"weight {raw} in {snippet!r} ({name}) is not allowed; "
            f"use a number between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, "
            "for example (cat:1.3)"
        )
    return weight


def _check_closing(char: str, index: int, open_brackets: list[tuple[str, int, int]], name: str) -> None:
    wanted = _CLOSING[char]
    if not open_brackets:
        raise InvalidInput(
            f"unbalanced brackets in {name}: '{char}' at position {index + 1} has no matching '{wanted}' "
            f"(write \\{char} for a literal bracket)"
        )
    opener, position, _start = open_brackets[-1]
    if opener != wanted:
        raise InvalidInput(
            f"unbalanced brackets in {name}: '{char}' at position {index + 1} does not close "
            f"'{opener}' at position {position + 1}"
        )


def _merge(chunks: list[PromptChunk]) -> list[PromptChunk]:
    """Join neighbours of equal weight, as A1111 does, so ``a (b) c`` gives three chunks, not more."""
    merged: list[PromptChunk] = []
    for chunk in chunks:
        if merged and chunk != BREAK and merged[-1] != BREAK and merged[-1].weight == chunk.weight:
            merged[-1] = PromptChunk(merged[-1].text + chunk.text, chunk.weight)
        elif chunk == BREAK:
            merged.append(BREAK)
        else:
            merged.append(chunk)
    return merged


def split_breaks(chunks: list[PromptChunk]) -> list[list[PromptChunk]]:
    """The chunks between ``BREAK``s; each part is encoded on its own and the parts are concatenated."""
    parts: list[list[PromptChunk]] = [[]]
    for chunk in chunks:
        if chunk == BREAK:
            parts.append([])
        else:
            parts[-1].append(chunk)
    return [part for part in parts if any(c.text.strip() for c in part)] or [[]]


def to_compel(chunks: list[PromptChunk]) -> str:
    """Write weighted chunks (one BREAK part) in compel syntax: ``(a red cat)1.21 (on a mat)``.

    Every chunk becomes a parenthesised group so compel's own operators (``.and()``, ``cat+``, ``withLora(``)
    can never be triggered by user text. compel cannot carry ``=``, ``\\`` or a ``+``/``-`` that ends a word
    inside a group; those characters are written between groups, at weight 1. CLIP's tokenizer splits
    punctuation from words anyway, so the extra spaces this introduces do not change the tokens.
    """
    pieces: list[str] = []
    for chunk in chunks:
        if chunk == BREAK:
            raise ValueError("split the chunks at BREAK before translating them")
        for safe, segment in _segments(chunk.text):
            if not safe:
                pieces.append(segment)
                continue
            escaped = "".join(_COMPEL_ESCAPES.get(c, c) for c in segment.strip())
            if escaped:
                pieces.append(f"({escaped})" if chunk.weight == 1.0 else f"({escaped}){_format_weight(chunk.weight)}")
    return " ".join(pieces)


def compel_prompts(prompt: str) -> list[str]:
    """The compel strings for one A1111 prompt: one per ``BREAK`` part (usually one)."""
    return [to_compel(part) for part in split_breaks(parse_emphasis(prompt))]


def _segments(text: str) -> list[tuple[bool, str]]:
    """Split text into (safe, segment): unsafe segments are single characters compel cannot hold in a group."""
    out: list[tuple[bool, str]] = []
    current: list[str] = []
    for position, char in enumerate(text):
        if _unsafe_in_group(text, position):
            if current:
                out.append((True, "".join(current)))
                current = []
            out.append((False, char))
        else:
            current.append(char)
    if current:
        out.append((True, "".join(current)))
    return out


def _unsafe_in_group(text: str, position: int) -> bool:
    char = text[position]
    if char in "=\\":
        return True
    if char in "+-":
        following = text[position + 1] if position + 1 < len(text) else ""
        return not following or following.isspace() or following in _COMPEL_SYNTAX
    return False


def _format_weight(weight: float) -> str:
    """Plain decimal (compel's grammar has no exponents), precise enough that 1/1.1 arrives as 0.9090909091."""
    text = f"{weight:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
