"""--chaos and --tile on the tiny model: chaos spreads the four pictures apart, tiling makes every convolution
wrap around, and neither leaves a trace on the next plain request."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from storyloom.errors import InvalidInput
from storyloom.models.image.tiling import seamless
from storyloom.models.image.txt2img import ImageBatch, Txt2Img
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "a watercolor painting of a small orange cat"


@pytest.fixture(scope="module")
def txt2img(tiny_models, tmp_path_factory, cache) -> Txt2Img:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 4})
    return Txt2Img.from_config(config, cache)


def draw(txt2img: Txt2Img, **kwargs) -> ImageBatch:
    kwargs.setdefault("num_images", 4)
    return txt2img(PROMPT, "blurry", seed=21, width=32, height=32, **kwargs)


def arrays(batch: ImageBatch) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.float64) for image in batch.images]


def distance(a: ImageBatch, b: ImageBatch) -> list[float]:
    """Mean pixel distance between the pictures of two batches, picture by picture."""
    return [float(np.abs(x - y).mean()) for x, y in zip(arrays(a), arrays(b))]


def test_chaos_zero_is_the_plain_batch_and_more_chaos_strays_further(txt2img: Txt2Img) -> None:
    """Each picture strays from what its seed alone would draw, the further the more chaos (each by its own
    guidance strength and conditioning noise, drawn from its seed)."""
    plain = draw(txt2img)
    assert distance(plain, draw(txt2img, chaos=0)) == [0.0] * 4
    wild = draw(txt2img, chaos=100)
    mild = draw(txt2img, chaos=10)
    assert all(d > 0 for d in distance(plain, mild))
    assert all(far > near for far, near in zip(distance(plain, wild), distance(plain, mild)))
    assert len(set(distance(plain, wild))) == 4  # each picture its own way
    assert all(np.array_equal(a, b) for a, b in zip(arrays(wild), arrays(draw(txt2img, chaos=100))))
    assert wild.parameters[0].extra["Chaos"] == "100"


def test_chaos_range_is_named(txt2img: Txt2Img) -> None:
    with pytest.raises(InvalidInput, match="chaos must be a whole number from 0 to 100"):
        draw(txt2img, chaos=150)


def test_tile_wraps_every_convolution_and_leaves_none_wrapped(txt2img: Txt2Img) -> None:
    convolutions = [
        layer
        for module in (txt2img.pipe.unet, txt2img.pipe.vae)
        for layer in module.modules()
        if isinstance(layer, torch.nn.Conv2d)
    ]
    seen: list[set[str]] = []
    handle = txt2img.pipe.unet.register_forward_pre_hook(
        lambda module, args: seen.append({layer.padding_mode for layer in convolutions})
    )
    try:
        before = draw(txt2img, num_images=1)
        tiled = draw(txt2img, num_images=1, tile=True)
    finally:
        handle.remove()
    assert seen[-1] == {"circular"} and seen[0] == {"zeros"}
    assert {layer.padding_mode for layer in convolutions} == {"zeros"}
    assert not np.array_equal(arrays(before)[0], arrays(tiled)[0])
    assert np.array_equal(arrays(before)[0], arrays(draw(txt2img, num_images=1))[0])
    assert tiled.parameters[0].extra["Tiling"] == "True"


@pytest.mark.parametrize("tile", [True, False])
def test_a_tiled_picture_has_no_edges(txt2img: Txt2Img, tile: bool) -> None:
    """With every convolution wrapping around, the picture has no edges: starting from the same noise rolled
    around (by whole UNet cells) draws the same picture rolled around, to float precision. Without tiling the
    borders make it a different picture."""
    pipe = txt2img.pipe
    prompt_embeds, negative_embeds = txt2img.encoder.encode(PROMPT, "blurry")
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    factor = pipe.vae_scale_factor

    def picture(start: torch.Tensor) -> np.ndarray:
        with seamless(pipe.unet, pipe.vae, enabled=tile):
            output = pipe(
                prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, latents=start,
                num_inference_steps=3, height=8 * factor, width=8 * factor, output_type="np",
            )  # fmt: skip
        return output.images[0]

    rolled = picture(torch.roll(latents, shifts=(4, 2), dims=(2, 3)))
    expected = np.roll(picture(latents), shift=(4 * factor, 2 * factor), axis=(0, 1))
    assert (np.abs(rolled - expected).max() < 1e-4) == tile
