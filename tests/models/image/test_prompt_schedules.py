"""Prompt editing, alternation and AND really steer the denoising loop on the tiny model: the UNet sees each
step's conditioning, and the pictures follow (txt2img and variations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from storyloom.errors import InvalidInput
from storyloom.models.image.txt2img import ImageBatch, Txt2Img
from storyloom.models.image.variations import Variations
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT, DOG = "a watercolor painting of a small orange cat", "a pencil drawing of a big black dog"


@pytest.fixture(scope="module")
def txt2img(tiny_models, tmp_path_factory, cache) -> Txt2Img:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 6})
    return Txt2Img.from_config(config, cache)


def draw(txt2img: Txt2Img, prompt: str, **kwargs) -> ImageBatch:
    kwargs.setdefault("num_images", 2)
    return txt2img(prompt, "blurry", seed=5, width=32, height=32, **kwargs)


def arrays(batch: ImageBatch) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.int16) for image in batch.images]


def same(a: ImageBatch, b: ImageBatch) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(arrays(a), arrays(b)))


class UNetSpy:
    """Records the conditioning batch the UNet ran with at each call (a forward hook sees the inputs as the
    UNet's forward got them, after every pre-hook)."""

    def __init__(self, unet) -> None:
        self.calls: list[torch.Tensor] = []
        self.handle = unet.register_forward_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs, output) -> None:
        self.calls.append(kwargs["encoder_hidden_states"].detach().clone())

    def __enter__(self) -> UNetSpy:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def test_edit_at_zero_is_the_second_prompt_and_at_one_point_zero_the_first(txt2img: Txt2Img) -> None:
    cat, dog = draw(txt2img, CAT), draw(txt2img, DOG)
    assert not same(cat, dog)
    assert same(draw(txt2img, f"[{CAT}:{DOG}:0]"), dog)
    assert same(draw(txt2img, f"[{CAT}:{DOG}:1.0]"), cat)  # a fraction: all the steps
    # A step number: as in A1111, 1 means "after step 1", so the picture is neither.
    after_one = draw(txt2img, f"[{CAT}:{DOG}:1]")
    assert not same(after_one, cat) and not same(after_one, dog)


def test_editing_and_alternation_change_the_picture_and_are_repeatable(txt2img: Txt2Img) -> None:
    cat, dog = draw(txt2img, CAT), draw(txt2img, DOG)
    for prompt in (f"[{CAT}:{DOG}:0.5]", f"[{CAT}|{DOG}]", f"{CAT} AND {DOG}", f"{CAT}:1.5"):
        batch = draw(txt2img, prompt)
        assert not same(batch, cat) and not same(batch, dog), prompt
        assert same(batch, draw(txt2img, prompt)), prompt
        assert batch.parameters[0].prompt == prompt


def test_the_unet_sees_each_steps_prompt(txt2img: Txt2Img) -> None:
    """[cat:dog:2] at 6 steps: A1111's sampler uses cat while its 0-based step is at most 2, then dog."""
    encoder = txt2img.encoder
    cat, dog = encoder.encode_one(CAT), encoder.encode_one(DOG)
    blurry = encoder.encode_one("blurry")
    with UNetSpy(txt2img.pipe.unet) as spy:
        draw(txt2img, f"[{CAT}:{DOG}:2]", num_images=1)
    assert len(spy.calls) == 6
    for step, hidden in enumerate(spy.calls):
        assert hidden.shape[0] == 2  # (negative, positive) for guidance
        assert torch.equal(hidden[0], blurry[0])
        assert torch.equal(hidden[1], (cat if step <= 2 else dog)[0]), step


def test_alternation_switches_every_step(txt2img: Txt2Img) -> None:
    encoder = txt2img.encoder
    cat, dog = encoder.encode_one(CAT), encoder.encode_one(DOG)
    with UNetSpy(txt2img.pipe.unet) as spy:
        draw(txt2img, f"[{CAT}|{DOG}]", num_images=1)
    # A1111's schedule is [1, cat], [2, dog], [3, cat] …; its sampler's step 0 and 1 both fall in the first.
    expected = [cat, cat, dog, cat, dog, cat]
    assert all(torch.equal(hidden[1], want[0]) for hidden, want in zip(spy.calls, expected))


def test_and_runs_every_part_in_one_batch_and_weighs_them(txt2img: Txt2Img) -> None:
    encoder = txt2img.encoder
    cat, dog = encoder.encode_one(CAT), encoder.encode_one(DOG)
    with UNetSpy(txt2img.pipe.unet) as spy:
        batch = draw(txt2img, f"{CAT} AND {DOG}:0.5", num_images=2)
    assert len(batch.images) == 2
    assert len(spy.calls) == 6
    hidden = spy.calls[0]
    assert hidden.shape[0] == 6  # negative ×2, cat ×2, dog ×2
    assert torch.equal(hidden[2], cat[0]) and torch.equal(hidden[4], dog[0])
    # A part at weight 0 adds nothing: the picture is the other part's, up to float rounding.
    alone = arrays(draw(txt2img, CAT))
    zero = arrays(draw(txt2img, f"{CAT} AND {DOG}:0"))
    assert all(np.abs(a - b).max() <= 2 for a, b in zip(alone, zero))


def test_and_without_guidance_still_composes(txt2img: Txt2Img) -> None:
    plain = draw(txt2img, CAT, guidance_scale=1.0)
    composed = draw(txt2img, f"{CAT} AND {DOG}", guidance_scale=1.0)
    assert len(composed.images) == 2 and not same(plain, composed)


def test_schedules_in_the_negative_prompt_and_no_and_there(txt2img: Txt2Img) -> None:
    plain = txt2img(CAT, "blurry", seed=5, width=32, height=32, num_images=1)
    edited = txt2img(CAT, "[blurry:dark:0.5]", seed=5, width=32, height=32, num_images=1)
    assert not same(plain, edited)
    with pytest.raises(InvalidInput, match="AND cannot be used in the negative prompt"):
        txt2img(CAT, "blurry AND dark", seed=5, width=32, height=32)


def test_bad_schedules_are_refused_before_drawing(txt2img: Txt2Img) -> None:
    with pytest.raises(InvalidInput, match="fraction"):
        draw(txt2img, f"[{CAT}:{DOG}:2.5]")


def test_variations_follow_the_schedule(txt2img: Txt2Img, cache) -> None:
    variations = Variations.from_config(txt2img.config, cache)
    source = draw(txt2img, CAT, num_images=1).images[0]

    def vary(prompt: str) -> ImageBatch:
        return variations(source, prompt=prompt, negative_prompt="", seed=3, num_images=1, strength=0.9)

    assert same(vary(f"[{CAT}:{DOG}:0]"), vary(DOG))
    assert not same(vary(f"{CAT} AND {DOG}"), vary(CAT))


def test_image_prompts_take_editing_and_and(txt2img: Txt2Img, cache) -> None:
    """The picture's embedding travels with every AND part (IP-Adapter inputs are widened with the batch)."""
    from PIL import Image

    from storyloom.models.image.image_prompt import ImagePrompt

    image_prompt = ImagePrompt.from_config(txt2img.config, cache)
    red = Image.new("RGB", (48, 40), (230, 20, 20))

    def guided(prompt: str) -> ImageBatch:
        return image_prompt(prompt, "", pictures=[red], image_weight=0.7, seed=5, width=32, height=32, num_images=2)

    plain = guided(CAT)
    for prompt in (f"{CAT} AND {DOG}", f"[{CAT}:{DOG}:0.5]"):
        batch = guided(prompt)
        assert len(batch.images) == 2 and not same(batch, plain), prompt
    assert same(guided(f"[{CAT}:{DOG}:0]"), guided(DOG))


def test_the_controlnet_redraw_takes_editing_and_and(txt2img: Txt2Img, cache) -> None:
    """ControlNet residuals are widened with the batch too, so AND works in the upscaler's re-drawing."""
    from storyloom.models.image.upscale import Upscaler

    redraw = Upscaler.from_config(txt2img.config, cache).controlnet
    source = draw(txt2img, CAT, num_images=1).images[0]

    def pixels(prompt: str) -> np.ndarray:
        return np.asarray(redraw(source, prompt=prompt, seed=4, strength=0.9).image, dtype=np.int16)

    plain = pixels(CAT)
    assert not np.array_equal(pixels(f"{CAT} AND {DOG}"), plain)
    assert np.array_equal(pixels(f"[{DOG}:{CAT}:0]"), plain)
    assert not np.array_equal(pixels(f"[{DOG}:{CAT}:0.5]"), plain)


def test_the_upscale_redraw_is_a_second_pass_of_the_schedule(txt2img: Txt2Img, cache) -> None:
    """The upscaler's re-drawing of a picture counts on from the picture's own steps, so [cat:dog:1.5] switches
    to dog halfway through it, as A1111's hires fix does (in a picture's own steps that fraction is refused)."""
    from storyloom.models.image.upscale import Upscaler

    first = draw(txt2img, CAT, num_images=1)
    redraw = Upscaler.from_config(txt2img.config, cache).controlnet
    encoder = redraw.prompt_encoder
    cat, dog = encoder.encode_one(CAT), encoder.encode_one(DOG)
    with UNetSpy(redraw.pipe.unet) as spy:
        redraw(first.images[0], prompt=f"[{CAT}:{DOG}:1.5]", seed=4, strength=1.0, num_inference_steps=6,
               first_pass_steps=6)  # fmt: skip
    # A1111's counting: the schedule ends at step 3 of 6, so steps 0–3 draw cat and 4–5 dog.
    assert [torch.equal(hidden[1], cat[0]) for hidden in spy.calls] == [True] * 4 + [False] * 2
    assert all(torch.equal(hidden[1], dog[0]) for hidden in spy.calls[4:])
