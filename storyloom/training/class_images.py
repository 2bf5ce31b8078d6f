"""Class images for DreamBooth prior preservation: what the base model draws for "photograph of cat".

Training on them next to the subject's photos keeps the model's idea of "cat" from collapsing into this one
cat. They depend only on (base model, prompt, resolution), so they are cached under
``<data_dir>/class-images/`` and reused by every later character of that class; a run that needs more than the
cache holds makes only the missing ones. Each image is written atomically, so an interrupted run never leaves
a half-written file behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from storyloom.characters.photos import CLASS_IMAGES_DIR
from storyloom.config import Config
from storyloom.domain.paths import slug
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress
from storyloom.training.checkpoints import fingerprint

logger = logging.getLogger(__name__)

GENERATION_BATCH = 4
CLASS_SEED = 1_000_000  # class image i uses seed CLASS_SEED + i, whatever run made it


def class_images_dir(config: Config, class_name: str, prompt: str, resolution: int) -> Path:
    key = fingerprint(model=config.models.image, prompt=prompt, resolution=resolution)[:12]
    return config.paths.data_dir / CLASS_IMAGES_DIR / f"{slug(class_name, fallback='class')}-{resolution}-{key}"


def ensure_class_images(
    base: Any,
    config: Config,
    *,
    class_name: str,
    prompt: str,
    count: int,
    resolution: int,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> list[Path]:
    """``count`` class images (cached ones first, the rest made now with ``base``, a loaded SD pipeline)."""
    if count <= 0:
        return []
    directory = class_images_dir(config, class_name, prompt, resolution)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prompt.txt").write_text(f"{prompt}\n", encoding="utf-8")
    paths = [directory / f"class_{index:04d}.png" for index in range(count)]
    missing = [index for index, path in enumerate(paths) if not path.is_file()]
    if missing:
        logger.info("making %d class images of %r in %s", len(missing), prompt, directory)
        _generate(base, config, prompt, resolution, paths, missing, progress, should_cancel)
    return paths


def _generate(
    base: Any,
    config: Config,
    prompt: str,
    resolution: int,
    paths: list[Path],
    missing: list[int],
    progress: ProgressCallback | None,
    should_cancel: CancelCheck | None,
) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from storyloom.models.image.sd_task import cpu_generators, make_step_callback, task_components

    # A view of the base weights without the safety checker: class images never leave the worker, and a
    # blacked-out image would teach the prior that cats are black squares.
    pipe = StableDiffusionPipeline(**task_components(base), requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # diffusers' top-level names resolve to its dummy classes for mypy
    callback = make_step_callback(None, should_cancel, preview_every=10**6, stage="class images")
    done = 0
    for start in range(0, len(missing), GENERATION_BATCH):
        batch = missing[start : start + GENERATION_BATCH]
        if progress is not None:
            progress(StepProgress(done, len(missing), stage="class images"))
        with torch.inference_mode():
            images = pipe(  # type: ignore[operator]  # diffusers' top-level names resolve to its dummy classes for mypy
                prompt=[prompt] * len(batch),
                height=resolution,
                width=resolution,
                num_inference_steps=config.image.steps,
                guidance_scale=config.image.guidance_scale,
                generator=cpu_generators([CLASS_SEED + index for index in batch]),
                output_type="pil",
                callback_on_step_end=callback,
            ).images
        for index, image in zip(batch, images):
            temporary = paths[index].with_suffix(".tmp.png")
            image.save(temporary)
            os.replace(temporary, paths[index])
        done += len(batch)
    if progress is not None:
        progress(StepProgress(done, len(missing), stage="class images"))
