"""AUTOMATIC1111 prompt syntax, parsed torch-free (``models.image.conditioning`` encodes the result).

Users write prompts the way every SD web UI taught them, and each piece means here what it means there:

- emphasis: ``(x)`` ×1.1, ``((x))`` ×1.21, ``(x:1.3)``, ``[x]`` ÷1.1, ``\\(`` for a literal bracket;
  unbalanced brackets are read as A1111 reads them (an unclosed bracket weights everything after it, a
  stray closing bracket is text);
- ``BREAK`` starts a new 77-token chunk;
- prompt editing ``[from:to:when]``, ``[to:when]``, ``[from::when]``: ``when`` with a decimal point is a
  fraction of the steps (``0.5``), without one a step number (``12``);
- alternation ``[a|b]``: a different option at each step;
- composition ``a cat AND a dog:0.5``: each part is its own conditioning, and the noise predictions are
  added with these weights (composable diffusion);
- ``<lora:name:0.8>``: a configured LoRA for this request (taken out of the text, see ``extract_loras``).

``plan_prompt`` turns a prompt into its AND parts, each with the text to encode at each step (A1111's
``[end_at_step, text]`` schedule), and checks every text's emphasis; ``parse_emphasis`` turns one such text
into weighted chunks. compel has its own syntax and reads none of this, so the chunks are handed to compel
as fragments (``to_conjunction``) or written in compel's form (``to_compel``).

Nothing here imports torch or compel, so the bot can reject a bad prompt immediately.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from storyloom.errors import InvalidInput

MIN_WEIGHT = 0.0
MAX_WEIGHT = 3.0
ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1
MAX_AND_PARTS = 8  # each part costs a UNet pass per step
MAX_AND_WEIGHT = 3.0
MAX_LORA_WEIGHT = 3.0
# Up to 1 in a picture's own steps (a request is refused above that: its switch would never happen); a second pass
# over a picture (an upscale's re-drawing, A1111's hires fix) counts on to 2.
MAX_SWITCH_FRACTION = 2.0
MAX_NESTING = 40  # brackets inside brackets; deeper is never a real prompt and would exhaust the parser's stack
# Prompts are checked before the step count is final; this many steps reaches every switch a schedule has.
VALIDATION_STEPS = 150

# ":1.3)" closing a round bracket; exponents, inf and nan are matched too so they can be rejected clearly.
_WEIGHT_RE = re.compile(r":\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))\s*\)", re.IGNORECASE)
_BREAK_RE = re.compile(r"\s*\bBREAK\b\s*")
_AND_RE = re.compile(r"\bAND\b")
_EXTRA_NETWORK_RE = re.compile(r"<(\w+):([^<>]*)>")
# "a dog:0.5" at the end of an AND part: the part's weight.
_PART_WEIGHT_RE = re.compile(r"(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*", re.DOTALL)
# ":0.5]" ending a prompt-editing bracket (the number as A1111's grammar reads it).
_WHEN_RE = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_ESCAPABLE = "()[]\\"

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


@dataclass(frozen=True)
class ScheduledPrompt:
    """One AND part: its weight and the text to encode over the steps.

    ``schedule`` is A1111's list of ``(end_at_step, text)``: the text is used while the 0-based denoising step
    is at most ``end_at_step`` (the sampler's own counting, so switches land on the same steps as in A1111).
    """

    weight: float
    schedule: tuple[tuple[int, str], ...]

    def text_at(self, step_index: int) -> str:
        return text_at_step(self.schedule, step_index)


def text_at_step(schedule: tuple[tuple[int, str], ...] | list[tuple[int, str]], step_index: int) -> str:
    """The text in force at the 0-based denoising step ``step_index`` (the last one past the end)."""
    for end, text in schedule:
        if step_index <= end:
            return text
    return schedule[-1][1]


def validate_prompt(
    prompt: str,
    *,
    max_chars: int,
    name: str = "prompt",
    allow_empty: bool = False,
    negative: bool = False,
    steps: int = VALIDATION_STEPS,
    known_loras: Collection[str] | None = None,
    first_pass_steps: int | None = None,
) -> list[ScheduledPrompt]:
    """Check length and emptiness, then plan; every problem is an ``InvalidInput`` naming what is allowed.

    A ``negative`` prompt has one conditioning: no AND (A1111 would encode the word) and no LoRA. With
    ``known_loras``, each ``<lora:name>`` must name one of them."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"{name} must be text")
    if not allow_empty and not prompt.strip():
        raise InvalidInput(f"{name} is empty: describe what to draw")
    if len(prompt) > max_chars:
        raise InvalidInput(f"{name} is {len(prompt):,} characters long; the limit is {max_chars:,} characters")
    _text, loras = extract_loras(prompt, name=name)
    if loras and negative:
        raise InvalidInput(f"LoRAs go in the prompt, not the {name} (found <lora:{loras[0].name}>)")
    unknown = [tag.name for tag in loras if known_loras is not None and tag.name not in known_loras]
    if unknown:
        known = ", ".join(sorted(known_loras or ())) or "none are configured"
        raise InvalidInput(f"unknown LoRA {unknown[0]!r} in {name}; the known LoRAs: {known}")
    return plan_prompt(prompt, steps, name=name, negative=negative, first_pass_steps=first_pass_steps)


def plan_prompt(
    prompt: str, steps: int, *, name: str = "prompt", negative: bool = False, first_pass_steps: int | None = None
) -> list[ScheduledPrompt]:
    """The AND parts of ``prompt``, each with its weight and per-step texts for a run of ``steps`` steps (a
    second pass over a picture first drawn in ``first_pass_steps``, see ``prompt_schedule``).

    ``<lora:…>`` tags are taken out first (they change the model, not the text); every text any step will
    encode is parsed for emphasis here, so a bad weight is found before a run starts.
    """
    prompt, _loras = extract_loras(prompt, name=name)
    parts = split_and(prompt, name=name) if not negative else [(prompt, 1.0)]
    if negative and _AND_RE.search(prompt):
        raise InvalidInput(
            f"AND cannot be used in the {name}: it has one conditioning (write 'and' in lower case for the word)"
        )
    planned = []
    for text, weight in parts:
        schedule = tuple(prompt_schedule(text, steps, name=name, first_pass_steps=first_pass_steps))
        for _end, step_text in dict.fromkeys(schedule):
            parse_emphasis(step_text, name=name)
        planned.append(ScheduledPrompt(weight, schedule))
    return planned


@dataclass(frozen=True)
class LoraTag:
    """``<lora:name:0.8>``: a named LoRA and its strength in the text encoder and the UNet (A1111's te/unet)."""

    name: str
    text_encoder: float = 1.0
    unet: float = 1.0


def extract_loras(prompt: str, *, name: str = "prompt") -> tuple[str, list[LoraTag]]:
    """``prompt`` without its ``<lora:name>``, ``<lora:name:w>`` or ``<lora:name:w_te:w_unet>`` tags, and the tags,
    as A1111 takes its extra networks out of a prompt before reading it."""
    tags: list[LoraTag] = []

    def take(match: re.Match[str]) -> str:
        kind, arguments = match.group(1), [part.strip() for part in match.group(2).split(":")]
        if kind.lower() != "lora":
            raise InvalidInput(f"<{kind}:…> in {name} is not something storyloom knows; LoRAs are <lora:name:0.8>")
        lora, raw_weights = arguments[0], arguments[1:]
        if not lora or len(raw_weights) > 2:
            raise InvalidInput(
                f"{match.group(0)!r} in {name}: write <lora:name>, <lora:name:0.8> or <lora:name:0.8:0.6>"
            )
        weights = [_lora_weight(raw, match.group(0), name) for raw in raw_weights]
        if any(tag.name == lora for tag in tags):
            raise InvalidInput(f"the LoRA {lora!r} is named twice in {name}; name it once")
        text_encoder = weights[0] if weights else 1.0
        tags.append(LoraTag(lora, text_encoder, weights[1] if len(weights) > 1 else text_encoder))
        return ""

    return _EXTRA_NETWORK_RE.sub(take, prompt), tags


def _lora_weight(raw: str, tag: str, name: str) -> float:
    try:
        weight = float(raw)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight) or not -MAX_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
        raise InvalidInput(
            f"{tag!r} in {name}: a LoRA's weight is a number between {-MAX_LORA_WEIGHT:g} and {MAX_LORA_WEIGHT:g}"
        )
    return weight


def split_and(prompt: str, *, name: str = "prompt") -> list[tuple[str, float]]:
    """``a cat AND a dog:0.5`` → ``[("a cat", 1.0), (" a dog", 0.5)]``, as A1111 splits and weighs AND parts.

    As in A1111, a number after a colon at the very end of a part is that part's weight, with or without AND.
    """
    pieces = _AND_RE.split(prompt)
    if len(pieces) > MAX_AND_PARTS:
        raise InvalidInput(f"{name} has {len(pieces)} parts joined by AND; at most {MAX_AND_PARTS} are allowed")
    parts = []
    for piece in pieces:
        match = _PART_WEIGHT_RE.fullmatch(piece)
        assert match is not None  # the pattern matches any text
        text, raw = match.group(1), match.group(2)
        weight = float(raw) if raw is not None else 1.0
        if not -MAX_AND_WEIGHT <= weight <= MAX_AND_WEIGHT:
            raise InvalidInput(
                f"{name}: ':{raw}' at the end of {text.strip()[-30:]!r} is read as the weight of that part "
                f"(as in 'a cat AND a dog:0.5'); part weights must be between {-MAX_AND_WEIGHT:g} and "
                f"{MAX_AND_WEIGHT:g} (add a word after the number if it is not a weight)"
            )
        parts.append((text, weight))
    return parts


def prompt_schedule(
    text: str, steps: int, *, name: str = "prompt", first_pass_steps: int | None = None
) -> list[tuple[int, str]]:
    """A1111's prompt schedule of one AND part: ``[(end_at_step, text), ...]`` with ``steps`` last.

    ``[from:to:when]`` switches after step ``when`` (a step number, or a fraction of ``steps`` when written
    with a decimal point); ``[a|b]`` changes option every step. Brackets that form none of A1111's
    constructs stay in the text for the emphasis parser, exactly as A1111 leaves them.

    A second pass over a picture (A1111's hires fix; here the upscaler's re-drawing) gives the picture's own
    step count as ``first_pass_steps``: its steps count on from there, and fractions from 1 to 2 fall in it
    (``[a:b:1.5]`` draws ``a`` in the first pass and switches halfway through the second).
    """
    if steps < 1:
        raise InvalidInput(f"steps must be at least 1 (got {steps})")
    if "[" not in text:  # the common case: nothing to schedule
        return [(steps, text)]
    tree = _ScheduleParser(text, name).parse()
    ends = {steps}
    whens: dict[int, int] = {}
    _collect_ends(tree, _Timing(steps, first_pass_steps), ends, whens, text, name)
    return [(end, _render(tree, end, whens)) for end in sorted(ends)]


_Node = str | list["_Node"] | tuple[Any, ...]
_STOP = ")]:"
_STOP_IN_OPTION = ")]:|"
_PLAIN_RE = re.compile(r"[^\\\[\]():|]+")


class _ScheduleParser:
    """A1111's schedule grammar, by recursive descent with memoised brackets (linear-ish, no backtracking blow-up).

    Nodes: a string (text, kept verbatim with its escapes and emphasis brackets), a list (a sequence, e.g. an
    emphasis bracket with its content), ``("edit", before, after, when_text, start, end)`` and
    ``("alternate", options)``. A ``|`` that separates no alternation is text.
    """

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.depth = 0
        self.brackets: dict[int, tuple[_Node, int] | None] = {}

    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        position = 0
        while position < len(self.text):
            sequence, position = self.sequence(position, _STOP)
            nodes.extend(sequence)
            if position < len(self.text):  # a bracket or colon that opens or closes nothing: text
                nodes.append(self.text[position])
                position += 1
        return nodes

    def sequence(self, position: int, stop: str) -> tuple[list[_Node], int]:
        text = self.text
        nodes: list[_Node] = []
        while position < len(text):
            char = text[position]
            if char == "\\":
                nodes.append(text[position : position + 2])
                position += 2
            elif char in "([":
                parsed = self.bracket(position)
                if parsed is None:
                    break
                nodes.append(parsed[0])
                position = parsed[1]
            elif char in stop:
                break
            elif char == "|":
                nodes.append(char)
                position += 1
            else:
                match = _PLAIN_RE.match(text, position)
                assert match is not None
                nodes.append(match.group())
                position = match.end()
        return nodes, position

    def bracket(self, position: int) -> tuple[_Node, int] | None:
        if position not in self.brackets:
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise InvalidInput(f"brackets in {self.name} are nested more than {MAX_NESTING} deep")
            if self.text[position] == "(":
                self.brackets[position] = self.round(position)
            else:
                self.brackets[position] = self.edit(position) or self.alternate(position) or self.square(position)
            self.depth -= 1
        return self.brackets[position]

    def at(self, position: int, char: str) -> bool:
        return position < len(self.text) and self.text[position] == char

    def round(self, position: int) -> tuple[_Node, int] | None:
        first, after_first = self.sequence(position + 1, _STOP)
        if self.at(after_first, ")"):
            return ["(", *first, ")"], after_first + 1
        if self.at(after_first, ":"):
            second, after_second = self.sequence(after_first + 1, _STOP)
            if self.at(after_second, ")"):
                return ["(", *first, ":", *second, ")"], after_second + 1
        return None

    def square(self, position: int) -> tuple[_Node, int] | None:
        inner, after = self.sequence(position + 1, _STOP)
        if self.at(after, "]"):
            return ["[", *inner, "]"], after + 1
        return None

    def edit(self, position: int) -> tuple[_Node, int] | None:
        first, after_first = self.sequence(position + 1, _STOP)
        if not self.at(after_first, ":"):
            return None
        when = _WHEN_RE.match(self.text, after_first + 1)
        if when:  # [to:when]
            return ("edit", None, first, when.group(1), position, when.end()), when.end()
        second, after_second = self.sequence(after_first + 1, _STOP)
        if not self.at(after_second, ":"):
            return None
        when = _WHEN_RE.match(self.text, after_second + 1)
        if when:  # [from:to:when]
            return ("edit", first, second, when.group(1), position, when.end()), when.end()
        return None

    def alternate(self, position: int) -> tuple[_Node, int] | None:
        options: list[list[_Node]] = []
        cursor = position
        while True:
            option, cursor = self.sequence(cursor + 1, _STOP_IN_OPTION)
            options.append(option)
            if not self.at(cursor, "|"):
                break
        if len(options) > 1 and self.at(cursor, "]"):
            return ("alternate", options), cursor + 1
        return None


@dataclass(frozen=True)
class _Timing:
    steps: int
    first_pass_steps: int | None  # set for a second pass over a picture

    def when(self, raw: str, snippet: str, name: str) -> int:
        """A1111's reading of ``when``: with a decimal point a fraction of the steps, otherwise a step number;
        in a second pass both count on from the end of the first."""
        value = float(raw)
        if value < 0:
            raise InvalidInput(
                f"{snippet!r} in {name}: the switch point {raw} is negative; use a step number such as 10 "
                "or a fraction of the steps such as 0.5"
            )
        if "." in raw:
            if value > (MAX_SWITCH_FRACTION if self.first_pass_steps is not None else 1.0):
                raise InvalidInput(
                    f"{snippet!r} in {name}: {raw} is a fraction of the steps (it has a decimal point) above 1, so "
                    f"the switch would never happen; fractions go from 0 to 1; for a step number write "
                    f"{max(1, round(value))}"
                )
            value = (value - (1.0 if self.first_pass_steps is not None else 0.0)) * self.steps
        else:
            value -= self.first_pass_steps or 0
        return min(self.steps, int(value))


def _collect_ends(nodes: Any, timing: _Timing, ends: set[int], whens: dict[int, int], text: str, name: str) -> None:
    for node in nodes:
        if isinstance(node, str):
            continue
        if isinstance(node, list):
            _collect_ends(node, timing, ends, whens, text, name)
        elif node[0] == "edit":
            _kind, before, after, raw, start, end = node
            snippet = text[start:end] if end - start <= 40 else text[start : start + 37] + "..."
            whens[start] = timing.when(raw, snippet, name)
            if whens[start] >= 1:
                ends.add(whens[start])
            _collect_ends(before or [], timing, ends, whens, text, name)
            _collect_ends(after, timing, ends, whens, text, name)
        else:
            ends.update(range(1, timing.steps + 1))
            for option in node[1]:
                _collect_ends(option, timing, ends, whens, text, name)


def _render(nodes: Any, step: int, whens: dict[int, int]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, list):
            out.append(_render(node, step, whens))
        elif node[0] == "edit":
            _kind, before, after, _raw, start, _end = node
            out.append(_render((before if step <= whens[start] else after) or [], step, whens))
        else:
            options = node[1]
            out.append(_render(options[(step - 1) % len(options)], step, whens))
    return "".join(out)


def parse_emphasis(prompt: str, *, name: str = "prompt") -> list[PromptChunk]:
    """Parse A1111 emphasis into weighted chunks (``BREAK`` entries mark chunk boundaries).

    Brackets are read as A1111 reads them: round and square brackets are tracked separately, ``(x:1.3)``
    closes the innermost open round bracket, a closing bracket with nothing to close is text, and brackets
    still open at the end weight everything after them. A lone backslash disappears, as in A1111. Weights
    outside 0–3 are refused: they only ever come from a typo or from nesting run away.
    """
    chunks: list[list[Any]] = []  # [text, weight] pairs, mutated as brackets close
    round_open: list[int] = []  # first chunk index of each open bracket
    square_open: list[int] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            _append_text(chunks, "".join(text))
            text.clear()

    def weigh(start: int, factor: float) -> None:
        for chunk in chunks[start:]:
            if chunk[1] >= 0:  # not a BREAK
                chunk[1] *= factor

    index = 0
    while index < len(prompt):
        char = prompt[index]
        if char == "\\":
            flush()
            escaped = prompt[index + 1] if index + 1 < len(prompt) and prompt[index + 1] in _ESCAPABLE else ""
            if escaped:
                chunks.append([escaped, 1.0])
            index += 1 + len(escaped)
            continue
        if char == "(":
            flush()
            round_open.append(len(chunks))
        elif char == "[":
            flush()
            square_open.append(len(chunks))
        elif char == ":" and round_open and (match := _WEIGHT_RE.match(prompt, index)):
            flush()
            start = round_open.pop()
            weigh(start, _explicit_weight(match.group(1), prompt, index, match.end(), name))
            index = match.end()
            continue
        elif char == ")" and round_open:
            flush()
            weigh(round_open.pop(), ROUND_FACTOR)
        elif char == "]" and square_open:
            flush()
            weigh(square_open.pop(), SQUARE_FACTOR)
        else:
            text.append(char)
        index += 1
    flush()
    for start in round_open:
        weigh(start, ROUND_FACTOR)
    for start in square_open:
        weigh(start, SQUARE_FACTOR)
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


def _explicit_weight(raw: str, prompt: str, colon: int, end: int, name: str) -> float:
    weight = float(raw)
    if not math.isfinite(weight) or not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        start = prompt.rfind("(", 0, colon)
        snippet = prompt[max(start, 0) : end]
        if len(snippet) > 40:
            snippet = snippet[:37] + "..."
        raise InvalidInput(
            f"weight {raw} in {snippet!r} ({name}) is not allowed; "
            f"use a number between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, "
            "for example (cat:1.3)"
        )
    return weight


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
