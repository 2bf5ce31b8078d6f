"""Variations: four new takes on one image (img2img with new seeds), the V1–V4 buttons.

The source's own prompt, read from its PNG parameters, steers the denoising so a variation stays the same
picture; "subtle" and "strong" are img2img strengths from the config. A picture drawn at the model's size comes
back at its own size; a bigger one (an upscale, a large file) is varied and returned at the base size (the
configured image area, same shape): four 4096² PNGs per press would only fill the disk with re-drawn detail
the model cannot add at that size anyway.
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
# Sources up to this many times the configured image area keep their size (aspect-ratio sizes round up a little).
BASE_AREA_TOLERANCE = 1.25


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

        work = self._working_image(source)
        callback = make_step_callback(progress, should_cancel, image_cfg.preview_every, "variations")
        with self.drawing_loras(prompt) as lora_extra:  # the <lora:…> of the picture's prompt, as it was drawn
            # img2img runs only the last int(steps × strength) steps; the schedule spans the steps that run.
            conditioning = self.encoder.conditioning(
                prompt, negative_prompt, steps=min(steps, int(steps * denoise)), allow_empty_prompt=True
            )

            def generate(batch_seeds: list[int]) -> list[Image.Image]:
                return self._draw(
                    batch_seeds, conditioning, callback,
                    image=work, strength=denoise, num_inference_steps=steps, guidance_scale=guidance,
                )  # fmt: skip

            images = run_with_oom_retry(
                generate, seeds, self.device, f"{count} variations at {work.width}×{work.height}"
            )
        # The pipeline draws multiples of 8; an odd-sized source gets its own size back.
        output_size = self.output_size(source.size)
        images = [im if im.size == output_size else im.resize(output_size, Image.Resampling.LANCZOS) for im in images]
        enabled = image_cfg.safety_checker if safety_checker is None else safety_checker
        images, nsfw = apply_safety(images, self.safety, enabled)
        extra = {**lora_extra, **({"Variation of seed": str(stored.seed)} if stored else {})}
        parameters = [
            GenerationParameters(
                prompt=prompt,
                negative_prompt=negative_prompt,
                steps=steps,
                sampler=DEFAULT_SAMPLER,
                cfg_scale=float(guidance),
                seed=s,
                width=output_size[0],
                height=output_size[1],
                model=self.model_name,
                denoising_strength=denoise,
                extra=extra,
            )
            for s in seeds
        ]
        return ImageBatch(images=images, seeds=seeds, parameters=parameters, nsfw=nsfw)

    def output_size(self, source_size: tuple[int, int]) -> tuple[int, int]:
        """The source's size when it is about the base size or smaller, else the base size in its shape."""
        width, height = source_size
        base_area = self.config.image.width * self.config.image.height
        if width * height <= BASE_AREA_TOLERANCE * base_area:
            return source_size
        scale = math.sqrt(base_area / (width * height))
        return max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8)

    def _working_image(self, source: Image.Image) -> Image.Image:
        """RGB at the output size with sides rounded to multiples of 8 (what the UNet takes)."""
        image = source.convert("RGB")
        width, height = self.output_size(image.size)
        target = (max(8, int(round(width / 8)) * 8), max(8, int(round(height / 8)) * 8))
        return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)
