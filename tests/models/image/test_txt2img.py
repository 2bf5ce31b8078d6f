"""Txt2Img on the tiny SD model: grids, seeds, progress, cancellation, safety, bad input, OOM retry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from storyloom.domain.parameters import read_png_parameters
from storyloom.errors import InvalidInput, JobCanceled, OutOfMemory
from storyloom.models.image.imaging import blurred_placeholder
from storyloom.models.image.txt2img import ImageBatch, Txt2Img
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.models.runtime.tiny import make_tiny_config

PROMPT = "a watercolor painting of a small orange cat"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def txt2img(tiny_models, tmp_path_factory) -> Txt2Img:
    config = make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models, image={"steps": 3, "preview_every": 2})
    return Txt2Img.from_config(config)


def small(txt2img: Txt2Img, *args, **kwargs) -> ImageBatch:
    """Most tests need no more than 32x32 pixels (the config's minimum is 64)."""
    kwargs.setdefault("width", 32)
    kwargs.setdefault("height", 32)
    return txt2img(*args, **kwargs)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_four_images_at_the_asked_size_and_a_grid(txt2img: Txt2Img, tmp_path: Path) -> None:
    batch = small(txt2img, PROMPT, "blurry", seed=11, width=48, height=32)
    assert isinstance(batch, ImageBatch)
    assert len(batch.images) == 4 and all(image.size == (48, 32) for image in batch.images)
    assert batch.seeds == [11, 12, 13, 14]
    assert batch.nsfw == [False] * 4
    assert [p.seed for p in batch.parameters] == [11, 12, 13, 14]
    assert batch.parameters[0].negative_prompt == "blurry" and batch.parameters[0].sampler == "DPM++ 2M Karras"
    grid = batch.grid()
    assert grid.size == (96, 64)
    assert np.array_equal(pixels(grid.crop((48, 32, 96, 64))), pixels(batch.images[3]))

    paths = batch.save(tmp_path / "out")
    assert [p.name for p in paths] == ["grid.png", "image_1.png", "image_2.png", "image_3.png", "image_4.png"]
    stored = read_png_parameters(paths[2])
    assert stored == batch.parameters[1]
    assert (stored.seed, stored.width, stored.height, stored.steps, stored.model) == (12, 48, 32, 3, "sd15")


def test_aspect_ratio_sets_the_size(txt2img: Txt2Img) -> None:
    batch = small(txt2img, PROMPT, aspect_ratio="2:3", seed=1, num_images=1, num_inference_steps=2, width=64, height=64)
    assert batch.images[0].size == (56, 80)
    assert (batch.parameters[0].width, batch.parameters[0].height) == (56, 80)
    wide = small(txt2img, PROMPT, aspect_ratio="16:9", seed=1, num_images=1, num_inference_steps=1, width=40, height=40)
    assert wide.images[0].size == (56, 32)


def test_same_seed_same_pixels_other_seed_different(txt2img: Txt2Img) -> None:
    first = small(txt2img, PROMPT, seed=5, num_images=2)
    again = small(txt2img, PROMPT, seed=5, num_images=2)
    other = small(txt2img, PROMPT, seed=6, num_images=2)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert np.array_equal(pixels(first.images[1]), pixels(again.images[1]))
    # Seeds are per image: image 2 of seed 5 is image 1 of seed 6.
    assert np.abs(pixels(first.images[1]) - pixels(other.images[0])).max() <= 1
    assert np.abs(pixels(first.images[0]) - pixels(other.images[0])).mean() > 1.0


def test_random_seed_is_reported_and_reproduces(txt2img: Txt2Img) -> None:
    batch = small(txt2img, PROMPT, num_images=2, num_inference_steps=2)
    seed = batch.seeds[0]
    assert batch.seeds == [seed, seed + 1]
    again = small(txt2img, PROMPT, seed=seed, num_images=2, num_inference_steps=2)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(batch.images, again.images))
    # Alone, the picture starts from the same noise; only the float rounding of a smaller batch may differ (the
    # math libraries split a batch of another size differently), so it is the same picture within a shade.
    alone = small(txt2img, PROMPT, seed=seed + 1, num_images=1, num_inference_steps=2)
    assert np.abs(pixels(batch.images[1]).astype(int) - pixels(alone.images[0]).astype(int)).max() <= 2


def test_negative_prompt_and_emphasis_change_the_image(txt2img: Txt2Img) -> None:
    plain = small(txt2img, "a cat", seed=3, num_images=1)
    negative = small(txt2img, "a cat", "a dog", seed=3, num_images=1)
    emphasis = small(txt2img, "a (cat:2.5)", seed=3, num_images=1)
    assert np.abs(pixels(plain.images[0]) - pixels(negative.images[0])).max() > 0
    assert np.abs(pixels(plain.images[0]) - pixels(emphasis.images[0])).max() > 0


def test_long_prompt_works(txt2img: Txt2Img) -> None:
    long_prompt = ", ".join(["a small orange cat in a sunny garden"] * 15)
    assert len(txt2img.pipe.tokenizer(long_prompt).input_ids) > 77
    batch = small(txt2img, long_prompt, "blurry", seed=2, num_images=1, num_inference_steps=2)
    assert batch.images[0].size == (32, 32)


def test_progress_reports_every_step_with_previews(txt2img: Txt2Img) -> None:
    events: list[StepProgress] = []
    small(txt2img, PROMPT, seed=1, num_inference_steps=5, progress=events.append)
    assert [(e.step, e.total) for e in events] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    with_preview = [e.step for e in events if e.preview is not None]
    assert with_preview == [2, 4]
    preview = events[1].preview
    assert preview.mode == "RGB" and preview.size == (512, 512)  # 2x2 grid of 256-pixel previews
    assert np.asarray(preview).std() > 0


def test_cancel_stops_within_one_step(txt2img: Txt2Img) -> None:
    unet_calls = 0
    decoded = 0

    def count_unet(*_args) -> None:
        nonlocal unet_calls
        unet_calls += 1

    def count_decode(*_args) -> None:
        nonlocal decoded
        decoded += 1

    hooks = [
        txt2img.pipe.unet.register_forward_hook(count_unet),
        txt2img.pipe.vae.decoder.register_forward_hook(count_decode),
    ]
    cancel = False

    def on_progress(progress: StepProgress) -> None:
        nonlocal cancel
        if progress.step == 2:
            cancel = True

    try:
        with pytest.raises(JobCanceled):
            small(txt2img, PROMPT, seed=1, num_inference_steps=10, progress=on_progress, should_cancel=lambda: cancel)
    finally:
        for hook in hooks:
            hook.remove()
    assert unet_calls == 3  # two steps done when cancel was asked, at most one more ran
    assert decoded == 0


def test_cancel_before_start_runs_nothing(txt2img: Txt2Img) -> None:
    with pytest.raises(JobCanceled):
        txt2img(PROMPT, seed=1, should_cancel=lambda: True)


def test_forced_safety_flag_blurs_and_reports(txt2img: Txt2Img) -> None:
    checker = txt2img.safety.checker
    clean = small(txt2img, PROMPT, seed=21, num_images=2, num_inference_steps=2, safety_checker=False)
    saved = checker.concept_embeds_weights.data.clone()
    try:
        # Cosine similarities are >= -1, so a threshold of -2 flags every image.
        checker.concept_embeds_weights.data.fill_(-2.0)
        flagged = small(txt2img, PROMPT, seed=21, num_images=2, num_inference_steps=2)
    finally:
        checker.concept_embeds_weights.data.copy_(saved)
    assert flagged.nsfw == [True, True]
    for original, shown in zip(clean.images, flagged.images):
        assert shown.size == original.size
        assert np.array_equal(pixels(shown), pixels(blurred_placeholder(original)))
        assert not np.array_equal(pixels(shown), pixels(original))
    assert small(txt2img, PROMPT, seed=21, num_images=1, num_inference_steps=2).nsfw == [False]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": ""}, ["empty"]),
        ({"prompt": "   "}, ["empty"]),
        ({"prompt": "x" * 50_000}, ["50,000", "2,000"]),
        ({"prompt": "[cat:dog:2.5]"}, ["fraction", "0 to 1", "never happen"]),
        ({"prompt": "(cat:1e30)"}, ["between 0 and 3"]),
        ({"negative_prompt": "blurry AND dark"}, ["negative prompt", "AND"]),
        ({"num_inference_steps": 0}, ["steps must be between 1 and 150"]),
        ({"num_inference_steps": 10_000}, ["steps must be between 1 and 150"]),
        ({"guidance_scale": -1.0}, ["guidance scale", "between 0 and 30"]),
        ({"guidance_scale": float("nan")}, ["guidance scale"]),
        ({"aspect_ratio": "0:1"}, ["aspect ratio", "W:H"]),
        ({"aspect_ratio": "abc"}, ["aspect ratio", "W:H"]),
        ({"width": 50}, ["width", "multiple of 8"]),
        ({"height": 4096}, ["height", "2048"]),
        ({"seed": -1}, ["seed", "between 0"]),
        ({"num_images": 0}, ["number of images", "between 1 and 8"]),
    ],
)
def test_bad_input_is_a_short_message(txt2img: Txt2Img, kwargs: dict, words: list[str]) -> None:
    arguments = {"prompt": PROMPT, **kwargs}
    calls = 0

    def count(*_args) -> None:
        nonlocal calls
        calls += 1

    hook = txt2img.pipe.unet.register_forward_hook(count)
    try:
        with pytest.raises(InvalidInput) as info:
            txt2img(**arguments)
    finally:
        hook.remove()
    message = str(info.value)
    assert all(word in message for word in words), message
    assert len(message) < 220 and "\n" not in message
    assert calls == 0


class OutOfMemoryAbove:
    """Stands in for the pipeline: raises CUDA OOM for batches larger than ``limit``, else runs the real one."""

    def __init__(self, pipe, limit: int) -> None:
        self.pipe = pipe
        self.limit = limit
        self.batches: list[int] = []

    def __call__(self, **kwargs):
        self.batches.append(kwargs["num_images_per_prompt"])
        if kwargs["num_images_per_prompt"] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.pipe(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)


def test_out_of_memory_retries_one_image_at_a_time(txt2img: Txt2Img, monkeypatch) -> None:
    batched = small(txt2img, PROMPT, seed=8, num_images=3, num_inference_steps=2)
    flaky = OutOfMemoryAbove(txt2img.pipe, limit=1)
    monkeypatch.setattr(txt2img, "pipe", flaky)
    retried = small(txt2img, PROMPT, seed=8, num_images=3, num_inference_steps=2)
    assert flaky.batches == [3, 1, 1, 1]
    assert retried.seeds == batched.seeds
    for a, b in zip(batched.images, retried.images):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2  # same noise per seed; batched maths may round differently


def test_out_of_memory_twice_is_a_clear_error(txt2img: Txt2Img, monkeypatch) -> None:
    flaky = OutOfMemoryAbove(txt2img.pipe, limit=0)
    monkeypatch.setattr(txt2img, "pipe", flaky)
    with pytest.raises(OutOfMemory) as info:
        small(txt2img, PROMPT, seed=8, num_inference_steps=2)
    assert flaky.batches == [4, 1]
    assert "out of GPU memory" in str(info.value) and "one image at a time" in str(info.value)


def test_device_choice_on_a_cpu_machine(txt2img: Txt2Img) -> None:
    from storyloom.config import DeviceConfig
    from storyloom.models.runtime.devices import optimize_pipeline, resolve_device, resolve_dtype

    cpu = resolve_device(DeviceConfig(device="cpu"))
    assert cpu == torch.device("cpu")
    assert resolve_dtype(DeviceConfig(), cpu) == torch.float32
    assert resolve_dtype(DeviceConfig(), torch.device("cuda")) == torch.float16
    assert resolve_dtype(DeviceConfig(dtype="bfloat16"), cpu) == torch.bfloat16
    if not torch.cuda.is_available():
        assert resolve_device(DeviceConfig()) == cpu
    unet = txt2img.pipe.unet
    assert optimize_pipeline(txt2img.pipe, DeviceConfig(compile=True, vae_tiling="on"), cpu) is txt2img.pipe
    assert txt2img.pipe.unet is unet  # nothing compiled or tiled on CPU
    assert not getattr(txt2img.pipe.vae, "use_tiling", False)


def test_missing_models_are_one_clear_line(tiny_models, tmp_path, monkeypatch) -> None:
    from storyloom.errors import ModelUnavailable
    from storyloom.models.runtime.loading import load_sd_components, model_display_name, resolve_source

    assert resolve_source(str(tiny_models.sd15), build_tiny=False) == str(tiny_models.sd15)
    assert resolve_source("stable-diffusion-v1-5/stable-diffusion-v1-5", build_tiny=False) == (
        "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_source(str(tmp_path / "nowhere"), build_tiny=False)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from storyloom.config import load_config

    config = load_config(None, environ={}, overrides={"models": {"image": "nobody-here/no-such-model"}})
    with pytest.raises(ModelUnavailable) as info:
        load_sd_components(config)
    message = str(info.value)
    assert "nobody-here/no-such-model" in message and "storyloom models download" in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message

    assert model_display_name(str(tiny_models.sd15)) == "sd15"
    assert (
        model_display_name("stable-diffusion-v1-5/stable-diffusion-v1-5")
        == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )


def test_safety_checker_off_in_the_config_still_checks_where_the_bot_forces_it(tiny_models, tmp_path: Path) -> None:
    """``image.safety_checker = false`` only decides requests that leave it open (age-restricted channels): the
    checker is still loaded, so a job the bot forces it on for runs instead of failing after generation."""
    from storyloom.models.runtime.loading import ModelCache

    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 2, "safety_checker": False})
    relaxed = Txt2Img.from_config(config, ModelCache())
    assert relaxed.safety is not None
    checker = relaxed.safety.checker
    saved = checker.concept_embeds_weights.data.clone()
    try:
        checker.concept_embeds_weights.data.fill_(-2.0)  # flags every image it looks at
        forced = small(relaxed, PROMPT, seed=5, num_images=2, safety_checker=True)
        left_open = small(relaxed, PROMPT, seed=5, num_images=2)
    finally:
        checker.concept_embeds_weights.data.copy_(saved)
    assert forced.nsfw == [True, True]
    assert left_open.nsfw == [False, False]  # the configured default: not checked
