"""A1111 emphasis → weighted chunks → compel syntax (the torch-free half; conditioning is in
tests/models/image/test_conditioning.py)."""

from __future__ import annotations

import pytest

from storyloom.domain.prompts import (
    BREAK,
    PromptChunk,
    compel_prompts,
    parse_emphasis,
    split_breaks,
    validate_prompt,
)
from storyloom.errors import InvalidInput


def weights(prompt: str) -> list[tuple[str, float]]:
    return [(chunk.text, chunk.weight) for chunk in parse_emphasis(prompt)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(cat)", 1.1),
        ("((cat))", 1.21),
        ("(((cat)))", 1.331),
        ("[cat]", 1 / 1.1),
        ("[[cat]]", 1 / 1.21),
        ("(cat:1.3)", 1.3),
        ("(cat: 0.5 )", 0.5),
        ("((cat:1.5))", 1.65),
        ("[(cat:2)]", 2 / 1.1),
        ("(cat:0)", 0.0),
        ("(cat:3)", 3.0),
    ],
)
def test_emphasis_weights(prompt: str, expected: float) -> None:
    [chunk] = parse_emphasis(prompt)
    assert chunk.text.strip() == "cat"
    assert chunk.weight == pytest.approx(expected)


def test_mixed_prompt_keeps_order_and_plain_text() -> None:
    assert weights("a (red:1.5) cat, [dog] and ((bird))") == [
        ("a ", 1.0),
        ("red", 1.5),
        (" cat, ", 1.0),
        ("dog", pytest.approx(1 / 1.1)),
        (" and ", 1.0),
        ("bird", pytest.approx(1.21)),
    ]


def test_escaped_brackets_are_literal_text() -> None:
    assert weights(r"a \(cat\) \[dog\] (x\)y)") == [("a (cat) [dog] ", 1.0), ("x)y", pytest.approx(1.1))]


def test_colon_without_a_number_is_text() -> None:
    assert weights("(time: noon)") == [("time: noon", pytest.approx(1.1))]


def test_break_splits_the_prompt() -> None:
    chunks = parse_emphasis("a cat BREAK (a dog)")
    assert chunks == [PromptChunk("a cat", 1.0), BREAK, PromptChunk("a dog", pytest.approx(1.1))]
    assert [[c.text for c in part] for part in split_breaks(chunks)] == [["a cat"], ["a dog"]]
    assert parse_emphasis("BREAKFAST") == [PromptChunk("BREAKFAST", 1.0)]


# A1111's own doctest examples for parse_prompt_attention (modules/prompt_parser.py), as data.
A1111_ATTENTION_EXAMPLES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_ATTENTION_EXAMPLES)
def test_a1111_attention_examples(prompt: str, expected: list[tuple[str, float]]) -> None:
    """Same segments and the very same floating-point weights as A1111 (multiplied in the same order)."""
    assert weights(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(((cat", [("cat", pytest.approx(1.331))]),
        ("cat)", [("cat)", 1.0)]),
        ("(cat]", [("cat]", pytest.approx(1.1))]),
        ("[cat", [("cat", pytest.approx(1 / 1.1))]),
        ("a ]b[ c", [("a ]b", 1.0), (" c", pytest.approx(1 / 1.1))]),
        ("([cat:1.5)", [("cat", pytest.approx(1.5 / 1.1))]),
        (r"a \ b \\ c", [("a  b \\ c", 1.0)]),
    ],
)
def test_unbalanced_brackets_are_read_as_a1111_reads_them(prompt: str, expected: list) -> None:
    """Closing brackets with nothing to close are text; open ones weight the rest; a lone backslash vanishes."""
    assert weights(prompt) == expected


@pytest.mark.parametrize("prompt", ["(cat:1e30)", "(cat:inf)", "(cat:nan)", "(cat:-1)", "(cat:3.5)"])
def test_absurd_weights_name_the_allowed_range(prompt: str) -> None:
    with pytest.raises(InvalidInput, match="between 0 and 3"):
        parse_emphasis(prompt)


def test_nesting_past_the_limit_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="between 0 and 3"):
        parse_emphasis("(" * 12 + "cat" + ")" * 12)


def test_empty_and_overlong_prompts() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        validate_prompt("   \n", max_chars=2000)
    with pytest.raises(InvalidInput) as info:
        validate_prompt("x" * 50_000, max_chars=2000)
    assert "2,000" in str(info.value) and "50,000" in str(info.value)
    [part] = validate_prompt("", max_chars=10, allow_empty=True)
    assert part.schedule == ((150, ""),) and parse_emphasis("") == []


def test_translation_to_compel_syntax() -> None:
    assert compel_prompts("((cat))") == ["(cat)1.21"]
    assert compel_prompts("[cat]") == ["(cat)0.9090909091"]
    assert compel_prompts("(cat:1.3)") == ["(cat)1.3"]
    assert compel_prompts("a (red:1.5) cat") == ["(a) (red)1.5 (cat)"]
    assert compel_prompts(r'\(lit\) "q"') == ['(\\(lit\\) \\"q\\")']
    assert compel_prompts("a BREAK b") == ["(a)", "(b)"]
