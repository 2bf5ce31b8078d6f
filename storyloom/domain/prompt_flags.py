"""Midjourney habits inside a prompt: ``--no``, ``--ar``, ``--seed``, ``--chaos``, ``--stylize``, ``--tile``,
``--repeat`` and ``{red, blue} bird`` permutations (torch-free, shared by the bot and the command line).

As in Midjourney, flags come at the end of the prompt (``a cat --ar 16:9 --no dogs, people``); a flag's value
runs to the next flag. ``imagine_requests`` expands the permutations first (so flags can be permuted too:
``--ar {1:1, 16:9}``), then reads each prompt's flags and repeats it ``--repeat`` times: one request per job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from storyloom.domain.seeds import check_seed
from storyloom.domain.sizes import parse_aspect_ratio
from storyloom.errors import InvalidInput

T = TypeVar("T")

MAX_CHAOS = 100
MAX_STYLIZE = 1000
DEFAULT_STYLIZE = 100  # Midjourney's default: the configured guidance scale
MAX_REPEAT = 40
MAX_JOBS = 40  # permutations × repeats, before the user's queue cap applies

# "--name" at the start or after white space; "—" is the dash phones make of "--".
_FLAG_RE = re.compile(r"(?:(?<=\s)|^)(?:--|—)([A-Za-z]+)\b")
_ALIASES = {
    "no": "no",
    "ar": "ar",
    "aspect": "ar",
    "seed": "seed",
    "chaos": "chaos",
    "c": "chaos",
    "stylize": "stylize",
    "s": "stylize",
    "tile": "tile",
    "repeat": "repeat",
    "r": "repeat",
}
KNOWN_FLAGS = ("--ar", "--chaos", "--no", "--repeat", "--seed", "--stylize", "--tile")


@dataclass(frozen=True)
class PromptFlags:
    """A prompt without its flags, and what the flags asked for (None: not given)."""

    prompt: str
    negative: str | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    chaos: int | None = None
    stylize: int | None = None
    tile: bool = False
    repeat: int = 1


def imagine_requests(text: str) -> list[PromptFlags]:
    """One ``PromptFlags`` per job the text asks for: each permutation, ``--repeat`` times."""
    requests = []
    for prompt in expand_permutations(text):
        flags = split_flags(prompt)
        requests.extend([flags] * flags.repeat)
    if len(requests) > MAX_JOBS:
        raise InvalidInput(f"this prompt makes {len(requests)} jobs (permutations × --repeat); at most {MAX_JOBS}")
    return requests


def split_flags(text: str) -> PromptFlags:
    """The prompt before the first flag, and the flags after it, each checked."""
    matches = list(_FLAG_RE.finditer(text))
    if not matches:
        return PromptFlags(prompt=text.strip())
    values: dict[str, str] = {}
    for number, match in enumerate(matches):
        written = match.group(1)
        name = _ALIASES.get(written.lower())
        if name is None:
            raise InvalidInput(f"unknown flag --{written}; the known flags are {', '.join(KNOWN_FLAGS)}")
        end = matches[number + 1].start() if number + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip()
        if name in values and name != "no":
            raise InvalidInput(f"--{name} is given twice; give it once")
        values[name] = f"{values[name]}, {value}" if name in values else value
    return PromptFlags(
        prompt=text[: matches[0].start()].strip(),
        negative=_negative(values["no"]) if "no" in values else None,
        aspect_ratio=_aspect_ratio(values["ar"]) if "ar" in values else None,
        seed=_seed(values["seed"]) if "seed" in values else None,
        chaos=_whole("chaos", values["chaos"], 0, MAX_CHAOS) if "chaos" in values else None,
        stylize=_whole("stylize", values["stylize"], 0, MAX_STYLIZE) if "stylize" in values else None,
        tile=_switch("tile", values["tile"]) if "tile" in values else False,
        repeat=_whole("repeat", values["repeat"], 1, MAX_REPEAT) if "repeat" in values else 1,
    )


def either(what: str, flag: str, option: T | None, from_prompt: T | None) -> T | None:
    """A value given as a command option or as a flag in the prompt; both, and different, is an error."""
    if option is not None and from_prompt is not None and option != from_prompt:
        raise InvalidInput(f"the {what} is given twice, as an option and as --{flag} in the prompt; give it once")
    return from_prompt if from_prompt is not None else option


def joined_negative(option: str | None, from_prompt: str | None) -> str:
    """The negative prompt option and ``--no`` together."""
    return ", ".join(text.strip() for text in (option, from_prompt) if text and text.strip())


def guidance_for_stylize(stylize: int, default_guidance: float) -> float:
    """Midjourney's ``--stylize`` as a guidance scale: more style, less literal prompt-following.

    The default 100 is the configured guidance; 0 follows the prompt half again as strictly; 1000 allows
    the model most freedom at 0.4 × the default. Linear in between."""
    if stylize <= DEFAULT_STYLIZE:
        factor = 1.5 - 0.5 * stylize / DEFAULT_STYLIZE
    else:
        factor = 1.0 - 0.6 * (stylize - DEFAULT_STYLIZE) / (MAX_STYLIZE - DEFAULT_STYLIZE)
    return round(default_guidance * factor, 3)


def expand_permutations(text: str) -> list[str]:
    """``a {red, blue} bird`` → ``["a red bird", "a blue bird"]``; groups nest and multiply; ``\\{`` is a brace."""
    start = _first_unescaped(text, "{")
    if start < 0:
        if _first_unescaped(text, "}") >= 0:
            raise InvalidInput("unbalanced braces in prompt: a '}' closes nothing (write \\} for a brace)")
        return [text]
    depth, options, begin = 0, [], start + 1
    position = start
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                options.append(text[begin:position])
                break
        elif char == "," and depth == 1:
            options.append(text[begin:position])
            begin = position + 1
        position += 1
    else:
        raise InvalidInput(
            "unbalanced braces in prompt: a '{' is never closed (permutations look like {red, blue}; "
            "write \\{ for a brace)"
        )
    head, tail = text[:start], text[position + 1 :]
    results: list[str] = []
    for option in options:
        for expanded in expand_permutations(head + option.strip() + tail):
            results.append(expanded)
            if len(results) > MAX_JOBS:
                raise InvalidInput(f"the {{…}} permutations make more than {MAX_JOBS} prompts; at most {MAX_JOBS}")
    return results


def _first_unescaped(text: str, wanted: str) -> int:
    position = 0
    while position < len(text):
        if text[position] == "\\":
            position += 2
            continue
        if text[position] == wanted:
            return position
        position += 1
    return -1


def _negative(value: str) -> str:
    if not value.strip(" ,"):
        raise InvalidInput("--no needs what to leave out, for example --no people, text")
    return value


def _aspect_ratio(value: str) -> str:
    if not value:
        raise InvalidInput("--ar needs a ratio, for example --ar 16:9")
    parse_aspect_ratio(value)
    return value


def _seed(value: str) -> int:
    if not value.isdigit():
        raise InvalidInput(f"--seed needs a whole number (got {value!r})")
    seed = int(value)
    check_seed(seed)
    return seed


def _whole(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidInput(f"--{name} needs a whole number from {low} to {high} (got {value!r})")
    return int(value)


def _switch(name: str, value: str) -> bool:
    if value:
        raise InvalidInput(f"--{name} takes no value (got {value!r}); flags go at the end of the prompt")
    return True
