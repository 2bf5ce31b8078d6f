"""Real-ESRGAN through spandrel: safe loading, tiling that matches the untiled result, progress and cancel."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from storyloom.errors import JobCanceled, ModelUnavailable
from storyloom.models.image.esrgan import RealEsrgan, blend_weights, tile_spans


@pytest.fixture(scope="module")
def esrgan(tiny_models) -> RealEsrgan:
    return RealEsrgan.from_file(tiny_models.esrgan, tile=64, overlap=16)


def smooth_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise blurred by upsampling: structure at several scales, like a picture rather than static."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8))
    return coarse.resize((width, height), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("length", [1, 50, 64, 65, 100, 121, 200, 333, 700])
@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (64, 0), (32, 8), (100, 25)])
def test_tiles_cover_the_axis_and_weights_sum_to_one(length: int, tile: int, overlap: int) -> None:
    spans = tile_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(end - start == min(tile, length) for start, end in spans)
    assert all(spans[i][1] - spans[i + 1][0] >= overlap for i in range(len(spans) - 1))
    scale = 4
    total = np.zeros(length * scale)
    for index, (start, end) in enumerate(spans):
        total[start * scale : end * scale] += blend_weights(spans, index, scale, overlap * scale)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    if overlap and len(spans) > 1:  # feathered: a ramp of overlap·scale pixels, not a hard cut
        ramp = blend_weights(spans, 0, scale, overlap * scale)
        assert ((ramp > 0) & (ramp < 1)).sum() == overlap * scale


def test_loads_the_tiny_model_through_spandrel(esrgan: RealEsrgan, tiny_models) -> None:
    assert esrgan.scale == 4
    assert esrgan.descriptor.architecture.id == "ESRGAN"
    assert RealEsrgan.from_file(tiny_models.esrgan).scale == 4


def test_from_config_resolves_the_configured_file(tiny_config) -> None:
    model = RealEsrgan.from_config(tiny_config)
    assert model.scale == 4
    assert (model.tile, model.overlap) == (tiny_config.upscale.esrgan_tile, tiny_config.upscale.esrgan_tile_overlap)


def test_upscales_4x_and_keeps_the_picture(esrgan: RealEsrgan) -> None:
    image = smooth_image(40, 24)
    result = esrgan(image)
    assert result.size == (160, 96)
    shrunk = np.asarray(result.resize(image.size, Image.Resampling.BOX)).astype(np.int16)
    assert np.abs(shrunk - np.asarray(image).astype(np.int16)).mean() < 30


def test_tiled_matches_untiled(esrgan: RealEsrgan) -> None:
    image = smooth_image(100, 72)
    steps = []
    tiled = np.asarray(esrgan(image, tile=48, overlap=12, progress=steps.append)).astype(np.int16)
    whole = np.asarray(esrgan(image, tile=4096)).astype(np.int16)
    assert len(steps) == 3 * 2  # really tiled: 3 columns × 2 rows
    difference = np.abs(tiled - whole)
    assert difference.mean() < 2.0  # in 8-bit levels, i.e. 2/255
    assert difference.max() <= 4


def test_blending_hides_seams_better_than_butted_tiles(esrgan: RealEsrgan) -> None:
    """Against the untiled result, feathered overlaps must do no worse than tiles simply placed side by side."""
    image = smooth_image(96, 96, seed=3)
    whole = np.asarray(esrgan(image, tile=4096)).astype(np.int16)
    feathered = np.asarray(esrgan(image, tile=48, overlap=12)).astype(np.int16)
    butted = np.asarray(esrgan(image, tile=48, overlap=0)).astype(np.int16)
    assert np.abs(butted - whole).max() > 10  # the seam is really there without blending
    assert np.abs(feathered - whole).max() <= 4
    assert np.abs(feathered - whole).mean() < np.abs(butted - whole).mean()


def test_progress_per_tile_and_cancel_between_tiles(esrgan: RealEsrgan) -> None:
    image = smooth_image(72, 40)
    steps = []
    esrgan(image, tile=32, overlap=8, progress=steps.append)
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert {s.total for s in steps} == {len(steps)} and len(steps) > 2
    assert {s.stage for s in steps} == {"esrgan"}
    assert esrgan.num_tiles(72, 40, tile=32, overlap=8) == len(steps) == 3 * 2

    seen = []
    with pytest.raises(JobCanceled):
        esrgan(image, tile=32, overlap=8, progress=seen.append, should_cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_pth_loads_with_weights_only(tmp_path: Path, tiny_models) -> None:
    from safetensors.torch import load_file

    path = tmp_path / "model.pth"
    torch.save({"params_ema": load_file(str(tiny_models.esrgan))}, path)  # the layout of RealESRGAN_x4plus.pth
    assert RealEsrgan.from_file(path).scale == 4


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"params": _Payload()}, protocol=2))
    with pytest.raises(ModelUnavailable, match="could not be read"):
        RealEsrgan.from_file(path)
    assert "pickled code ran" not in capsys.readouterr().out


@pytest.mark.parametrize(("name", "content"), [("bad.safetensors", b"not safetensors"), ("model.onnx", b"\0")])
def test_unreadable_weights_are_model_unavailable(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelUnavailable):
        RealEsrgan.from_file(path)


def test_missing_weights_are_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="do not exist"):
        RealEsrgan.from_file(tmp_path / "nothing.safetensors")
