"""Checkpoints and LoRAs by name on the tiny models: a second checkpoint (the tiny builder, another seed) and a
tiny LoRA made with peft, configured under names; drawn, named in the PNG parameters, and gone afterwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from storyloom.errors import InvalidInput
from storyloom.models.image.txt2img import ImageBatch, Txt2Img
from storyloom.models.runtime.tiny import TINY_SEED, build_tiny_sd15, make_tiny_config
from storyloom.worker.resources import ModelResources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "a watercolor painting of a small orange cat"


def build_tiny_lora(sd15: Path, target: Path, *, seed: int) -> Path:
    """A LoRA for the tiny SD model's UNet and text encoder attention, with random (not zero) up-projections."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(sd15, safety_checker=None, requires_safety_checker=False)
    generator = torch.Generator().manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    pipe.text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj"]))
    with torch.no_grad():
        for module in (pipe.unet, pipe.text_encoder):
            for name, parameter in module.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    StableDiffusionPipeline.save_lora_weights(
        target.parent,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet)),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.text_encoder)),
        weight_name=target.name,
    )
    return target


@pytest.fixture(scope="module")
def named(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("named")
    other = root / "other-sd15"
    build_tiny_sd15(other, seed=TINY_SEED + 1)
    ink = build_tiny_lora(tiny_models.sd15, root / "loras" / "ink.safetensors", seed=5)
    config = make_tiny_config(root / "data", tiny_models, image={"steps": 3})
    names = {"checkpoints": {"other": str(other)}, "loras": {"ink": str(ink)}}
    config = config.model_copy(update={"models": config.models.model_copy(update=names)})
    return config, other, ink


@pytest.fixture(scope="module")
def txt2img(named, cache) -> Txt2Img:
    return Txt2Img.from_config(named[0], cache)


def draw(task: Txt2Img, prompt: str = PROMPT) -> ImageBatch:
    return task(prompt, "blurry", seed=8, width=32, height=32, num_images=2)


def pixels(batch: ImageBatch) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.int16) for image in batch.images]


def same(a: ImageBatch, b: ImageBatch) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(pixels(a), pixels(b)))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_lora_named_in_the_prompt_changes_the_pictures_and_leaves_no_trace(txt2img: Txt2Img, named) -> None:
    _config, _other, ink = named
    before = draw(txt2img)
    with_ink = draw(txt2img, f"{PROMPT} <lora:ink:0.8>")
    assert not same(before, with_ink)
    weaker = draw(txt2img, f"{PROMPT} <lora:ink:0.3>")
    assert not same(weaker, with_ink) and not same(weaker, before)
    assert with_ink.parameters[0].extra["Lora hashes"] == f"ink: {sha256(ink)[:12]}"
    assert with_ink.parameters[0].prompt == f"{PROMPT} <lora:ink:0.8>"
    after = draw(txt2img)
    assert same(before, after)  # unloaded: the base draws bit for bit as before
    assert not getattr(txt2img.pipe.unet, "peft_config", None)


def test_a_lora_at_weight_zero_draws_the_base(txt2img: Txt2Img) -> None:
    assert np.allclose(
        np.stack(pixels(draw(txt2img))), np.stack(pixels(draw(txt2img, f"{PROMPT} <lora:ink:0>"))), atol=1
    )


def test_an_unknown_lora_lists_the_known_ones(txt2img: Txt2Img) -> None:
    with pytest.raises(InvalidInput, match="unknown LoRA 'paint'.*ink"):
        draw(txt2img, f"{PROMPT} <lora:paint:0.5>")


def test_a_checkpoint_by_name_draws_its_own_pictures_and_names_itself(txt2img: Txt2Img, named, cache) -> None:
    config, other, _ink = named
    other_task = Txt2Img.from_config(config, cache, checkpoint="other")
    base, alternative = draw(txt2img), draw(other_task)
    assert not same(base, alternative)
    params = alternative.parameters[0]
    assert params.model == "other"
    assert params.extra["Model hash"] == sha256(other / "unet" / "diffusion_pytorch_model.safetensors")[:10]
    assert "Model: other" in params.to_infotext() and "Model hash: " in params.to_infotext()
    assert "Model hash" not in base.parameters[0].extra
    with_lora = draw(other_task, f"{PROMPT} <lora:ink>")  # a LoRA on the other checkpoint too
    assert not same(with_lora, alternative) and same(draw(other_task), alternative)


def test_workers_keep_a_pipeline_per_checkpoint_within_the_budget(named) -> None:
    config = named[0]
    roomy = ModelResources(config, budget_bytes=10**12, estimates={"image": 10**6, "image:other": 10**6})
    base, other = roomy.txt2img(), roomy.txt2img("other")
    assert base is not other and roomy.txt2img("other") is other
    assert roomy.loaded() == ("txt2img", "txt2img:other")
    tight = ModelResources(config, budget_bytes=10**6, estimates={"image": 10**6, "image:other": 10**6})
    tight.txt2img()
    tight.txt2img("other")  # the base's group is unloaded to make room
    assert tight.loaded() == ("txt2img:other",)
    with pytest.raises(InvalidInput, match="unknown model 'dreamy'; the known models: other"):
        tight.txt2img("dreamy")
    roomy.close()
    tight.close()


def test_variations_draw_with_the_loras_of_their_prompt(txt2img: Txt2Img, named, cache) -> None:
    from storyloom.models.image.variations import Variations

    variations = Variations.from_config(named[0], cache)
    source = draw(txt2img).images[0]

    def vary(prompt: str) -> ImageBatch:
        return variations(source, prompt=prompt, negative_prompt="", seed=3, num_images=1, strength=0.8)

    plain = vary(PROMPT)
    inked = vary(f"{PROMPT} <lora:ink:0.9>")
    assert not same(plain, inked) and "Lora hashes" in inked.parameters[0].extra
    assert same(vary(PROMPT), plain)


def test_the_upscalers_redraw_uses_the_loras_of_its_prompt(txt2img: Txt2Img, named, cache) -> None:
    from storyloom.models.image.upscale import Upscaler

    upscaler = Upscaler.from_config(named[0], cache)
    source = draw(txt2img).images[0]

    def upscale(prompt: str):
        return upscaler(source, prompt=prompt, negative_prompt="", seed=2, mode="chain")

    plain = upscale(PROMPT)
    inked = upscale(f"{PROMPT} <lora:ink:0.9>")
    assert np.asarray(plain.image).tobytes() != np.asarray(inked.image).tobytes()
    assert "Lora hashes" in inked.parameters.extra and "Lora hashes" not in plain.parameters.extra
    assert np.asarray(upscale(PROMPT).image).tobytes() == np.asarray(plain.image).tobytes()


def test_a_prompt_lora_joins_a_characters_lora_and_leaves_it_loaded(txt2img: Txt2Img, named) -> None:
    ink = named[2]
    base = draw(txt2img)
    with txt2img.using_lora(ink, adapter_name="character_1", scale=1.0):
        character = draw(txt2img)
        both = draw(txt2img, f"{PROMPT} <lora:ink:0.7>")
        assert txt2img.pipe.get_active_adapters() == ["character_1"]
        again = draw(txt2img)
    assert not same(character, base) and not same(both, character)
    assert same(again, character)
    assert same(draw(txt2img), base)
