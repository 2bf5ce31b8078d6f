"""Variations: img2img from one image with new seeds, same size as the source."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storyloom.domain.parameters import GenerationParameters, read_png_parameters, save_png
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.image.txt2img import Txt2Img
from storyloom.models.image.variations import Variations
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def config(tiny_models, tmp_path_factory):
    return make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 6})


@pytest.fixture(scope="module")
def variations(config, cache) -> Variations:
    return Variations.from_config(config, cache)


@pytest.fixture(scope="module")
def source(config, cache) -> Image.Image:
    batch = Txt2Img.from_config(config, cache)(
        "a small orange cat", "blurry", seed=40, num_images=1, width=48, height=40
    )
    return batch.images[0]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_components_are_shared_with_txt2img(config, cache, variations: Variations) -> None:
    txt2img = Txt2Img.from_config(config, cache)
    assert variations.pipe.unet is txt2img.pipe.unet
    assert variations.pipe.vae is txt2img.pipe.vae
    assert variations.pipe.text_encoder is txt2img.pipe.text_encoder
    assert variations.pipe.scheduler is not txt2img.pipe.scheduler  # step state is per pipeline


def test_four_variations_differ_from_the_source_and_keep_its_size(variations: Variations, source: Image.Image) -> None:
    batch = variations(source, "a small orange cat", seed=100)
    assert batch.seeds == [100, 101, 102, 103]
    assert len(batch.images) == 4
    assert all(image.size == source.size for image in batch.images)
    for image in batch.images:
        assert np.abs(pixels(image) - pixels(source)).mean() > 0.5
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).max() > 0
    assert batch.parameters[0].denoising_strength == pytest.approx(0.35)
    assert (batch.parameters[0].width, batch.parameters[0].height) == source.size


def test_strong_wanders_further_than_subtle(variations: Variations, source: Image.Image) -> None:
    subtle = variations(source, "a cat", strength="subtle", seed=7, num_images=2)
    strong = variations(source, "a cat", strength="strong", seed=7, num_images=2)
    distance = lambda batch: np.mean([np.abs(pixels(i) - pixels(source)).mean() for i in batch.images])  # noqa: E731
    assert distance(strong) > distance(subtle)
    assert strong.parameters[0].denoising_strength == pytest.approx(0.65)


def test_odd_sized_source_comes_back_at_its_size(variations: Variations, source: Image.Image) -> None:
    odd = source.resize((45, 37))
    batch = variations(odd, "a cat", seed=1, num_images=1)
    assert batch.images[0].size == (45, 37)


def test_prompt_is_read_from_the_png(variations: Variations, source: Image.Image, tmp_path, monkeypatch) -> None:
    path = tmp_path / "source.png"
    save_png(
        source,
        path,
        GenerationParameters(prompt="a ((red)) fox", negative_prompt="blurry", seed=40, width=48, height=40),
    )
    seen: list[tuple[str, str]] = []
    original = variations.encoder.conditioning

    def spy(prompt, negative_prompt="", **kwargs):
        seen.append((prompt, negative_prompt))
        return original(prompt, negative_prompt, **kwargs)

    monkeypatch.setattr(variations.encoder, "conditioning", spy)
    batch = variations(path, seed=3, num_images=1)
    assert seen == [("a ((red)) fox", "blurry")]
    assert batch.parameters[0].prompt == "a ((red)) fox"
    assert batch.parameters[0].extra == {"Variation of seed": "40"}
    out = batch.save(tmp_path / "out")
    assert read_png_parameters(out[1]).prompt == "a ((red)) fox"


def test_same_seed_same_variation(variations: Variations, source: Image.Image) -> None:
    a = variations(source, "a cat", seed=9, num_images=1)
    b = variations(source, "a cat", seed=9, num_images=1)
    assert np.array_equal(pixels(a.images[0]), pixels(b.images[0]))


def test_progress_and_cancel(variations: Variations, source: Image.Image) -> None:
    events: list[StepProgress] = []
    variations(source, "a cat", strength="strong", seed=1, num_images=1, num_inference_steps=10, progress=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]  # int(10 * 0.65) steps run
    assert all(e.total == 6 for e in events)
    with pytest.raises(JobCanceled):
        variations(source, "a cat", seed=1, num_images=1, should_cancel=lambda: True)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"strength": "wild"}, ["strength", "subtle, strong"]),
        ({"strength": 1.5}, ["strength", "between 0 and 1"]),
        ({"strength": 0.01}, ["no step to run"]),
        ({"num_inference_steps": 0}, ["steps must be between 1 and 150"]),
        ({"prompt": "[cat:dog:-1]"}, ["negative"]),
        ({"image": "/nonexistent/cat.png"}, ["no such file"]),
    ],
)
def test_bad_input(variations: Variations, source: Image.Image, kwargs: dict, words: list[str]) -> None:
    arguments = {"image": source, "prompt": "a cat", **kwargs}
    with pytest.raises(InvalidInput) as info:
        variations(**arguments)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_non_image_file_is_rejected(variations: Variations, tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not really a picture")
    with pytest.raises(InvalidInput, match="not an image"):
        variations(path)


def test_variation_of_upscale_is_drawn_at_base_size(variations: Variations, config, source: Image.Image) -> None:
    """An upscaled picture (here 4× the configured 64² area in each direction) is varied at the base size in its
    shape, not at its own: four 4096² PNGs per press would fill the disk."""
    upscaled = source.resize((source.width * 4, source.height * 4), Image.Resampling.LANCZOS)
    batch = variations(upscaled, "a cat", seed=2, num_images=2)
    base_area = config.image.width * config.image.height
    for image in batch.images:
        assert image.size == (72, 56)  # 192×160 scaled to about 64×64 pixels, multiples of 8
        assert image.width * image.height <= 1.25 * base_area
    assert (batch.parameters[0].width, batch.parameters[0].height) == (72, 56)
