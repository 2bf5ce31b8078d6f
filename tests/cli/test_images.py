"""``storyloom imagine`` / ``storyloom vary`` run in-process on the tiny profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from storyloom.cli.main import main
from storyloom.domain.parameters import read_png_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_imagine_writes_a_grid_and_four_images(tiny_env: Path, capsys) -> None:
    out = tiny_env / "out"
    code = main(
        [
            "imagine",
            "a small (orange:1.2) cat",
            "--negative",
            "blurry",
            "--seed",
            "5",
            "--steps",
            "3",
            "--out",
            str(out),
            "--profile",
            "tiny",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["grid.png", "image_1.png", "image_2.png", "image_3.png", "image_4.png"]
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (128, 128)
    params = read_png_parameters(out / "image_3.png")
    assert (params.prompt, params.negative_prompt, params.seed, params.steps) == (
        "a small (orange:1.2) cat",
        "blurry",
        7,
        3,
    )
    for seed in (5, 6, 7, 8):
        assert f"seed {seed}" in captured.out
    assert str(out / "grid.png") in captured.out


def test_imagine_aspect_ratio(tiny_env: Path, capsys) -> None:
    out = tiny_env / "wide"
    assert (
        main(["imagine", "a cat", "--ar", "2:1", "--seed", "1", "--steps", "1", "--out", str(out), "--profile", "tiny"])
        == 0
    )
    with Image.open(out / "image_1.png") as image:
        assert image.size == (88, 48)


def test_imagine_reads_flags_and_permutations_in_the_prompt(tiny_env: Path, capsys) -> None:
    out = tiny_env / "flags"
    prompt = "a {red, blue} cat --ar 2:1 --seed 4 --chaos 50 --tile --no dogs"
    assert main(["imagine", prompt, "--steps", "1", "--out", str(out), "--profile", "tiny"]) == 0
    red, blue = read_png_parameters(out / "01" / "image_1.png"), read_png_parameters(out / "02" / "image_1.png")
    assert (red.prompt, blue.prompt) == ("a red cat", "a blue cat")
    assert (red.negative_prompt, red.seed, red.width, red.height) == ("dogs", 4, 88, 48)
    assert red.extra == {"Chaos": "50", "Tiling": "True"}


def test_vary_writes_four_variations_of_the_source_size(tiny_env: Path, capsys) -> None:
    source = tiny_env / "source.png"
    assert (
        main(["imagine", "a cat", "--seed", "2", "--steps", "2", "--out", str(tiny_env / "first"), "--profile", "tiny"])
        == 0
    )
    (tiny_env / "first" / "image_1.png").rename(source)
    out = tiny_env / "vary"
    code = main(["vary", str(source), "--strength", "strong", "--seed", "30", "--out", str(out), "--profile", "tiny"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(list(out.glob("*.png"))) == 5
    with Image.open(out / "image_4.png") as image:
        assert image.size == (64, 64)
    params = read_png_parameters(out / "image_4.png")
    assert (params.prompt, params.seed, params.denoising_strength) == ("a cat", 33, 0.65)
    assert "seed 30" in captured.out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["imagine", ""], ["prompt is empty"]),
        (["imagine", "x" * 50_000], ["50,000", "limit"]),
        (["imagine", "[cat:dog:2.5]"], ["fraction"]),
        (["imagine", "cat --sharp"], ["unknown flag --sharp", "--ar, --chaos"]),
        (["imagine", "cat --seed 4", "--seed", "5"], ["seed is given twice"]),
        (["imagine", "cat", "--model", "dreamy"], ["unknown model 'dreamy'", "none are configured"]),
        (["imagine", "cat <lora:ink>"], ["unknown LoRA 'ink'"]),
        (["imagine", "(cat:1e30)"], ["between 0 and 3"]),
        (["imagine", "cat", "--steps", "0"], ["steps must be between 1 and 150"]),
        (["imagine", "cat", "--steps", "10000"], ["steps must be between 1 and 150"]),
        (["imagine", "cat", "--ar", "0:1"], ["aspect ratio", "W:H"]),
        (["imagine", "cat", "--ar", "abc"], ["aspect ratio", "W:H"]),
        (["vary", "missing.png"], ["no such file", "missing.png"]),
    ],
)
def test_bad_input_is_one_line_without_traceback(tiny_env: Path, capsys, argv: list[str], words: list[str]) -> None:
    code = main([*argv, "--profile", "tiny"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("storyloom: ")
    assert all(word in captured.err for word in words), captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert not (tiny_env / "data" / "images").exists()


def test_vary_rejects_a_file_that_is_not_an_image(tiny_env: Path, capsys) -> None:
    fake = tiny_env / "cat.png"
    fake.write_bytes(b"\x89PNG but not really")
    assert main(["vary", str(fake), "--profile", "tiny"]) == 2
    captured = capsys.readouterr()
    assert "is not an image" in captured.err and "Traceback" not in captured.err
