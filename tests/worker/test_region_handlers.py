"""region, inpaint and outpaint jobs run by a real worker on the tiny models, reading and writing the store."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from storyloom.domain.parameters import GenerationParameters, png_bytes, read_png_parameters
from storyloom.domain.regions import EMPTY_REGION
from storyloom.models.runtime.tiny import TINY_REGION_FOUND, TINY_REGION_MISSED, make_tiny_config
from storyloom.queue import ArtifactKind, JobStatus, JobStore
from storyloom.queue.job import NewArtifact
from storyloom.worker.registry import build_handlers
from storyloom.worker.testing import worker_in_thread
from tests.support.images import artifact_image
from tests.support.jobs import finished, finished_somehow

PROMPT = "a cat in a hat"


def gradient(width: int = 64, height: int = 64) -> Image.Image:
    x = np.linspace(0, 255, width)
    y = np.linspace(0, 255, height)
    return Image.fromarray(
        np.stack([np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 60.0)], -1).astype(
            np.uint8
        )
    )


def picture_job(store: JobStore, picture: Image.Image) -> int:
    """A finished job holding ``picture`` as IMAGE 0 (drawn from ``PROMPT``), as an upscale leaves one."""
    job = store.enqueue("imagine", {"prompt": PROMPT}, user_id=1)
    claimed = store.claim("setup/1", ["imagine"])
    assert claimed is not None and claimed.id == job.id
    data = png_bytes(picture, GenerationParameters(prompt=PROMPT, negative_prompt="blurry", seed=1))
    image = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", data, {"width": picture.width})
    store.complete(job.id, "setup/1", [image], [])
    return job.id


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_a_region_and_its_redraw(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 3}, queue={"heartbeat_seconds": 0.2})
    source = gradient(72, 56)
    with JobStore.from_config(config) as store:
        parent = picture_job(store, source)
        with worker_in_thread(config, handlers=build_handlers()):
            words = store.enqueue(
                "region", {"region": TINY_REGION_FOUND, "prompt": "a golden crown"}, user_id=1, parent_id=parent
            )
            cells = store.enqueue(
                "region", {"cells": [1, 2], "prompt": "a golden crown", "negative_prompt": "fog"}, user_id=1,
                parent_id=parent,
            )  # fmt: skip
            nothing = store.enqueue(
                "region", {"region": TINY_REGION_MISSED, "prompt": "a golden crown"}, user_id=1, parent_id=parent
            )
            for job in (words, cells, nothing):
                finished(store, job.id)
            redraw = store.enqueue("inpaint", {"seed": 11}, user_id=1, parent_id=cells.id)
            same = store.enqueue("inpaint", {"seed": 11}, user_id=1, parent_id=cells.id)
            reprompted = store.enqueue(
                "inpaint", {"seed": 11, "prompt": "a silver helmet", "page": 2}, user_id=1, parent_id=cells.id
            )
            refused = store.enqueue("inpaint", {"seed": 11}, user_id=1, parent_id=nothing.id)
            for job in (redraw, same, reprompted):
                finished(store, job.id)
            failed = finished_somehow(store, refused.id)

        found = store.artifact(words.id, 0)
        assert found.name == "preview.png" and found.metadata["coverage"] == 1.0 and found.metadata["empty"] is False
        mask_artifact = store.artifact(cells.id, 0, ArtifactKind.FILE)
        mask = Image.open(io.BytesIO(mask_artifact.data))
        assert mask_artifact.name == "mask.png" and mask.mode == "L" and mask.size == source.size
        preview = artifact_image(store.artifact(cells.id, 0))
        assert preview.size == source.size and preview.format == "PNG"
        assert store.artifact(cells.id, 0).metadata["coverage"] == round(2 * 24 * 18 / (72 * 56), 6)

        empty = store.get(nothing.id)
        assert empty.status is JobStatus.SUCCEEDED  # an empty region is a result, not a failure
        assert store.artifact(nothing.id, 0).metadata == {"width": 72, "height": 56, "coverage": 0.0, "empty": True}
        assert failed.status is JobStatus.FAILED and failed.error.message == EMPTY_REGION

        redrawn = artifact_image(store.artifact(redraw.id, 0))
        assert redrawn.size == source.size
        kept = np.asarray(mask) == 0
        assert np.array_equal(as_array(redrawn)[kept], as_array(source)[kept])
        assert not np.array_equal(as_array(redrawn)[~kept], as_array(source)[~kept])
        assert np.array_equal(as_array(artifact_image(store.artifact(same.id, 0))), as_array(redrawn))
        parameters = read_png_parameters(redrawn)
        assert (parameters.prompt, parameters.negative_prompt, parameters.seed) == ("a golden crown", "fog", 11)
        assert store.artifact(redraw.id, 0).metadata["seed"] == 11
        other = store.artifact(reprompted.id, 0)
        assert read_png_parameters(artifact_image(other)).prompt == "a silver helmet" and other.metadata["page"] == 2


def test_zoom_out_and_pan_jobs(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(
        tmp_path, tiny_models, image={"steps": 2}, queue={"heartbeat_seconds": 0.2}, inpaint={"max_result_side": 120}
    )
    source = gradient()
    with JobStore.from_config(config) as store:
        parent = picture_job(store, source)
        with worker_in_thread(config, handlers=build_handlers()):
            zoomed = store.enqueue("outpaint", {"zoom": 1.5, "seed": 3}, user_id=1, parent_id=parent)
            panned = store.enqueue(
                "outpaint", {"pan": "left", "seed": 3, "prompt": "a garden"}, user_id=1, parent_id=parent
            )
            too_big = store.enqueue("outpaint", {"zoom": 2.0}, user_id=1, parent_id=parent)
            fitted = store.enqueue("outpaint", {"zoom": 2.0, "fit": True, "seed": 3}, user_id=1, parent_id=parent)
            for job in (zoomed, panned, fitted):
                finished(store, job.id)
            refused = finished_somehow(store, too_big.id)

        grown = artifact_image(store.artifact(zoomed.id, 0))
        assert grown.size == (96, 96) and np.array_equal(as_array(grown)[16:80, 16:80], as_array(source))
        assert read_png_parameters(grown).prompt == PROMPT  # the source picture's own prompt
        extended = artifact_image(store.artifact(panned.id, 0))
        assert extended.size == (96, 64) and np.array_equal(as_array(extended)[:, 32:], as_array(source))
        assert read_png_parameters(extended).prompt == "a garden"
        assert refused.status is JobStatus.FAILED
        assert "would be 128×128 pixels; grown pictures may be at most 120 pixels a side" in refused.error.message
        # With fit, the same zoom grows a copy scaled down so that the result stays within 120 pixels.
        shrunk = store.artifact(fitted.id, 0)
        assert shrunk.metadata["scaled_from"] == [64, 64]
        copy = source.resize((60, 60), Image.Resampling.LANCZOS)
        grown_copy = artifact_image(shrunk)
        assert grown_copy.size == (120, 120) and np.array_equal(as_array(grown_copy)[30:90, 30:90], as_array(copy))
