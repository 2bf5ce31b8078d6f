"""Splitting a story into N pages: at paragraph or sentence boundaries, balanced in length.

Works for scripts with and without spaces: sentences end at ``.!?`` + space or at ``。！？``; a text
with fewer sentences than pages is cut at clauses, then words, then characters, so N pages always
come out of any text that has at least N characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storyloom.domain.story.text import paragraphs, split_sentences

# Cost of ending a page inside a paragraph rather than at its end, relative to a squared
# length deviation of 1.0 (= a page 100% longer or shorter than the average).
_MID_PARAGRAPH_COST = 0.08
# The exact dynamic programme is quadratic in the number of sentences; beyond this, go greedy.
_MAX_DP_UNITS = 600
# Pages longer than this many times the average are never the best split; not searching them keeps it fast.
_MAX_PAGE_FACTOR = 3.0
_CLAUSE = re.compile(r"[,;:，、；：]\s*")


@dataclass(frozen=True)
class _Unit:
    text: str
    separator: str  # what joins it to the next unit on the same page
    paragraph_end: bool


def split_pages(text: str, pages: int) -> list[str]:
    """``text`` as exactly ``pages`` non-empty, contiguous pages of similar length.

    Raises ``ValueError`` when the text has fewer characters than pages."""
    if pages < 1:
        raise ValueError(f"pages = {pages}; it must be at least 1")
    units = _units(text)
    while len(units) < pages:
        longest = max(range(len(units)), key=lambda index: len(units[index].text), default=None)
        if longest is None or len(units[longest].text) < 2:
            raise ValueError(f"the text is too short for {pages} pages")
        units[longest : longest + 1] = _halve(units[longest])
    groups = _partition([len(unit.text) for unit in units], [unit.paragraph_end for unit in units], pages)
    return [_join(units[start:end]) for start, end in groups]


def _units(text: str) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in paragraphs(text):
        sentences = split_sentences(paragraph)
        for index, sentence in enumerate(sentences):
            last = index == len(sentences) - 1
            units.append(_Unit(sentence.text, "\n\n" if last else sentence.separator, last))
    return units


def _halve(unit: _Unit) -> list[_Unit]:
    """Cut a unit near its middle: at a clause mark, else a space, else between characters."""
    text, middle = unit.text, len(unit.text) / 2
    cuts = [(match.end(), text[match.start() : match.end()][1:] and " ") for match in _CLAUSE.finditer(text)]
    cuts = [(position, separator) for position, separator in cuts if 0 < position < len(text)]
    if not cuts:
        spaces = re.finditer(r"\s+", text)
        cuts = [(match.end(), " ") for match in spaces if 0 < match.start() and match.end() < len(text)]
    if cuts:
        position, separator = min(cuts, key=lambda cut: abs(cut[0] - middle))
    else:
        position, separator = int(middle), ""
    head, tail = text[:position].rstrip(), text[position:].lstrip()
    return [_Unit(head, separator, False), _Unit(tail, unit.separator, unit.paragraph_end)]


def _join(units: list[_Unit]) -> str:
    last = len(units) - 1
    return "".join(unit.text + (unit.separator if index < last else "") for index, unit in enumerate(units)).strip()


def _partition(lengths: list[int], paragraph_ends: list[bool], pages: int) -> list[tuple[int, int]]:
    """Contiguous groups minimising squared deviation from the mean, preferring paragraph ends."""
    count = len(lengths)
    if count > _MAX_DP_UNITS:
        return _greedy(lengths, pages)
    prefix = [0]
    for length in lengths:
        prefix.append(prefix[-1] + length)
    target = max(prefix[-1] / pages, 1.0)

    def cost(start: int, end: int) -> float:
        deviation = (prefix[end] - prefix[start] - target) / target
        boundary = 0.0 if end == count or paragraph_ends[end - 1] else _MID_PARAGRAPH_COST
        return deviation * deviation + boundary

    infinity = float("inf")
    # best[k][j]: cheapest split of the first j units into k pages; back[k][j]: where page k starts.
    best = [[infinity] * (count + 1) for _ in range(pages + 1)]
    back = [[0] * (count + 1) for _ in range(pages + 1)]
    best[0][0] = 0.0
    for k in range(1, pages + 1):
        for j in range(k, count - (pages - k) + 1):
            for i in range(j - 1, k - 2, -1):
                if i < j - 1 and prefix[j] - prefix[i + 1] > _MAX_PAGE_FACTOR * target:
                    break  # longer pages only cost more
                if best[k - 1][i] == infinity:
                    continue
                value = best[k - 1][i] + cost(i, j)
                if value < best[k][j]:
                    best[k][j], back[k][j] = value, i
    groups, end = [], count
    for k in range(pages, 0, -1):
        start = back[k][end]
        groups.append((start, end))
        end = start
    return groups[::-1]


def _greedy(lengths: list[int], pages: int) -> list[tuple[int, int]]:
    """Close a page once it reaches its share of what is left (for very long texts)."""
    groups, start, remaining = [], 0, sum(lengths)
    for page in range(pages, 1, -1):
        share = remaining / page
        end, size = start, 0
        while end < len(lengths) - (page - 1) and (size == 0 or size + lengths[end] / 2 <= share):
            size += lengths[end]
            end += 1
        groups.append((start, end))
        remaining -= size
        start = end
    groups.append((start, len(lengths)))
    return groups
