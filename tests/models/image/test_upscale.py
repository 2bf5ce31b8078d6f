"""The upscale chain (ControlNet img2img 2× → Real-ESRGAN 4×) and Real-ESRGAN alone, on the tiny models."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyloom.domain.parameters import GenerationParameters, read_png_parameters, save_png
from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable
from storyloom.models.image.controlnet_upscale import upscaled_size
from storyloom.models.image.upscale import Upscaler
from storyloom.models.runtime.tiny import make_tiny_config


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_models):
    # 72-pixel tiles: the 128² ESRGAN input of the chain still takes 2×2 tiles, at half the work of 64.
    return make_tiny_config(
        tmp_path_factory.mktemp("data"), tiny_models, upscale={"esrgan_tile": 72, "esrgan_tile_overlap": 8}
    )


@pytest.fixture(scope="module")
def upscaler(config, cache) -> Upscaler:
    return Upscaler.from_config(config, cache)


def picture(size: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8))
    return coarse.resize((size, size), Image.Resampling.BICUBIC)


def write_source(path: Path, size: int = 64) -> Path:
    save_png(
        picture(size),
        path,
        GenerationParameters(prompt="a ((red)) cat", negative_prompt="blurry", seed=11, width=size, height=size),
    )
    return path


@pytest.fixture(scope="module")
def source_png(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("source") / "cat.png")


@pytest.fixture(scope="module")
def chain_run(upscaler: Upscaler, source_png: Path):
    """One full chain run on a 64² PNG, shared by the tests that only inspect its result and progress."""
    updates: list = []
    result = upscaler(source_png, mode="chain", seed=5, progress=updates.append)
    return result, updates


def test_chain_upscales_8x_with_the_images_own_prompt(chain_run, tmp_path: Path) -> None:
    result, _ = chain_run
    assert result.mode == "chain" and not result.nsfw
    assert result.image.size == (512, 512)  # 64 → 128 (ControlNet) → 512 (Real-ESRGAN)
    saved = read_png_parameters(result.save(tmp_path / "out" / "up.png"))
    assert saved is not None
    assert (saved.prompt, saved.negative_prompt, saved.seed) == ("a ((red)) cat", "blurry", 5)
    assert (saved.width, saved.height) == (512, 512)
    assert saved.extra["Upscale"] == "chain 8x"
    assert saved.extra["Source size"] == "64x64"
    assert saved.denoising_strength == pytest.approx(0.35)


def test_progress_covers_both_stages_in_one_count(chain_run, upscaler: Upscaler) -> None:
    _, updates = chain_run
    stages = [u.stage for u in updates]
    assert stages[0] == "controlnet" and stages[-1] == "esrgan"
    assert stages == sorted(stages)  # every ControlNet step comes before every tile
    assert [u.step for u in updates] == list(range(1, len(updates) + 1))
    assert {u.total for u in updates} == {len(updates)}
    tiles = upscaler.esrgan.num_tiles(*upscaled_size(64, 64))
    assert stages.count("esrgan") == tiles == 4


def test_explicit_prompt_wins_over_the_stored_one(upscaler: Upscaler, tmp_path: Path) -> None:
    result = upscaler(write_source(tmp_path / "small.png", 32), prompt="a (blue:1.2) dog", negative_prompt="", seed=1)
    assert result.image.size == (256, 256)
    assert result.parameters.prompt == "a (blue:1.2) dog"
    assert result.parameters.negative_prompt == ""


def test_same_seed_same_pixels_other_seed_differs(upscaler: Upscaler) -> None:
    image = picture(32, seed=1)
    first = np.asarray(upscaler(image, prompt="a house", seed=42).image)
    again = np.asarray(upscaler(image, prompt="a house", seed=42).image)
    assert np.array_equal(first, again)
    # The seed only matters to the re-drawing stage; compare there, where it is cheap.
    redraw = upscaler.controlnet
    assert np.array_equal(
        np.asarray(redraw(image, prompt="a house", seed=42).image),
        np.asarray(redraw(image, prompt="a house", seed=42).image),
    )
    assert not np.array_equal(
        np.asarray(redraw(image, prompt="a house", seed=42).image),
        np.asarray(redraw(image, prompt="a house", seed=43).image),
    )


def test_esrgan_only_upscales_4x_and_keeps_the_source_parameters(upscaler: Upscaler, source_png: Path) -> None:
    updates = []
    result = upscaler(source_png, mode="esrgan", progress=updates.append)
    assert result.mode == "esrgan"
    assert result.image.size == (256, 256)
    assert {u.stage for u in updates} == {"esrgan"}
    assert result.parameters.prompt == "a ((red)) cat"
    assert result.parameters.seed == 11
    assert result.parameters.extra["Upscale"] == "esrgan 4x"


def test_a_characters_lora_is_loaded_for_the_controlnet_pass_only(upscaler: Upscaler, tmp_path: Path) -> None:
    missing = tmp_path / "characters" / "gone" / "pytorch_lora_weights.safetensors"
    with upscaler.using_lora(missing, adapter_name="character_1"):
        sharpened = upscaler(picture(32), mode="esrgan")  # ESRGAN re-draws nothing: no LoRA is loaded at all
        with pytest.raises(ModelUnavailable, match="LoRA file"):
            upscaler(picture(32), prompt="a tree", mode="chain", seed=0)
    assert sharpened.image.size == (128, 128)
    assert upscaler(picture(32), prompt="a tree", mode="chain", seed=0).image.size == (256, 256)  # armed no more


def test_cancel_stops_within_one_step(config, cache) -> None:
    slower = make_tiny_config(config.paths.data_dir, _models(config), upscale={"steps": 20})
    upscaler = Upscaler.from_config(slower, cache)
    updates = []
    with pytest.raises(JobCanceled):
        upscaler(picture(32), prompt="a tree", seed=0, progress=updates.append, should_cancel=lambda: len(updates) >= 2)
    assert [u.step for u in updates] == [1, 2]
    assert updates[-1].total > 2


def test_cancel_during_the_esrgan_stage(upscaler: Upscaler) -> None:
    updates = []

    def cancel() -> bool:
        return any(u.stage == "esrgan" for u in updates)

    with pytest.raises(JobCanceled):
        upscaler(picture(64), prompt="a tree", seed=0, progress=updates.append, should_cancel=cancel)
    assert [u.stage for u in updates].count("esrgan") == 1


@pytest.fixture(scope="module")
def hed_upscaler(config, cache) -> Upscaler:
    return Upscaler.from_config(config, cache, controlnet="hed")


def test_hed_chain_is_8x_and_repeatable(hed_upscaler: Upscaler) -> None:
    first = hed_upscaler(picture(32), prompt="a tree", seed=0)
    again = hed_upscaler(picture(32), prompt="a tree", seed=0)
    assert first.image.size == (256, 256)
    assert first.parameters.extra["ControlNet"].startswith("hed")
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))


def test_hed_control_image_is_the_hed_networks_edge_map(hed_upscaler: Upscaler, tiny_models) -> None:
    from storyloom.models.image.hed import WEIGHTS_FILE, hed_classes, load_network

    redraw = hed_upscaler.controlnet
    assert redraw.hed is not None and redraw.hed.device == redraw.pipe.device
    resized = picture(64, seed=3).resize((128, 64))  # sides on controlnet_aux's 64-pixel grid: no resizing around it
    control = redraw.control_image(resized)
    # The same weights run through controlnet_aux on their own give the very same map.
    detector_class, _ = hed_classes()
    reference = detector_class(load_network(tiny_models.hed_annotator / WEIGHTS_FILE))(
        resized, detect_resolution=64, image_resolution=64
    )
    assert control.mode == "RGB" and control.size == (128, 64)
    assert np.array_equal(np.asarray(control), np.asarray(reference))
    pixels = np.asarray(control).astype(int)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.std() > 1  # a map of the picture, not a flat fill
    assert not np.array_equal(
        np.asarray(redraw.control_image(picture(64, seed=4).resize((128, 64)))), np.asarray(control)
    )


@pytest.mark.parametrize("size", [(80, 48), (40, 40)])
def test_hed_control_image_has_the_exact_size_off_the_64_pixel_grid(hed_upscaler: Upscaler, size) -> None:
    control = hed_upscaler.controlnet.control_image(picture(80).resize(size))
    assert control.size == size and control.mode == "RGB"


def test_missing_hed_annotator_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    import torch

    from storyloom.config import load_config
    from storyloom.models.image.hed import HedAnnotator

    def load(name: str) -> str:
        config = load_config(None, environ={}, overrides={"models": {"hed_annotator": name}})
        with pytest.raises(ModelUnavailable) as info:
            HedAnnotator.from_config(config, device=torch.device("cpu"))
        message = str(info.value)
        assert Path(name).name in message and "\n" not in message
        return message

    assert "does not exist" in load(str(tmp_path / "nowhere"))
    (tmp_path / "notes.pth").write_text("not weights")
    assert "could not be read" in load(str(tmp_path / "notes.pth"))

    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The hub client reads the variable once, at import: tell it too, so no request is even tried.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    offline = load("nobody-here/no-such-annotators/ControlNetHED.pth")
    assert "'nobody-here/no-such-annotators/ControlNetHED.pth'" in offline
    assert "storyloom models download" in offline and "HF_HUB_OFFLINE" in offline


def test_download_fetches_the_hed_annotator_only_for_the_hed_controlnet() -> None:
    from storyloom.config import load_config
    from storyloom.models.runtime.download import configured_models

    def fetched(controlnet: str) -> dict[str, str]:
        config = load_config(None, environ={}, overrides={"upscale": {"controlnet": controlnet}})
        return {spec.role: spec.name for spec in configured_models(config)}

    assert "hed_annotator" not in fetched("tile")
    hed = fetched("hed")
    assert hed["hed_annotator"] == "lllyasviel/Annotators/ControlNetHED.pth"
    assert hed["controlnet"] == "lllyasviel/sd-controlnet-hed"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width``×``height``: enough to be refused without decoding anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: (d / "notes.png").write_text("not an image") and d / "notes.png", "not an image"),
        (lambda d: (Image.new("RGB", (1, 1)).save(d / "dot.png"), d / "dot.png")[1], "at least 32 pixels"),
        (lambda d: (Image.new("RGB", (4000, 40)).save(d / "wide.png"), d / "wide.png")[1], "at most 1024 pixels"),
        (lambda d: _png_header_only(d / "huge.png", 30000, 30000), "at most 1024 pixels"),
        (lambda d: _png_header_only(d / "bomb.png", 200000, 200000), "at most 1024 pixels"),
    ],
    ids=["missing", "text-file", "1x1", "too-wide", "huge", "decompression-bomb"],
)
def test_bad_inputs_are_short_invalid_input(upscaler: Upscaler, tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InvalidInput, match=message) as caught:
        upscaler(path, prompt="a cat", seed=0)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 200


def test_esrgan_mode_allows_bigger_images_than_the_chain(upscaler: Upscaler) -> None:
    with pytest.raises(InvalidInput, match="at most 2048 pixels"):
        upscaler(Image.new("RGB", (2100, 40)), mode="esrgan")


def test_unknown_mode_is_invalid_input(upscaler: Upscaler) -> None:
    with pytest.raises(InvalidInput, match="chain, esrgan"):
        upscaler(picture(), mode="bicubic")  # type: ignore[arg-type]


def test_cli_writes_the_upscaled_png(tmp_path: Path, tiny_models, capsys) -> None:
    from storyloom.cli.main import main

    source_png = write_source(tmp_path / "cli.png", 32)
    config_file = _config_file(tmp_path, tiny_models)
    out = tmp_path / "out"
    code = main(
        [
            "upscale",
            str(source_png),
            "--profile",
            "tiny",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--seed",
            "3",
        ]
    )
    assert code == 0
    written = list(out.glob("*.png"))
    assert len(written) == 1
    with Image.open(written[0]) as image:
        assert image.size == (256, 256)
    saved = read_png_parameters(written[0])
    assert saved is not None and saved.seed == 3 and saved.extra["Upscale"] == "chain 8x"
    assert str(written[0]) in capsys.readouterr().out


def test_cli_reports_a_bad_file_in_one_line(tmp_path: Path, tiny_models, capsys) -> None:
    from storyloom.cli.main import main

    text = tmp_path / "story.png"
    text.write_text("once upon a time")
    code = main(
        [
            "upscale",
            str(text),
            "--mode",
            "esrgan",
            "--profile",
            "tiny",
            "--config",
            str(_config_file(tmp_path, tiny_models)),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storyloom: ") and "not an image" in err and "\n" not in err


def _config_file(tmp_path: Path, tiny_models) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[paths]
data_dir = "{tmp_path / "data"}"

[upscale]
esrgan_tile = 72
esrgan_tile_overlap = 8

[models]
image = "{tiny_models.sd15}"
controlnet_tile = "{tiny_models.controlnet}"
controlnet_hed = "{tiny_models.controlnet}"
esrgan = "{tiny_models.esrgan}"
story = "{tiny_models.llama}"
"""
    )
    return path


def _models(config):
    from storyloom.models.runtime.tiny import TinyModelPaths

    return TinyModelPaths(Path(config.models.image).parent)


def test_the_chain_checks_its_redrawing_when_the_job_asks_even_if_the_config_says_no(
    tmp_path_factory, tiny_models, cache, source_png: Path
) -> None:
    relaxed = make_tiny_config(
        tmp_path_factory.mktemp("relaxed"),
        tiny_models,
        image={"safety_checker": False},
        upscale={"esrgan_tile": 72, "esrgan_tile_overlap": 8, "steps": 2},
    )
    upscaler = Upscaler.from_config(relaxed, cache)
    assert upscaler.controlnet is not None  # loads the shared base pipeline, and with it the safety filter
    checker = upscaler._safety
    assert checker is not None  # loaded although the config turns the default off
    saved = checker.checker.concept_embeds_weights.data.clone()
    try:
        checker.checker.concept_embeds_weights.data.fill_(-2.0)  # flags every image it looks at
        forced = upscaler(source_png, mode="chain", seed=5, safety_checker=True)
        left_open = upscaler(source_png, mode="chain", seed=5)
    finally:
        checker.checker.concept_embeds_weights.data.copy_(saved)
    assert forced.nsfw and not left_open.nsfw
