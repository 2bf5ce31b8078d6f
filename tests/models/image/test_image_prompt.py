"""Pictures as prompts on the tiny models: the IP-Adapter really steers the pictures, seeds stay reproducible,
several pictures blend, and the shared UNet draws exactly as before once the adapter is out again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storyloom.errors import InvalidInput
from storyloom.models.image.image_prompt import ImagePrompt
from storyloom.models.image.txt2img import Txt2Img
from storyloom.models.runtime.loading import ModelCache
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "a little house by the sea"
RED = Image.new("RGB", (48, 40), (230, 20, 20))
GRADIENT = Image.linear_gradient("L").convert("RGB").resize((64, 64))


@pytest.fixture(scope="module")
def tasks(tiny_models, tmp_path_factory, cache: ModelCache) -> tuple[ImagePrompt, Txt2Img]:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 3})
    return ImagePrompt.from_config(config, cache), Txt2Img.from_config(config, cache)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def draw(task, *args, **kwargs):
    return task(*args, seed=5, width=32, height=32, num_images=2, **kwargs)


def test_a_picture_changes_the_output_and_the_same_seed_repeats_it(tasks) -> None:
    image_prompt, txt2img = tasks
    plain = draw(txt2img, PROMPT)
    guided = draw(image_prompt, PROMPT, pictures=[RED], image_weight=0.8)
    again = draw(image_prompt, PROMPT, pictures=[RED], image_weight=0.8)
    other = draw(image_prompt, PROMPT, pictures=[GRADIENT], image_weight=0.8)
    assert [image.size for image in guided.images] == [(32, 32)] * 2 and guided.seeds == [5, 6]
    assert np.abs(pixels(guided.images[0]) - pixels(plain.images[0])).mean() > 1.0
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(guided.images, again.images))
    assert np.abs(pixels(other.images[0]) - pixels(guided.images[0])).mean() > 1.0
    extra = guided.parameters[0].extra
    assert extra["IP-Adapter"] == "ip-adapter_sd15" and extra["IP-Adapter weight"] == "0.8"


def test_weight_zero_draws_what_the_prompt_alone_draws(tasks) -> None:
    image_prompt, txt2img = tasks
    plain = draw(txt2img, PROMPT)
    unweighted = draw(image_prompt, PROMPT, pictures=[RED], image_weight=0.0)
    assert np.abs(pixels(unweighted.images[0]) - pixels(plain.images[0])).max() <= 1


def test_several_pictures_blend_between_their_single_results(tasks) -> None:
    image_prompt, _ = tasks
    red = pixels(draw(image_prompt, PROMPT, pictures=[RED], image_weight=1.0).images[0])
    gradient = pixels(draw(image_prompt, PROMPT, pictures=[GRADIENT], image_weight=1.0).images[0])
    blend = draw(image_prompt, PROMPT, pictures=[RED, GRADIENT], image_weight=1.0)
    mixed = pixels(blend.images[0])
    assert not np.array_equal(mixed, red) and not np.array_equal(mixed, gradient)
    assert blend.parameters[0].extra["IP-Adapter images"] == "2"


def test_txt2img_is_bit_identical_before_and_after_an_image_prompt(tasks) -> None:
    image_prompt, txt2img = tasks
    before = draw(txt2img, PROMPT)
    draw(image_prompt, PROMPT, pictures=[RED])
    with pytest.raises(InvalidInput):
        draw(image_prompt, PROMPT, pictures=[RED], image_weight=2.0)  # a refused call leaves nothing behind either
    after = draw(txt2img, PROMPT)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(before.images, after.images))
    assert getattr(image_prompt.pipe.unet, "encoder_hid_proj", None) is None


@pytest.mark.parametrize(
    ("pictures", "weight", "problem"),
    [([], 0.5, "between 1 and 5 pictures"), ([RED] * 6, 0.5, "between 1 and 5"), ([RED], -0.1, "image weight")],
)
def test_bad_picture_requests_are_refused(tasks, pictures, weight, problem) -> None:
    image_prompt, _ = tasks
    with pytest.raises(InvalidInput, match=problem):
        draw(image_prompt, PROMPT, pictures=pictures, image_weight=weight)


def test_download_fetches_the_ip_adapter_and_the_describe_models() -> None:
    from storyloom.config import load_config
    from storyloom.models.runtime.download import configured_models

    specs = {spec.role: spec for spec in configured_models(load_config(None, environ={}))}
    adapter = specs["ip_adapter"]
    assert adapter.name == "h94/IP-Adapter" and adapter.patterns == (
        "models/ip-adapter_sd15.safetensors",
        "models/image_encoder/*.json",
        "models/image_encoder/model.safetensors",
    )
    assert specs["caption"].name == "Salesforce/blip-image-captioning-large"
    assert specs["describe_clip"].name == "openai/clip-vit-large-patch14"
