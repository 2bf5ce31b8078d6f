"""Prompt editing, alternation and AND: per-step texts and part weights, checked against A1111's examples."""

from __future__ import annotations

import pytest

from storyloom.domain.prompts import (
    MAX_AND_PARTS,
    LoraTag,
    ScheduledPrompt,
    extract_loras,
    plan_prompt,
    prompt_schedule,
    split_and,
    text_at_step,
    validate_prompt,
)
from storyloom.errors import InvalidInput

ALTERNATING = [[step, "a" if step % 2 else "(b:1.1)"] for step in range(1, 11)]

# A1111's doctest examples for get_learned_conditioning_prompt_schedules at 10 steps (modules/prompt_parser.py).
A1111_SCHEDULE_EXAMPLES = [
    ("test", [[10, "test"]]),
    ("a [b:3]", [[3, "a "], [10, "a b"]]),
    ("a [b: 3]", [[3, "a "], [10, "a b"]]),
    ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
    ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
    ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
    ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
    ("a [unbalanced", [[10, "a [unbalanced"]]),
    ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
    ("a [{b|d{:.5] c", [[5, "a  c"], [10, "a {b|d{ c"]]),
    ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ("[a|(b:1.1)]", ALTERNATING),
    ("[fe|]male", [[step, "female" if step % 2 else "male"] for step in range(1, 11)]),
    ("[fe|||]male", [[step, "female" if step % 4 == 1 else "male"] for step in range(1, 11)]),
]


# The same doctest's examples of a second pass (A1111's hires fix: 10 steps after a first pass of 10).
A1111_SECOND_PASS_EXAMPLES = [
    ("a [b:.5] c", [[10, "a b c"]]),
    ("a [b:1.5] c", [[5, "a  c"], [10, "a b c"]]),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_SCHEDULE_EXAMPLES)
def test_a1111_schedule_examples(prompt: str, expected: list[list]) -> None:
    assert [[end, text] for end, text in prompt_schedule(prompt, 10)] == expected


@pytest.mark.parametrize(("prompt", "expected"), A1111_SECOND_PASS_EXAMPLES)
def test_a1111_second_pass_examples(prompt: str, expected: list[list]) -> None:
    assert [[end, text] for end, text in prompt_schedule(prompt, 10, first_pass_steps=10)] == expected


def test_a_fraction_past_one_is_refused_in_a_picture_and_counts_on_in_a_second_pass() -> None:
    with pytest.raises(
        InvalidInput, match=r"1\.5 is a fraction of the steps .*above 1, so the switch would never happen"
    ):
        prompt_schedule("[a:b:1.5]", 10)  # in one picture's own steps it would never switch: a mistake
    assert prompt_schedule("[a:b:1.5]", 20, first_pass_steps=30) == [(10, "a"), (20, "b")]  # A1111's hires timeline
    assert prompt_schedule("[a:b:35]", 20, first_pass_steps=30) == [(5, "a"), (20, "b")]  # step 35 overall


def test_the_comment_example_at_100_steps() -> None:
    """The worked example at the top of A1111's prompt parser."""
    prompt = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
        "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]"
    )
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


@pytest.mark.parametrize(
    ("prompt", "steps", "expected"),
    [
        ("[a:b:0]", 30, [(30, "b")]),
        ("[a:b:0.0]", 30, [(30, "b")]),
        ("[a:b:1.0]", 30, [(30, "a")]),  # a fraction of 1: all the steps
        ("[a:b:1]", 30, [(1, "a"), (30, "b")]),  # a step number: after step 1
        ("[a:b:0.5]", 30, [(15, "a"), (30, "b")]),
        ("[a:b:40]", 30, [(30, "a")]),  # past the last step: never switches
        ("[a:b:1e1]", 30, [(10, "a"), (30, "b")]),  # no decimal point: a step number
        ("[a::0.5]", 10, [(5, "a"), (10, "")]),
    ],
)
def test_when_is_a_fraction_with_a_decimal_point_and_a_step_number_without(
    prompt: str, steps: int, expected: list
) -> None:
    assert prompt_schedule(prompt, steps) == expected


def test_text_at_step_counts_steps_as_the_sampler_does() -> None:
    """A1111's sampler compares its 0-based step counter with end_at_step: [a:b:3] draws steps 0–3 with a."""
    schedule = prompt_schedule("[a:b:3]", 10)
    assert [text_at_step(schedule, step) for step in range(10)] == ["a"] * 4 + ["b"] * 6
    assert text_at_step(schedule, 12) == "b"


def test_escaped_brackets_and_bars_are_not_syntax() -> None:
    assert prompt_schedule(r"a \[b:c:3\]", 10) == [(10, r"a \[b:c:3\]")]
    assert prompt_schedule(r"[a\|b]", 10) == [(10, r"[a\|b]")]
    assert prompt_schedule("a | b [c|d]", 2) == [(1, "a | b c"), (2, "a | b d")]


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("[a:b:2.5]", ["2.5", "fraction", "0 to 1", "[a:b:2.5]"]),
        ("[a:b:1.5]", ["1.5", "above 1", "never happen", "step number write 2"]),
        ("[a:b:-1]", ["negative", "-1"]),
        ("[a:b:3.]", ["fraction", "step number write 3"]),
    ],
)
def test_meaningless_switch_points_are_named(prompt: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        prompt_schedule(prompt, 20)
    message = str(info.value)
    assert all(word in message for word in words), message
    assert len(message) < 240


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
        ("a cat:1.2 AND a dog :0.5", [("a cat", 1.2), (" a dog", 0.5)]),
        ("a cat AND a dog:-0.5", [("a cat", 1.0), (" a dog", -0.5)]),
        ("a cat:.5", [("a cat", 0.5)]),  # a trailing weight counts even without AND, as in A1111
        ("ANDROID and ANDes", [("ANDROID and ANDes", 1.0)]),
        ("(a cat:1.2)", [("(a cat:1.2)", 1.0)]),
    ],
)
def test_and_parts_and_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert split_and(prompt) == expected


def test_and_limits_are_named() -> None:
    with pytest.raises(InvalidInput, match="between -3 and 3"):
        split_and("a clock at 10:30")
    with pytest.raises(InvalidInput, match=f"at most {MAX_AND_PARTS}"):
        split_and(" AND ".join(["cat"] * (MAX_AND_PARTS + 1)))
    with pytest.raises(InvalidInput, match="AND cannot be used in the negative prompt"):
        validate_prompt("blurry AND dark", max_chars=100, name="negative prompt", negative=True)


def test_a_plan_has_each_part_with_its_schedule() -> None:
    plan = plan_prompt("a [cat:dog:0.5] AND a hat:0.7", 10)
    assert plan == [
        ScheduledPrompt(1.0, ((5, "a cat"), (10, "a dog"))),
        ScheduledPrompt(0.7, ((10, " a hat"),)),
    ]
    assert plan[0].text_at(0) == "a cat" and plan[0].text_at(6) == "a dog"


def test_every_step_text_is_checked_for_emphasis() -> None:
    """A weight that only appears at some steps is still found before a run starts."""
    with pytest.raises(InvalidInput, match="between 0 and 3"):
        validate_prompt("a [cat:(dog:5):0.5]", max_chars=100)
    with pytest.raises(InvalidInput, match="between 0 and 3"):
        validate_prompt("a [cat|(dog:5)]", max_chars=100)


def test_deep_nesting_parses_quickly_and_has_a_limit() -> None:
    """Brackets are memoised: each of 35 nested brackets is tried three ways without exponential backtracking."""
    prompt = "[" * 35 + "a:3" + "]" * 35
    assert prompt_schedule(prompt, 10) == [(3, "[" * 34 + "]" * 34), (10, "[" * 34 + "a" + "]" * 34)]
    with pytest.raises(InvalidInput, match="nested more than 40 deep"):
        prompt_schedule("[" * 400 + "a", 10)


def test_lora_tags_are_taken_out_of_the_text() -> None:
    text, tags = extract_loras("a cat <lora:ink:0.8>, <lora:paper> AND <lora:glow:0.5:0.25> a dog")
    assert text == "a cat ,  AND  a dog"
    assert tags == [LoraTag("ink", 0.8, 0.8), LoraTag("paper", 1.0, 1.0), LoraTag("glow", 0.5, 0.25)]
    assert plan_prompt("a cat <lora:ink:0.8>", 10) == [ScheduledPrompt(1.0, ((10, "a cat"),))]
    assert extract_loras("I <3 cats") == ("I <3 cats", [])


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("a cat <lora:ink:9>", ["between -3 and 3"]),
        ("a cat <lora:ink:x>", ["between -3 and 3"]),
        ("a cat <lora:ink:1:1:1>", ["<lora:name:0.8>"]),
        ("a cat <hypernet:ink:1>", ["<hypernet:…>", "<lora:name:0.8>"]),
        ("a cat <lora:ink> <lora:ink:0.5>", ["named twice"]),
        ("a cat <lora:paint>", ["unknown LoRA 'paint'", "ink, pencil"]),
    ],
)
def test_bad_lora_tags_are_named(prompt: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_prompt(prompt, max_chars=200, known_loras={"ink", "pencil"})
    assert all(word in str(info.value) for word in words), str(info.value)


def test_no_lora_in_the_negative_prompt() -> None:
    with pytest.raises(InvalidInput, match="LoRAs go in the prompt"):
        validate_prompt("blurry <lora:ink>", max_chars=100, name="negative prompt", negative=True)
