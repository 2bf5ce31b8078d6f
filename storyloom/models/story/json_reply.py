"""Reading the JSON object a language model meant to write.

Small models wrap JSON in code fences, add prose around it, use single or curly quotes, Python's
``True``/``None``, trailing commas, bare keys, quotes inside strings, or stop mid-object when they run
out of tokens. :func:`parse_json_object` undoes those in one pass and gives up (returns None) on
anything else, so the planner can retry or fall back.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_QUOTES = {'"': '"', "'": "'", "“": "”", "”": "”", "‘": "’"}
_LITERALS = {"True": "true", "False": "false", "None": "null", "true": "true", "false": "false", "null": "null"}
# After a real closing quote comes one of these (or the end): anything else means the quote was inside the text.
_AFTER_STRING = ",:}]"


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``, repaired if needed; None when there is none to be had."""
    fenced = _FENCE.search(text)
    if fenced and "{" in fenced.group(1):
        text = fenced.group(1)
    start = text.find("{")
    if start < 0:
        return None
    text = text[start:]
    for candidate in _candidates(text):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _candidates(text: str) -> list[str]:
    repaired = repair_json(text)
    candidates = [text, repaired]
    # A truncated answer: drop the unfinished last element, a few times, and close what is open.
    shortened = repaired
    for _ in range(4):
        cut = shortened.rstrip("}] \n").rfind(",")
        if cut <= 0:
            break
        shortened = repair_json(shortened[:cut])
        candidates.append(shortened)
    return candidates


def repair_json(text: str) -> str:
    """Rewrite near-JSON as JSON: quotes, literals, bare keys, trailing commas, unclosed brackets."""
    out: list[str] = []
    closers: list[str] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char in _QUOTES:
            string, index = _read_string(text, index)
            out.append(string)
            continue
        if char in "{[":
            closers.append("}" if char == "{" else "]")
            out.append(char)
        elif char in "}]":
            _drop_trailing_comma(out)
            if closers:
                out.append(closers.pop())
            if not closers:
                break
        elif char.isalpha() or char == "_":
            end = index
            while end < size and (text[end].isalnum() or text[end] in "_-"):
                end += 1
            word = text[index:end]
            if word in _LITERALS:
                out.append(_LITERALS[word])
            elif text[end:].lstrip().startswith(":"):
                out.append(json.dumps(word))  # a bare key
            else:
                out.append(json.dumps(word))  # a bare value: keep it as text rather than fail
            index = end
            continue
        else:
            out.append(char)
        index += 1
    _drop_trailing_comma(out)
    if out and out[-1].rstrip().endswith(":"):
        out.append("null")
    out.extend(reversed(closers))
    return "".join(out)


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string at ``start`` as a JSON string literal, and the index after it."""
    closing = _QUOTES[text[start]]
    ends = {closing, "”"} if closing == "”" else {closing}
    chars: list[str] = []
    index, size = start + 1, len(text)
    while index < size:
        char = text[index]
        if char == "\\" and index + 1 < size:
            chars.append(text[index : index + 2])
            index += 2
            continue
        if char in ends:
            rest = text[index + 1 :].lstrip()
            if not rest or rest[0] in _AFTER_STRING:
                return '"' + "".join(chars) + '"', index + 1
        if char == '"':
            chars.append('\\"')
        elif char == "\n":
            chars.append("\\n")
        elif char == "\t":
            chars.append("\\t")
        else:
            chars.append(char)
        index += 1
    return '"' + "".join(chars) + '"', size  # unterminated (truncated answer): close it


def _drop_trailing_comma(out: list[str]) -> None:
    while out and out[-1].strip() == "":
        out.pop()
    if out and out[-1] == ",":
        out.pop()
