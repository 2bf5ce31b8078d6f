"""Consistent self-attention on the tiny models: pages drawn sharing self-attention with a reference picture
differ from plain ones, repeat for the same seed, and the plain pipeline's output is
back bit for bit once the block ends."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storyloom.models.image.consistent_attention import consistent_attention_fits
from storyloom.models.image.references import PageCharacter, drawing_characters
from storyloom.models.image.txt2img import Txt2Img
from storyloom.models.runtime.loading import ModelCache
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "the cat walks to the river"
SIDE = 64


@pytest.fixture(scope="module")
def txt2img(tiny_models, tmp_path_factory, cache: ModelCache) -> Txt2Img:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 4})
    return Txt2Img.from_config(config, cache)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def draw(task: Txt2Img, prompt: str = PROMPT, seed: int = 11, count: int = 1) -> list[np.ndarray]:
    batch = task(prompt, seed=seed, width=SIDE, height=SIDE, num_images=count)
    return [pixels(image) for image in batch.images]


def test_shared_attention_changes_pages_and_off_restores_the_plain_output(txt2img) -> None:
    reference = Image.fromarray(draw(txt2img, "a cat in a red coat", seed=2)[0].astype(np.uint8))
    plain = draw(txt2img, count=2)
    with drawing_characters(txt2img, [], shared_attention=reference):
        shared = draw(txt2img, count=2)
        again = draw(txt2img, count=2)
    after = draw(txt2img, count=2)
    assert [picture.shape for picture in shared] == [(SIDE, SIDE, 3)] * 2
    # The tiny random UNet's attention is nearly uniform, so sharing moves its pictures by a few tenths of a level.
    assert all(np.abs(s - p).mean() > 0.1 for s, p in zip(shared, plain))
    assert all(np.array_equal(s, a) for s, a in zip(shared, again))
    assert all(np.array_equal(p, a) for p, a in zip(plain, after))


def test_shared_attention_and_a_reference_character_together_then_plain_again(txt2img) -> None:
    plain = draw(txt2img)[0]
    cast = [PageCharacter("Bhna", "whole", Image.new("RGB", (40, 40), (20, 200, 20)), 0.6)]
    shared = Image.new("RGB", (SIDE, SIDE), (240, 220, 40))
    with drawing_characters(txt2img, cast, shared_attention=shared):
        both = draw(txt2img)[0]
    with drawing_characters(txt2img, cast):
        reference_only = draw(txt2img)[0]
    assert np.abs(both - reference_only).mean() > 0.1
    assert np.array_equal(draw(txt2img)[0], plain)


def test_the_memory_decision_weighs_the_extra_item_against_the_budget(tiny_config) -> None:
    assert consistent_attention_fits(tiny_config, budget_bytes=64 * 1024**3)
    assert not consistent_attention_fits(tiny_config, budget_bytes=1024**2)
    # A 6 GB card holds SD 1.5 at 512 with the reference item; at 1024 the attention scores do not fit.
    big = tiny_config.model_copy(update={"image": tiny_config.image.model_copy(update={"width": 1024, "height": 1024})})
    assert not consistent_attention_fits(big, budget_bytes=6 * 1024**3, weights_bytes=3 * 1024**3)
    usual = tiny_config.model_copy(update={"image": tiny_config.image.model_copy(update={"width": 512, "height": 512})})
    assert consistent_attention_fits(usual, budget_bytes=6 * 1024**3, weights_bytes=2 * 1024**3)


def test_shared_attention_with_and_prompts_and_chaos(txt2img) -> None:
    """AND's composition hooks on the UNet widen the batch; the reference item joins after and leaves before."""
    reference = Image.new("RGB", (SIDE, SIDE), (240, 220, 40))
    composed = "a cat AND a river:0.6"
    plain = pixels(txt2img(composed, seed=4, width=SIDE, height=SIDE, num_images=2, chaos=30).images[1])
    with drawing_characters(txt2img, [], shared_attention=reference):
        shared = txt2img(composed, seed=4, width=SIDE, height=SIDE, num_images=2, chaos=30).images
    assert [picture.size for picture in shared] == [(SIDE, SIDE)] * 2
    assert np.abs(pixels(shared[1]) - plain).mean() > 0.1
    assert np.array_equal(
        pixels(txt2img(composed, seed=4, width=SIDE, height=SIDE, num_images=2, chaos=30).images[1]), plain
    )
