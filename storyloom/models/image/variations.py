"""Variations: four new takes on one image (img2img with new seeds), the V1–V4 buttons.

The source's own prompt, read from its PNG parameters, steers the denoising so a variation stays the same
picture; "subtle" and "strong" are img2img strengths from the config. Output has the source's size.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image

from storyloom.domain.parameters import DEFAULT_SAMPLER, GenerationParameters, read_png_parameters
from storyloom.domain.seeds import random_seed
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.image.imaging import read_image_file
from storyloom.models.image.sd_task import (
    ImageBatch,
    SDTask,
    apply_safety,
    check_common_inputs,
    make_step_callback,
    run_with_oom_retry,
)
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback

STRENGTH_NAMES = ("subtle", "strong")
# Sources bigger than this many times the configured image area are processed scaled down, then scaled back.
MAX_AREA_FACTOR = 4


class Variations(SDTask):
    """Image (+ optional prompt) → ``ImageBatch`` of variations, sharing the loaded SD components."""

    pipeline_class = "StableDiffusionImg2ImgPipeline"

    def resolve_strength(self, strength: str | float) -> float:
        """``"subtle"``/``"strong"`` from the config, or a number in (0, 1]."""
        if isinstance(strength, str):
            name = strength.strip().lower()
            if name == "subtle":
                return self.config.image.variation_subtle
            if name == "strong":
                return self.config.image.variation_strong
            try:
                strength = float(name)
            except ValueError:
                raise InvalidInput(
                    f"strength {strength!r} is not allowed; use subtle, strong or a number between 0 and 1"
                ) from None
        if (
            isinstance(strength, bool)
            or not isinstance(strength, (int, float))
            or not math.isfinite(strength)
            or not 0 < strength <= 1
        ):
            raise InvalidInput(f"strength {strength!r} is not allowed; use subtle, strong or a number between 0 and 1")
        return float(strength)

    def __call__(
        self,
        image: Image.Image | str | Path,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        *,
        strength: str | float = "subtle",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        num_images: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        safety_checker: bool | None = None,
    ) -> ImageBatch:
        """Four variations of ``image`` with seeds ``seed..seed+3`` (random ``seed`` when None)."""
        source = read_image_file(image) if isinstance(image, (str, Path)) else image
        stored = read_png_parameters(source)
        if prompt is None:
            prompt = stored.prompt if stored else ""
        if negative_prompt is None:
            negative_prompt = stored.negative_prompt if stored else ""
        image_cfg = self.config.image
        steps = image_cfg.steps if num_inference_steps is None else num_inference_steps
        guidance = image_cfg.guidance_scale if guidance_scale is None else guidance_scale
        count = image_cfg.batch_size if num_images is None else num_images
        denoise = self.resolve_strength(strength)
        check_common_inputs(num_inference_steps=steps, guidance_scale=guidance, seed=seed, num_images=count)
        if int(steps * denoise) < 1:
            raise InvalidInput(
                f"{steps} steps at strength {denoise:g} leave no step to run; use more steps or a stronger variation"
            )
        # An empty prompt is fine here: the source image carries the content.
        self.encoder.validate(prompt, negative_prompt, allow_empty_prompt=True)
        seed = random_seed() if seed is None else seed
        seeds = [seed + offset for offset in range(count)]
        if should_cancel is not None and should_cancel():
            raise JobCanceled("canceled")

        original_size = source.size
        work = self._working_image(source)
        prompt_embeds, negative_embeds = self.encoder.encode(prompt, negative_prompt, allow_empty_prompt=True)
        callback = make_step_callback(progress, should_cancel, image_cfg.preview_every, "variations")

        def generate(batch_seeds: list[int]) -> list[Image.Image]:
            return self._call_pipeline(
                batch_seeds, prompt_embeds, negative_embeds, callback,
                image=work, strength=denoise, num_inference_steps=steps, guidance_scale=guidance,
            )  # fmt: skip

        images = run_with_oom_retry(generate, seeds, self.device, f"{count} variations at {work.width}×{work.height}")
        images = [
            im if im.size == original_size else im.resize(original_size, Image.Resampling.LANCZOS) for im in images
        ]
        enabled = image_cfg.safety_checker if safety_checker is None else safety_checker
        images, nsfw = apply_safety(images, self.safety, enabled)
        extra = {"Variation of seed": str(stored.seed)} if stored else {}
        parameters = [
            GenerationParameters(
                prompt=prompt,
                negative_prompt=negative_prompt,
                steps=steps,
                sampler=DEFAULT_SAMPLER,
                cfg_scale=float(guidance),
                seed=s,
                width=original_size[0],
                height=original_size[1],
                model=self.model_name,
                denoising_strength=denoise,
                extra=extra,
            )
            for s in seeds
        ]
        return ImageBatch(images=images, seeds=seeds, parameters=parameters, nsfw=nsfw)

    def _working_image(self, source: Image.Image) -> Image.Image:
        """RGB, sides multiples of 8, no bigger than a few times the configured area (memory stays bounded)."""
        image = source.convert("RGB")
        width, height = image.size
        limit = MAX_AREA_FACTOR * self.config.image.width * self.config.image.height
        scale = min(1.0, math.sqrt(limit / (width * height)))
        target = (max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8))
        return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)
