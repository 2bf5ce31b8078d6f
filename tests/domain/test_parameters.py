"""A1111 ``parameters`` text: formatting, parsing and the PNG round trip."""

from __future__ import annotations

import io

from PIL import Image

from storyloom.domain.parameters import GenerationParameters, png_bytes, read_png_parameters, save_png

PARAMS = GenerationParameters(
    prompt="a ((red)) cat, (on a mat:1.2)",
    negative_prompt="blurry, low quality",
    steps=30,
    sampler="DPM++ 2M Karras",
    cfg_scale=7.0,
    seed=1234,
    width=512,
    height=768,
    model="stable-diffusion-v1-5/stable-diffusion-v1-5",
)


def test_infotext_is_in_a1111_format() -> None:
    assert PARAMS.to_infotext() == (
        "a ((red)) cat, (on a mat:1.2)\n"
        "Negative prompt: blurry, low quality\n"
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, "
        "Model: stable-diffusion-v1-5/stable-diffusion-v1-5"
    )


def test_infotext_round_trip_with_extras_and_multiline_prompts() -> None:
    params = GenerationParameters(
        prompt="line one\nline two: with colon",
        negative_prompt="bad\nworse",
        steps=12,
        cfg_scale=6.5,
        seed=7,
        width=64,
        height=48,
        model="sd15",
        denoising_strength=0.35,
        extra={"Variation of seed": "3", "Note": 'has, comma and "quotes"'},
    )
    assert GenerationParameters.from_infotext(params.to_infotext()) == params


def test_no_negative_prompt_line_when_empty() -> None:
    params = GenerationParameters(prompt="cat", seed=1)
    assert "Negative prompt" not in params.to_infotext()
    assert GenerationParameters.from_infotext(params.to_infotext()) == params


def test_reads_a1111_written_text() -> None:
    text = (
        "masterpiece, (cat:1.2)\nNegative prompt: ugly\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: abc123, Model: v1-5, "
        'Lora hashes: "x: 1, y: 2", Version: v1.10.1'
    )
    params = GenerationParameters.from_infotext(text)
    assert (params.prompt, params.negative_prompt, params.steps, params.sampler) == (
        "masterpiece, (cat:1.2)",
        "ugly",
        20,
        "Euler a",
    )
    assert (params.cfg_scale, params.seed, params.width, params.height, params.model) == (7.5, 42, 512, 512, "v1-5")
    assert params.extra == {"Model hash": "abc123", "Lora hashes": "x: 1, y: 2", "Version": "v1.10.1"}


def test_png_round_trip(tmp_path) -> None:
    image = Image.new("RGB", (8, 8), "red")
    path = tmp_path / "cat.png"
    save_png(image, path, PARAMS)
    with Image.open(path) as reopened:
        assert reopened.info["parameters"] == PARAMS.to_infotext()
    assert read_png_parameters(path) == PARAMS
    assert read_png_parameters(io.BytesIO(png_bytes(image, PARAMS))) == PARAMS


def test_png_without_parameters(tmp_path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    assert read_png_parameters(path) is None
