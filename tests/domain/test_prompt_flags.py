"""Midjourney flags and {a, b} permutations inside a prompt."""

from __future__ import annotations

import pytest

from storyloom.domain.prompt_flags import (
    MAX_JOBS,
    PromptFlags,
    expand_permutations,
    guidance_for_stylize,
    imagine_requests,
    split_flags,
)
from storyloom.errors import InvalidInput


def test_a_prompt_without_flags_is_itself() -> None:
    assert split_flags("  a cat -- in the rain, 5-10 birds ") == PromptFlags(prompt="a cat -- in the rain, 5-10 birds")


def test_every_flag_is_read() -> None:
    flags = split_flags("a red fox --ar 16:9 --no people, text --seed 42 --chaos 30 --stylize 250 --tile --repeat 2")
    assert flags == PromptFlags(
        prompt="a red fox",
        negative="people, text",
        aspect_ratio="16:9",
        seed=42,
        chaos=30,
        stylize=250,
        tile=True,
        repeat=2,
    )


def test_short_names_phone_dashes_and_several_no() -> None:
    flags = split_flags("a fox —ar 2:3 --c 5 --s 0 --r 3 --no cars --no trees")
    assert (flags.aspect_ratio, flags.chaos, flags.stylize, flags.repeat) == ("2:3", 5, 0, 3)
    assert flags.negative == "cars, trees"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a cat --weird 3", ["unknown flag --weird", "--ar, --chaos, --no, --repeat, --seed, --stylize, --tile"]),
        ("a cat --chaos 101", ["--chaos", "0 to 100", "'101'"]),
        ("a cat --chaos lots", ["--chaos", "whole number"]),
        ("a cat --stylize 2000", ["--stylize", "0 to 1000"]),
        ("a cat --repeat 0", ["--repeat", "1 to 40"]),
        ("a cat --seed -4", ["--seed", "whole number"]),
        ("a cat --seed 99999999999", ["seed", "between 0 and"]),
        ("a cat --ar banana", ["aspect ratio"]),
        ("a cat --tile in the rain", ["--tile takes no value", "end of the prompt"]),
        ("a cat --no", ["--no needs"]),
        ("a cat --seed 1 --seed 2", ["--seed is given twice"]),
    ],
)
def test_bad_flags_are_named(text: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        split_flags(text)
    message = str(info.value)
    assert all(word in message for word in words), message


def test_permutations_multiply_and_nest() -> None:
    assert expand_permutations("a {red, blue} bird") == ["a red bird", "a blue bird"]
    assert expand_permutations("{a, b} {c, d}") == ["a c", "a d", "b c", "b d"]
    assert expand_permutations("a {big {red, blue}, small} bird") == [
        "a big red bird",
        "a big blue bird",
        "a small bird",
    ]
    assert expand_permutations(r"a \{x\} and [cat:dog:0.5]") == [r"a \{x\} and [cat:dog:0.5]"]


@pytest.mark.parametrize(("text", "word"), [("a {red, blue bird", "never closed"), ("a red} bird", "closes nothing")])
def test_unbalanced_braces_are_named(text: str, word: str) -> None:
    with pytest.raises(InvalidInput, match=word):
        expand_permutations(text)


def test_requests_permute_flags_and_repeat() -> None:
    requests = imagine_requests("a {red, blue} bird --ar {1:1, 16:9} --repeat 2")
    assert [(r.prompt, r.aspect_ratio) for r in requests] == [
        ("a red bird", "1:1"),
        ("a red bird", "1:1"),
        ("a red bird", "16:9"),
        ("a red bird", "16:9"),
        ("a blue bird", "1:1"),
        ("a blue bird", "1:1"),
        ("a blue bird", "16:9"),
        ("a blue bird", "16:9"),
    ]
    with pytest.raises(InvalidInput, match=f"at most {MAX_JOBS}"):
        imagine_requests("{a, b, c, d, e, f, g} bird --repeat 10")


def test_stylize_maps_onto_guidance() -> None:
    assert guidance_for_stylize(100, 7.0) == 7.0
    assert guidance_for_stylize(0, 7.0) == 10.5
    assert guidance_for_stylize(1000, 7.0) == 2.8
    assert guidance_for_stylize(550, 7.0) == pytest.approx(4.9)
    values = [guidance_for_stylize(s, 7.0) for s in range(0, 1001, 50)]
    assert values == sorted(values, reverse=True)
