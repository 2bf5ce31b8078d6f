"""Vary (Region), Zoom Out and Pan on the tiny models: regions from words and cells, redraws that keep every
pixel outside the mask, grown pictures with the original pixel-equal inside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyloom.domain.parameters import GenerationParameters, read_png_parameters
from storyloom.domain.regions import cells_mask, outpaint_canvas
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.image.inpaint import Inpaint, Outpaint, RegionFinder, feathered, work_size
from storyloom.models.runtime.loading import ModelCache
from storyloom.models.runtime.tiny import TINY_REGION_FOUND, TINY_REGION_MISSED, TinyModelPaths, make_tiny_config


def gradient(width: int = 64, height: int = 64) -> Image.Image:
    x = np.linspace(0, 255, width)
    y = np.linspace(0, 255, height)
    pixels = np.stack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 90.0)], axis=-1
    )
    return Image.fromarray(pixels.astype(np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, tiny_models: TinyModelPaths):
    return make_tiny_config(tmp_path_factory.mktemp("inpaint"), tiny_models, image={"steps": 3})


@pytest.fixture(scope="module")
def finder(config, cache: ModelCache) -> RegionFinder:
    return RegionFinder.from_config(config, cache)


@pytest.fixture(scope="module")
def inpaint(config, cache: ModelCache) -> Inpaint:
    return Inpaint.from_config(config, cache)


@pytest.fixture(scope="module")
def outpaint(config, cache: ModelCache) -> Outpaint:
    return Outpaint.from_config(config, cache)


def test_words_find_a_region_or_nothing(finder: RegionFinder) -> None:
    picture = gradient(80, 48)
    found = finder.find(picture, words=TINY_REGION_FOUND)
    assert found.mask.mode == "L" and found.mask.size == picture.size and found.preview.size == picture.size
    assert found.coverage == 1.0 and not found.empty
    missed = finder.find(picture, words=TINY_REGION_MISSED)
    assert missed.coverage == 0.0 and missed.empty
    assert pixels(missed.preview).tolist() == pixels(picture).tolist()  # nothing to tint


def test_the_threshold_decides_which_pixels_belong(finder: RegionFinder) -> None:
    picture = gradient()
    chance = finder.probabilities(picture, "the hat")
    assert tuple(chance.shape) == (64, 64) and 0.0 <= float(chance.min()) < float(chance.max()) <= 1.0
    middle = float(chance.median())
    part = finder.find(picture, words="the hat", threshold=middle)
    assert 0.0 < part.coverage < 1.0
    assert finder.find(picture, words="the hat", threshold=float(chance.max())).empty
    again = finder.find(picture, words="the hat", threshold=middle)
    assert pixels(again.mask.convert("RGB")).tolist() == pixels(part.mask.convert("RGB")).tolist()


def test_cells_make_the_grid_region(finder: RegionFinder) -> None:
    found = finder.find(gradient(), cells=[1, 2, 3])
    assert found.coverage == pytest.approx(21 * 64 / 64**2)
    with pytest.raises(InvalidInput, match="not both"):
        finder.find(gradient(), words="the hat", cells=[1])


def test_outside_the_mask_the_redrawn_picture_is_the_original(inpaint: Inpaint) -> None:
    picture = gradient()
    mask = cells_mask([5, 6], picture.size)
    batch = inpaint(picture, mask, "a golden crown", seed=7)
    result = pixels(batch.images[0])
    assert batch.images[0].size == picture.size
    kept = np.asarray(mask) == 0
    assert np.array_equal(result[kept], pixels(picture)[kept])
    assert (result[~kept] != pixels(picture)[~kept]).any(axis=-1).mean() > 0.5  # the region really changed
    parameters = batch.parameters[0]
    assert (parameters.prompt, parameters.seed, parameters.width, parameters.height) == ("a golden crown", 7, 64, 64)
    assert parameters.model == "sd15-inpaint" and parameters.extra["Inpaint"].endswith("of the picture")


def test_the_same_seed_redraws_the_same_picture(inpaint: Inpaint) -> None:
    picture, mask = gradient(), cells_mask([1, 4], (64, 64))
    first = pixels(inpaint(picture, mask, "a crown", seed=3).images[0])
    second = pixels(inpaint(picture, mask, "a crown", seed=3).images[0])
    other = pixels(inpaint(picture, mask, "a crown", seed=4).images[0])
    assert np.array_equal(first, second) and not np.array_equal(first, other)


def test_a_large_picture_is_drawn_smaller_and_still_keeps_every_pixel(config, cache: ModelCache) -> None:
    small_work = Inpaint.from_config(
        config.model_copy(update={"inpaint": config.inpaint.model_copy(update={"max_work_pixels": 4096})}), cache
    )
    picture = gradient(120, 88)  # neither side a multiple of 8, and more than 4096 pixels
    assert work_size(picture.size, 4096) == (72, 48)
    mask = cells_mask([9], picture.size)
    result = small_work(picture, mask, "a crown", seed=1).images[0]
    kept = np.asarray(mask) == 0
    assert result.size == picture.size and np.array_equal(pixels(result)[kept], pixels(picture)[kept])


def test_the_feather_stays_inside_the_mask() -> None:
    mask = cells_mask([5], (90, 90))
    soft = np.asarray(feathered(mask, 8))
    hard = np.asarray(mask)
    assert (soft[hard == 0] == 0).all()
    assert soft[45, 45] == 255 and 0 < soft[30, 45] < 255  # full in the middle, fading at the edge


def test_a_bad_mask_is_refused(inpaint: Inpaint) -> None:
    with pytest.raises(InvalidInput, match="region to redraw is empty"):
        inpaint(gradient(), Image.new("L", (64, 64), 0), "a crown")
    with pytest.raises(InvalidInput, match="the mask is 32×32 but the picture is 64×64"):
        inpaint(gradient(), Image.new("L", (32, 32), 255), "a crown")


def test_a_redraw_can_be_canceled(inpaint: Inpaint) -> None:
    with pytest.raises(JobCanceled):
        inpaint(gradient(), cells_mask([1], (64, 64)), "a crown", should_cancel=lambda: True)


@pytest.mark.parametrize("zoom", [2.0, 1.5])
def test_zoom_out_puts_the_original_in_the_centre(outpaint: Outpaint, zoom: float) -> None:
    picture = gradient()
    batch = outpaint(picture, zoom=zoom, prompt="a meadow", seed=2)
    grown = batch.images[0]
    assert grown.size == (int(64 * zoom), int(64 * zoom))
    left, top, right, bottom = outpaint_canvas(picture.size, zoom=zoom).original_box
    assert (left, top) == ((grown.width - 64) // 2, (grown.height - 64) // 2)
    assert np.array_equal(pixels(grown)[top:bottom, left:right], pixels(picture))
    assert batch.parameters[0].extra["Outpaint"] == f"Zoom Out {zoom:g}×"


@pytest.mark.parametrize(
    ("pan", "size", "where"),
    [("left", (96, 64), (32, 0)), ("right", (96, 64), (0, 0)), ("up", (64, 96), (0, 32)), ("down", (64, 96), (0, 0))],
)
def test_pan_keeps_the_original_on_the_opposite_side(
    outpaint: Outpaint, pan: str, size: tuple[int, int], where: tuple[int, int]
) -> None:
    picture = gradient()
    grown = outpaint(picture, pan=pan, prompt="a meadow", seed=2).images[0]
    assert grown.size == size
    left, top = where
    assert np.array_equal(pixels(grown)[top : top + 64, left : left + 64], pixels(picture))
    new_area = np.asarray(outpaint_canvas(picture.size, pan=pan).new_area_mask()) > 0
    assert (pixels(grown)[new_area] != 127).any()  # the new side was drawn, not left as the neutral fill


def test_outpaint_takes_the_pictures_own_prompt(outpaint: Outpaint, tmp_path: Path) -> None:
    path = tmp_path / "drawn.png"
    from storyloom.domain.parameters import save_png

    save_png(gradient(), path, GenerationParameters(prompt="a fox in the snow", negative_prompt="blur", seed=1))
    with Image.open(path) as source:
        source.load()
        parameters = outpaint(source, pan="right", seed=5).parameters[0]
    assert (parameters.prompt, parameters.negative_prompt) == ("a fox in the snow", "blur")
    assert read_png_parameters(path).prompt == "a fox in the snow"


def test_outpaint_refuses_bad_growth(outpaint: Outpaint) -> None:
    with pytest.raises(InvalidInput, match="from 1.1 to 2"):
        outpaint(gradient(), zoom=2.5)
    with pytest.raises(InvalidInput, match="either a zoom"):
        outpaint(gradient(), zoom=2.0, pan="left")
    with pytest.raises(InvalidInput, match="either a zoom"):
        outpaint(gradient())
    with pytest.raises(InvalidInput, match="at most 2048 pixels a side"):
        outpaint(Image.new("RGB", (1200, 64)), zoom=2.0)


def test_download_fetches_the_inpainting_and_segmentation_models() -> None:
    from storyloom.config import load_config
    from storyloom.models.runtime.download import DIFFUSERS_PATTERNS, TRANSFORMERS_PATTERNS, configured_models

    specs = {spec.role: spec for spec in configured_models(load_config(None, environ={}))}
    assert specs["inpainting"].name == "stable-diffusion-v1-5/stable-diffusion-inpainting"
    assert specs["inpainting"].patterns == tuple(DIFFUSERS_PATTERNS)
    assert specs["segmentation"].name == "CIDAS/clipseg-rd64-refined"
    assert specs["segmentation"].patterns == tuple(TRANSFORMERS_PATTERNS)


def test_a_flagged_redraw_is_blurred_and_reported(inpaint: Inpaint) -> None:
    from storyloom.models.image.imaging import blurred_placeholder

    assert inpaint.safety is not None
    checker = inpaint.safety.checker
    picture, mask = gradient(), cells_mask([5], (64, 64))
    clean = inpaint(picture, mask, "a crown", seed=8, safety_checker=False)
    saved = checker.concept_embeds_weights.data.clone()
    try:
        checker.concept_embeds_weights.data.fill_(-2.0)  # below any cosine similarity: everything is flagged
        flagged = inpaint(picture, mask, "a crown", seed=8, safety_checker=True)
    finally:
        checker.concept_embeds_weights.data.copy_(saved)
    assert clean.nsfw == [False] and flagged.nsfw == [True]
    assert np.array_equal(pixels(flagged.images[0]), pixels(blurred_placeholder(clean.images[0])))
