"""Text to image: four images from one prompt in one batched diffusers call.

Load once (``Txt2Img.from_config``), call many times. Each image has its own CPU ``torch.Generator``
seeded ``seed + i``, so any single image can be made again alone, on any device, from its reported seed.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from storyloom.domain.parameters import DEFAULT_SAMPLER, GenerationParameters
from storyloom.domain.prompt_flags import MAX_CHAOS
from storyloom.domain.seeds import random_seed
from storyloom.domain.sizes import size_for_aspect_ratio
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.image.sd_task import (
    MAX_DRAW_SIDE,
    MIN_DRAW_SIDE,
    ImageBatch,
    SDTask,
    apply_safety,
    check_common_inputs,
    is_int,
    make_step_callback,
    run_with_oom_retry,
)
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback

__all__ = ["ImageBatch", "Txt2Img"]


class Txt2Img(SDTask):
    """Prompt → ``ImageBatch`` with the shared SD components, DPM++ 2M Karras and compel conditioning."""

    pipeline_class = "StableDiffusionPipeline"

    def check_inputs(
        self,
        prompt: str,
        negative_prompt: str,
        num_inference_steps: Any,
        guidance_scale: Any,
        width: Any,
        height: Any,
        seed: Any,
        num_images: Any,
    ) -> None:
        """Concise ``InvalidInput`` naming the bad value and the allowed range; nothing is run before this passes."""
        check_common_inputs(
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed, num_images=num_images
        )
        for name, side in (("width", width), ("height", height)):
            if not is_int(side) or not MIN_DRAW_SIDE <= side <= MAX_DRAW_SIDE or side % 8:
                raise InvalidInput(
                    f"{name} must be a multiple of 8 between {MIN_DRAW_SIDE} and {MAX_DRAW_SIDE} (got {side})"
                )
        self.encoder.validate(prompt, negative_prompt)

    def __call__(
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        aspect_ratio: str | None = None,
        seed: int | None = None,
        num_images: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        safety_checker: bool | None = None,
        chaos: int | None = None,
        tile: bool = False,
    ) -> ImageBatch:
        """Make ``num_images`` (default 4) images with seeds ``seed..seed+n-1`` (random ``seed`` when None).

        ``chaos`` (0–100, Midjourney's ``--chaos``) is how much more the pictures differ from each other than
        their seeds alone make them; ``tile`` draws pictures that tile seamlessly."""
        image_cfg = self.config.image
        steps = image_cfg.steps if num_inference_steps is None else num_inference_steps
        guidance = image_cfg.guidance_scale if guidance_scale is None else guidance_scale
        width = image_cfg.width if width is None else width
        height = image_cfg.height if height is None else height
        if aspect_ratio:
            width, height = size_for_aspect_ratio(aspect_ratio, width, height)
        count = image_cfg.batch_size if num_images is None else num_images
        negative_prompt = negative_prompt or ""
        self.check_inputs(prompt, negative_prompt, steps, guidance, width, height, seed, count)
        if chaos is not None and (not is_int(chaos) or not 0 <= chaos <= MAX_CHAOS):
            raise InvalidInput(f"chaos must be a whole number from 0 to {MAX_CHAOS} (got {chaos})")
        seed = random_seed() if seed is None else seed
        seeds = [seed + offset for offset in range(count)]
        if should_cancel is not None and should_cancel():
            raise JobCanceled("canceled")

        callback = make_step_callback(progress, should_cancel, image_cfg.preview_every, "txt2img")
        with self.drawing_loras(prompt) as lora_extra:
            conditioning = self.encoder.conditioning(prompt, negative_prompt, steps=steps)

            def generate(batch_seeds: list[int]) -> list[Image.Image]:
                return self._draw(
                    batch_seeds, conditioning, callback, chaos=(chaos or 0) / MAX_CHAOS, tile=tile,
                    num_inference_steps=steps, guidance_scale=guidance, width=width, height=height,
                )  # fmt: skip

            images = run_with_oom_retry(generate, seeds, self.device, f"{count} images at {width}×{height}")
        enabled = image_cfg.safety_checker if safety_checker is None else safety_checker
        images, nsfw = apply_safety(images, self.safety, enabled)
        extra = {**self.model_extra, **lora_extra}
        extra.update({**({"Chaos": str(chaos)} if chaos else {}), **({"Tiling": "True"} if tile else {})})
        parameters = [
            GenerationParameters(
                prompt=prompt,
                negative_prompt=negative_prompt,
                steps=steps,
                sampler=DEFAULT_SAMPLER,
                cfg_scale=float(guidance),
                seed=s,
                width=width,
                height=height,
                model=self.model_name,
                extra=extra,
            )
            for s in seeds
        ]
        return ImageBatch(images=images, seeds=seeds, parameters=parameters, nsfw=nsfw)
