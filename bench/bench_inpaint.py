"""``inpaint_overhead_ratio``: what storyloom's inpaint job adds on top of a bare diffusers inpainting call.

Method. The tiny SD inpainting model (a 9-channel UNet on the tiny SD parts) is built in a temporary directory.
The candidate is the worker's ``inpaint`` handler on a queued job whose parent is a finished region job, read
through the job store as a worker does: the region's mask and the picture are fetched from the store and
decoded, the prompt conditioned with compel, the model run, the result scaled back, the original blended back
outside the feathered mask, and the PNG with its generation parameters encoded. The baseline is a plain
``StableDiffusionInpaintPipeline`` loaded from the same directory with the same DPM++ 2M Karras scheduler, called
with the prompt strings on the same picture and mask (decoded from the same PNG bytes): same steps, seed (one CPU
generator), guidance 7, size, safety checker off, PIL output. The picture is 128×96: big enough that the tiny
model's work outweighs the per-job fixed costs (store reads, PNG decoding and encoding, the blend) as a real
model's does at 512², small enough for one CPU thread (the tiny VAE halves a picture where SD's divides it by 8,
so its UNet works at 64×48). Both are warmed up, then called in alternating order for several rounds (one torch thread); the result is the
median of the per-round time ratios. Target ≤ 1.10.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

TARGET = 1.10
STEPS = 8
WIDTH, HEIGHT = 128, 96
ROUNDS = 7
SEED = 1234
CELLS = [2, 5, 6]
PROMPT = "a golden crown with red jewels, watercolor"
NEGATIVE = "blurry, low quality"


def run() -> list[dict]:
    import numpy as np

    from bench.common import interleaved_ratio, one_thread, record

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-inpaint-") as tmp:
            candidate, baseline, store, mask = _build(Path(tmp))
            try:
                ours, bare = candidate(), baseline()  # warm-up, and a check that both draw the same picture
                ratio, ours_seconds, bare_seconds = interleaved_ratio(candidate, baseline, ROUNDS)
            finally:
                store.close()
    inside = np.asarray(mask) == 255
    ours_pixels, bare_pixels = (np.asarray(image.convert("RGB"), dtype=np.int16) for image in (ours, bare))
    return [
        record(
            "inpaint_overhead_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            ratio <= TARGET,
            storyloom_seconds=round(ours_seconds, 4),
            diffusers_seconds=round(bare_seconds, 4),
            steps=STEPS,
            size=f"{WIDTH}x{HEIGHT}",
            rounds=ROUNDS,
            # Deep inside the mask (away from the feathered edge) both runs drew the same pixels.
            max_pixel_difference_inside=int(np.abs(ours_pixels - bare_pixels)[inside].max()),
        )
    ]


def _build(root: Path):
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionInpaintPipeline
    from PIL import Image, ImageFilter

    from storyloom.config import QueueConfig
    from storyloom.domain.parameters import GenerationParameters, png_bytes
    from storyloom.domain.regions import cells_mask
    from storyloom.models.image.inpaint import Inpaint
    from storyloom.models.runtime.tiny import (
        TinyModelPaths,
        build_tiny_sd15,
        build_tiny_sd15_inpaint,
        make_tiny_config,
    )
    from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact
    from storyloom.queue.params import InpaintParams
    from storyloom.queue.store import JobStore
    from storyloom.worker.context import JobContext
    from storyloom.worker.handlers.regions import inpaint
    from storyloom.worker.resources import ModelResources, ModelSpec

    paths = TinyModelPaths(root / "models")
    build_tiny_sd15(paths.sd15)
    build_tiny_sd15_inpaint(paths.sd15_inpaint, paths.sd15)
    config = make_tiny_config(
        root / "data", paths, image={"safety_checker": False, "steps": STEPS}, inpaint={"max_work_pixels": 1 << 20}
    )
    task = Inpaint.from_config(config)

    rng = torch.Generator().manual_seed(3)
    noise = (torch.rand(HEIGHT // 4, WIDTH // 4, 3, generator=rng) * 255).to(torch.uint8).numpy()
    picture = Image.fromarray(noise).resize((WIDTH, HEIGHT), Image.BICUBIC)  # smooth, like a drawn picture
    mask = cells_mask(CELLS, picture.size)
    picture_png = png_bytes(picture, GenerationParameters(prompt="a king in a garden", seed=SEED))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    mask_png = buffer.getvalue()

    store = JobStore.open(root / "jobs.db", QueueConfig())
    drawn = store.enqueue(JobKind.IMAGINE, {"prompt": "a king in a garden"}, user_id=1)
    store.claim("bench/1", [JobKind.IMAGINE.value])
    image = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", picture_png, {})
    store.complete(drawn.id, "bench/1", [image], [])
    region = store.enqueue(JobKind.REGION, {"cells": CELLS, "prompt": PROMPT}, user_id=1, parent_id=drawn.id)
    store.claim("bench/1", [JobKind.REGION.value])
    found = {"coverage": 0.3, "empty": False, "source_job": drawn.id, "source_index": 0}
    mask_info = {**found, "prompt": PROMPT, "negative_prompt": NEGATIVE}
    region_artifacts = [
        NewArtifact(ArtifactKind.IMAGE, 0, "preview.png", "image/png", picture_png, found),
        NewArtifact(ArtifactKind.FILE, 0, "mask.png", "image/png", mask_png, mask_info),
    ]
    store.complete(region.id, "bench/1", region_artifacts, [])
    params = InpaintParams(seed=SEED, safety_checker=False)
    job = store.enqueue(JobKind.INPAINT, params, user_id=1, parent_id=region.id)
    resources = ModelResources(
        config,
        specs={"inpaint": ModelSpec("inpaint", "inpaint", lambda c, cache: task)},
        budget_bytes=1 << 40,
        memory_probe=lambda: 0,
    )
    context = JobContext(
        job=job,
        params=params,
        config=config,
        resources=resources,
        progress=lambda update: None,
        should_cancel=lambda: False,
        lookup_artifact=lambda job_id, index, kind: store.artifact(job_id, index, kind),
    )

    def candidate() -> Image.Image:
        artifact = inpaint(context).artifacts[0]
        return Image.open(io.BytesIO(artifact.data))

    pipe = StableDiffusionInpaintPipeline.from_pretrained(  # type: ignore[attr-defined]  # diffusers' top-level names resolve to its dummy classes for mypy
        str(paths.sd15_inpaint), safety_checker=None, requires_safety_checker=False, use_safetensors=True
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, use_karras_sigmas=True, algorithm_type="dpmsolver++"
    )
    pipe.set_progress_bar_config(disable=True)

    def baseline() -> Image.Image:
        source = Image.open(io.BytesIO(picture_png)).convert("RGB")
        region_mask = Image.open(io.BytesIO(mask_png)).convert("L")
        return pipe(
            PROMPT,
            image=source,
            mask_image=region_mask,
            negative_prompt=NEGATIVE,
            generator=[torch.Generator(device="cpu").manual_seed(SEED)],
            num_inference_steps=STEPS,
            guidance_scale=7.0,
            width=WIDTH,
            height=HEIGHT,
            strength=1.0,
            output_type="pil",
        ).images[0]

    inner = mask.filter(ImageFilter.MinFilter(4 * config.inpaint.feather + 1))  # beyond the feathered edge
    return candidate, baseline, store, inner
