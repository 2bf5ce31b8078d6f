"""Compel reads the weights the domain's translation meant, and the prompt encoder turns them into conditioning
(parsing A1111 emphasis itself is tested in tests/domain/test_prompts.py)."""

from __future__ import annotations

import pytest
import torch
from compel import Compel
from hypothesis import given, settings
from hypothesis import strategies as st

from storyloom.domain.prompts import (
    PromptChunk,
    compel_prompts,
    parse_emphasis,
    to_compel,
)
from storyloom.errors import InvalidInput
from storyloom.models.image.conditioning import PromptEncoder, to_conjunction


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("((cat))", 1.21), ("[cat]", 1 / 1.1), ("(cat:1.3)", 1.3), ("cat", 1.0)],
)
def test_compel_reads_the_weights_we_meant(prompt: str, expected: float) -> None:
    """The bug this module exists for: compel itself would read ((cat)) as 1.0 and (cat:1.3) as text."""
    [translated] = compel_prompts(prompt)
    [fragment] = Compel.parse_prompt_string(translated).prompts[0].children
    assert fragment.text == "cat"
    assert fragment.weight == pytest.approx(expected)
    untranslated = Compel.parse_prompt_string(prompt).prompts[0].children
    assert all(f.weight == 1.0 for f in untranslated) or prompt == "[cat]"


def per_character(chunks: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(char, round(weight, 6)) for text, weight in chunks for char in text if not char.isspace()]


text_alphabet = st.sampled_from(list("abcxyz019 ,.:;!?'\"()+-=\\/_&#"))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(text_alphabet, min_size=1, max_size=12), st.sampled_from([1.0, 1.1, 1.21, 0.5, 2.5, 0.0])),
        min_size=1,
        max_size=4,
    )
)
def test_any_text_survives_compels_parser(chunks: list[tuple[str, float]]) -> None:
    """Every non-space character reaches compel, with its weight (characters compel cannot hold inside a
    weighted group, such as '=', go between groups at weight 1)."""
    translated = to_compel([PromptChunk(text, weight) for text, weight in chunks])
    fragments = Compel.parse_prompt_string(translated).prompts[0].children if translated else []
    got = per_character([(f.text, f.weight) for f in fragments])
    expected = []
    for text, weight in chunks:
        for position, char in enumerate(text):
            if char.isspace():
                continue
            unsafe = char in "=\\" or (
                char in "+-"
                and (position + 1 == len(text) or text[position + 1].isspace() or text[position + 1] in '()",.+-=\\')
            )
            expected.append((char, 1.0 if unsafe else round(weight, 6)))
    assert got == expected, translated


@pytest.fixture(scope="module")
def encoder(tiny_models) -> PromptEncoder:
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_models.sd15 / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(tiny_models.sd15 / "text_encoder").eval()
    return PromptEncoder(tokenizer, text_encoder, max_chars=2000)


def test_compel_gets_the_fragments_and_weights(encoder: PromptEncoder, monkeypatch) -> None:
    """Spy on compel's weighting layer: the A1111 weights arrive there (1.21, 1/1.1, 1.3)."""
    provider = encoder._compel.conditioning_provider
    seen: list[tuple[list[str], list[float]]] = []
    original = provider.get_embeddings_for_weighted_prompt_fragments

    def spy(text_batch, fragment_weights_batch, **kwargs):
        seen.append((list(text_batch[0]), list(fragment_weights_batch[0])))
        return original(text_batch=text_batch, fragment_weights_batch=fragment_weights_batch, **kwargs)

    monkeypatch.setattr(provider, "get_embeddings_for_weighted_prompt_fragments", spy)
    encoder.encode("a ((cat)) on [grass] (sun:1.3)", "blurry")
    texts, weights_seen = seen[0]
    assert texts == ["a", "cat", "on", "grass", "sun"]
    assert weights_seen == pytest.approx([1.0, 1.21, 1.0, 1 / 1.1, 1.3])
    assert seen[1] == (["blurry"], [1.0])


@pytest.mark.parametrize(
    "prompt",
    ["a ((cat)) on [grass] (sun:1.3)", "portrait, (detailed face:1.2), [[blurry]], 8k", "a cat BREAK (a dog:0.8)"],
)
def test_translated_string_through_compel_gives_the_same_conditioning(encoder: PromptEncoder, prompt: str) -> None:
    """Handing compel the translated string (its own parser) and handing it our fragments agree exactly."""
    direct = encoder.encode_one(prompt)
    via_string = torch.cat([encoder._compel(text) for text in compel_prompts(prompt)], dim=1)
    assert direct.shape == via_string.shape
    assert torch.allclose(direct, via_string, atol=1e-6)
    parsed = [
        [(f.text, f.weight) for f in flat.children]
        for text in compel_prompts(prompt)
        for flat in Compel.parse_prompt_string(text).prompts
    ]
    ours = [[(f.text, f.weight) for f in flat.children] for flat in to_conjunction(parse_emphasis(prompt)).prompts]
    assert [[w for _, w in part] for part in parsed] == [[pytest.approx(w) for _, w in part] for part in ours]


def test_emphasis_changes_the_conditioning(encoder: PromptEncoder) -> None:
    plain, _ = encoder.encode("a cat on a mat")
    emphasised, _ = encoder.encode("a ((cat)) on a mat")
    down, _ = encoder.encode("a [cat] on a mat")
    assert plain.shape == emphasised.shape == (1, 77, 32)
    assert not torch.allclose(plain, emphasised)
    assert not torch.allclose(plain, down)
    again, _ = encoder.encode("a cat on a mat")
    assert torch.equal(plain, again)


def test_negative_prompt_changes_the_negative_conditioning(encoder: PromptEncoder) -> None:
    positive_a, empty = encoder.encode("a cat", "")
    positive_b, blurry = encoder.encode("a cat", "blurry, low quality")
    assert torch.equal(positive_a, positive_b)
    assert not torch.allclose(empty, blurry)


def test_long_prompts_are_chunked_and_shapes_match(encoder: PromptEncoder) -> None:
    long_prompt = ", ".join(["a small orange cat in a garden"] * 20)
    assert len(encoder._compel.conditioning_provider.tokenizer(long_prompt).input_ids) > 77
    positive, negative = encoder.encode(long_prompt + ", a red dragon", "blurry")
    assert positive.shape[1] > 77 and positive.shape[1] % 77 == 0
    assert positive.shape == negative.shape
    # Nothing is truncated: changing only the last word, far past token 77, changes the conditioning.
    changed, _ = encoder.encode(long_prompt + ", a blue dragon", "blurry")
    assert changed.shape == positive.shape
    assert not torch.allclose(changed, positive)
    assert torch.equal(changed[:, :77], positive[:, :77])


def test_break_encodes_parts_separately(encoder: PromptEncoder) -> None:
    joined, _ = encoder.encode("a cat, a dog")
    broken, negative = encoder.encode("a cat BREAK a dog")
    assert joined.shape[1] == 77
    assert broken.shape[1] == 154 and negative.shape == broken.shape


def test_encoder_validates_before_encoding(encoder: PromptEncoder) -> None:
    with pytest.raises(InvalidInput):
        encoder.encode("", "")
    with pytest.raises(InvalidInput):
        encoder.encode("cat", "((((((((((((bad")  # nested past the weight limit
    with pytest.raises(InvalidInput):
        encoder.encode("[cat:dog:-2]", "")
