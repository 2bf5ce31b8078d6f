"""Characters' reference pictures on the tiny models: the IP-Adapter plus really steers a picture, several
characters each steer only their own column, and the shared UNet draws exactly as before afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from storyloom.models.image.image_prompt import load_image_adapter
from storyloom.models.image.references import PageCharacter, character_regions, drawing_characters, region_masks
from storyloom.models.image.txt2img import Txt2Img
from storyloom.models.runtime.loading import ModelCache
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "a little cat and a dog in a garden"
RED = Image.new("RGB", (48, 48), (230, 20, 20))
STRIPES = Image.fromarray((np.indices((48, 48)).sum(axis=0) % 8 < 4).astype(np.uint8) * 255).convert("RGB")
SIDE = 64


@pytest.fixture(scope="module")
def txt2img(tiny_models, tmp_path_factory, cache: ModelCache) -> Txt2Img:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 4})
    return Txt2Img.from_config(config, cache)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def draw(task: Txt2Img) -> np.ndarray:
    return pixels(task(PROMPT, seed=3, width=SIDE, height=SIDE, num_images=1).images[0])


def test_the_character_adapter_is_the_plus_variant(txt2img) -> None:
    adapter = load_image_adapter(txt2img.config, txt2img.cache, character=True)
    plain = load_image_adapter(txt2img.config, txt2img.cache)
    assert adapter.plus and not plain.plus and adapter.name == "ip-adapter-plus_sd15"
    embeds = adapter.embed_each([RED, STRIPES])
    # The encoder's penultimate hidden states (patches and class token) per picture, and an all-zero picture's.
    assert embeds.positive.shape == (1, 2, 17, 32) and embeds.negative.shape == embeds.positive.shape
    assert not torch.equal(embeds.negative, torch.zeros_like(embeds.negative))


def test_a_reference_changes_the_picture_and_the_base_is_bit_identical_after(txt2img) -> None:
    before = draw(txt2img)
    with drawing_characters(txt2img, [PageCharacter("Bhna", "whole", RED, 0.8)]):
        guided = draw(txt2img)
        again = draw(txt2img)
    after = draw(txt2img)
    assert np.abs(guided - before).mean() > 1.0
    assert np.array_equal(guided, again)
    assert np.array_equal(before, after)


def test_a_character_without_a_reference_changes_nothing(txt2img) -> None:
    before = draw(txt2img)
    with drawing_characters(txt2img, [PageCharacter("Rex", "whole", None, 0.6)]):
        unguided = draw(txt2img)
    assert np.array_equal(before, unguided)


def test_each_reference_steers_only_its_own_half(txt2img) -> None:
    def left_reference_change(positions: tuple[str, str]) -> tuple[float, float]:
        """How much the left and right halves change when the left character's reference is removed."""
        pictures = []
        for left_reference in (STRIPES, None):
            cast = [
                PageCharacter("Bhna", positions[0], left_reference, 0.5),
                PageCharacter("Rex", positions[1], RED, 0.5),
            ]  # type: ignore[arg-type]
            with drawing_characters(txt2img, cast):
                pictures.append(draw(txt2img))
        change = np.abs(pictures[0] - pictures[1]).mean(axis=2)
        return change[:, : SIDE // 2 - 4].mean(), change[:, SIDE // 2 + 4 :].mean()

    left, right = left_reference_change(("left", "right"))
    _, right_unmasked = left_reference_change(("whole", "whole"))
    # The tiny UNet's self-attention spreads some of any change over the whole picture; the mask keeps most of it
    # on the left (unmasked, both halves change alike).
    assert right < 7.5, right
    assert left > 1.4 * right, (left, right)
    assert right < 0.75 * right_unmasked, (right, right_unmasked)


def test_regions_split_the_picture_by_the_positions_in_use() -> None:
    def named(*positions: str) -> list[PageCharacter]:
        return [PageCharacter(f"c{i}", position, RED, 0.5) for i, position in enumerate(positions)]  # type: ignore[arg-type]

    assert character_regions(named("whole")) == {"c0": (0.0, 1.0)}
    assert character_regions(named("right", "left")) == {"c0": (0.5, 1.0), "c1": (0.0, 0.5)}
    thirds = character_regions(named("left", "center", "right"))
    assert thirds["c1"] == pytest.approx((1 / 3, 2 / 3))
    masks = region_masks([(0.0, 0.5), (0.5, 1.0)], 40, 8)
    assert masks.shape == (1, 2, 8, 40)
    assert masks[0, 0, :, 0].eq(1).all() and masks[0, 0, :, -1].eq(0).all()
    assert masks[0, 1, :, -1].eq(1).all() and 0 < float(masks[0, 0, 0, 19]) < 1  # a soft edge at the border
    assert torch.allclose(masks.sum(dim=1), torch.ones(1, 8, 40))


def test_download_fetches_the_character_adapter_beside_its_image_encoder() -> None:
    from storyloom.config import load_config
    from storyloom.models.runtime.download import configured_models

    specs = {spec.role: spec for spec in configured_models(load_config(None, environ={}))}
    adapter = specs["character_adapter"]
    assert adapter.name == "h94/IP-Adapter" and adapter.patterns == (
        "models/ip-adapter-plus_sd15.safetensors",
        "models/image_encoder/*.json",
        "models/image_encoder/model.safetensors",
    )


def test_a_reference_character_and_an_image_prompt_steer_together(txt2img) -> None:
    from storyloom.models.image.image_prompt import ImagePrompt

    image_prompt = ImagePrompt.from_config(txt2img.config, txt2img.cache)
    before = draw(txt2img)

    def prompted() -> np.ndarray:
        batch = image_prompt(
            PROMPT, pictures=[STRIPES], image_weight=0.7, seed=3, width=SIDE, height=SIDE, num_images=1
        )
        return pixels(batch.images[0])

    alone = prompted()
    with drawing_characters(image_prompt, [PageCharacter("Bhna", "whole", RED, 0.8)]):
        together = prompted()
        again = prompted()
    assert np.abs(together - alone).mean() > 1.0 and np.array_equal(together, again)
    assert np.array_equal(prompted(), alone)
    assert np.array_equal(draw(txt2img), before)


def test_the_plain_and_the_plus_adapter_share_one_image_encoder(txt2img) -> None:
    plus = load_image_adapter(txt2img.config, txt2img.cache, character=True)
    assert load_image_adapter(txt2img.config, txt2img.cache).encoder is plus.encoder
