"""``storyloom inpaint`` and ``storyloom outpaint`` in-process on the tiny inpainting model and CLIPSeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyloom.cli.main import main
from storyloom.domain.parameters import GenerationParameters, read_png_parameters, save_png
from storyloom.domain.regions import EMPTY_REGION
from storyloom.models.runtime.tiny import TINY_REGION_FOUND, TINY_REGION_MISSED

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def picture(tiny_env: Path, tiny_models, monkeypatch) -> Path:
    monkeypatch.setenv("STORYLOOM_MODELS__INPAINTING", str(tiny_models.sd15_inpaint))
    monkeypatch.setenv("STORYLOOM_MODELS__SEGMENTATION", str(tiny_models.clipseg))
    monkeypatch.setenv("STORYLOOM_IMAGE__STEPS", "2")
    x = np.linspace(0, 255, 64)
    pixels = np.stack([np.tile(x, (64, 1)), np.tile(x[:, None], (1, 64)), np.full((64, 64), 60.0)], -1)
    path = tiny_env / "fox.png"
    save_png(Image.fromarray(pixels.astype(np.uint8)), path, GenerationParameters(prompt="a fox in the snow", seed=1))
    return path


def opened(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_inpaint_redraws_the_cells_and_keeps_the_rest(picture: Path, tiny_env: Path, capsys) -> None:
    out = tiny_env / "out"
    args = ["inpaint", str(picture), "--cells", "1,2", "--prompt", "a golden crown", "--seed", "4", "--out", str(out)]
    assert main([*args, "--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "region: 21.5% of the picture" in printed and "seed 4" in printed
    redrawn, source = opened(out / "fox_inpainted.png"), opened(picture)
    assert redrawn.shape == source.shape
    assert np.array_equal(redrawn[21:, :], source[21:, :]) and np.array_equal(redrawn[:, 42:], source[:, 42:])
    assert not np.array_equal(redrawn[:21, :42], source[:21, :42])
    assert read_png_parameters(out / "fox_inpainted.png").prompt == "a golden crown"
    assert opened(out / "fox_region.png").shape == source.shape


def test_inpaint_by_words(picture: Path, tiny_env: Path, capsys) -> None:
    out = tiny_env / "words"
    args = ["inpaint", str(picture), "--region", TINY_REGION_FOUND, "--prompt", "a crown", "--out", str(out)]
    assert main([*args, "--profile", "tiny"]) == 0
    assert "region: 100.0% of the picture" in capsys.readouterr().out
    assert (out / "fox_inpainted.png").is_file()


def test_an_empty_region_is_a_clear_refusal(picture: Path, tiny_env: Path, capsys) -> None:
    out = tiny_env / "none"
    args = ["inpaint", str(picture), "--region", TINY_REGION_MISSED, "--prompt", "a crown", "--out", str(out)]
    assert main([*args, "--profile", "tiny"]) == 2
    captured = capsys.readouterr()
    assert "region: 0.0% of the picture" in captured.out and EMPTY_REGION in captured.err
    assert (out / "fox_region.png").is_file() and not (out / "fox_inpainted.png").exists()


def test_bad_cells_are_refused(picture: Path, capsys) -> None:
    assert main(["inpaint", str(picture), "--cells", "0,12", "--prompt", "a crown", "--profile", "tiny"]) == 2
    assert "grid cells must be distinct numbers from 1 to 9" in capsys.readouterr().err


@pytest.mark.parametrize(("growth", "size"), [(["--zoom", "2"], (128, 128)), (["--pan", "left"], (64, 96))])
def test_outpaint_grows_the_picture(picture: Path, tiny_env: Path, capsys, growth, size) -> None:
    out = tiny_env / "grown"
    assert main(["outpaint", str(picture), *growth, "--seed", "2", "--out", str(out), "--profile", "tiny"]) == 0
    assert f"-> {size[1]}x{size[0]}" in capsys.readouterr().out
    grown_path = next(out.glob("fox_*.png"))
    grown, source = opened(grown_path), opened(picture)
    assert grown.shape[:2] == size
    if growth[0] == "--zoom":
        assert np.array_equal(grown[32:96, 32:96], source)
    else:
        assert np.array_equal(grown[:, 32:], source)
    assert read_png_parameters(grown_path).prompt == "a fox in the snow"  # the picture's own prompt


@pytest.mark.parametrize(
    ("growth", "message"),
    [
        (["--zoom", "3"], "Zoom Out takes a factor from 1.1 to 2"),
        (["--zoom", "wide"], "is not a number"),
    ],
)
def test_outpaint_refuses_bad_growth(picture: Path, capsys, growth, message) -> None:
    assert main(["outpaint", str(picture), *growth, "--profile", "tiny"]) == 2
    assert message in capsys.readouterr().err


def test_outpaint_refuses_too_large_a_result(picture: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STORYLOOM_INPAINT__MAX_RESULT_PIXELS", "8192")
    assert main(["outpaint", str(picture), "--zoom", "2", "--profile", "tiny"]) == 2
    assert "would be 128×128 pixels" in capsys.readouterr().err


def test_outpaint_fit_grows_a_scaled_down_copy_within_the_limits(
    picture: Path, tiny_env: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("STORYLOOM_INPAINT__MAX_RESULT_PIXELS", "8192")
    assert main(["outpaint", str(picture), "--zoom", "2", "--profile", "tiny"]) == 2
    assert "--fit grows a scaled-down copy instead" in capsys.readouterr().err
    out = tiny_env / "fitted"
    assert main(["outpaint", str(picture), "--zoom", "2", "--fit", "--out", str(out), "--profile", "tiny"]) == 0
    assert "growing a copy scaled down from 64x64 to 45x45" in capsys.readouterr().out
    grown = opened(next(out.glob("fox_*.png")))
    assert grown.shape[:2] == (88, 88)
    assert read_png_parameters(next(out.glob("fox_*.png"))).prompt == "a fox in the snow"  # the copy keeps it


def test_zoom_and_pan_are_one_or_the_other(picture: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["outpaint", str(picture), "--zoom", "2", "--pan", "left", "--profile", "tiny"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["outpaint", str(picture), "--profile", "tiny"])
    assert "one of the arguments --zoom --pan is required" in capsys.readouterr().err
