"""The first half of the upscale chain: img2img at 2× guided by a ControlNet, so the form is kept.

Plain img2img at a low strength re-draws detail but drifts from the source; a ControlNet fed with the
source itself (tile) or its edges (HED) holds the composition in place while the model adds the
detail a bigger canvas needs. The pipeline is built from the shared Stable Diffusion components
(same weights, its own scheduler), so it adds only the ControlNet's weights to memory.

HED: the control image is the HED soft-edge map the HED ControlNet was trained on, made by the HED
annotator network (``hed.py``), loaded only when the HED ControlNet is used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from PIL import Image

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback

if TYPE_CHECKING:
    from storyloom.config import Config
    from storyloom.models.image.hed import HedAnnotator
    from storyloom.models.runtime.loading import ModelCache

logger = logging.getLogger(__name__)

STAGE = "controlnet"
SCALE_FACTOR = 2
SIZE_MULTIPLE = 8  # the pipeline's check_inputs wants sides divisible by 8

ControlNetKind = Literal["tile", "hed"]


def upscaled_size(width: int, height: int, factor: int = SCALE_FACTOR) -> tuple[int, int]:
    """``factor``× the size, each side rounded to the nearest multiple of 8 the pipeline accepts."""

    def side(value: int) -> int:
        return max(SIZE_MULTIPLE, int(round(value * factor / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return side(width), side(height)


@dataclass(frozen=True)
class ControlNetUpscaleOutput:
    """The 2× image and the settings that made it (for the PNG parameters)."""

    image: Image.Image
    seed: int
    num_inference_steps: int
    strength: float
    guidance_scale: float
    controlnet_conditioning_scale: float
    controlnet: ControlNetKind


class ControlNetUpscaler:
    """Img2img + ControlNet at 2×: load once, call many times."""

    def __init__(
        self,
        pipe: Any,
        prompt_encoder: Any,
        *,
        controlnet: ControlNetKind = "tile",
        hed: HedAnnotator | None = None,
        num_inference_steps: int = 20,
        strength: float = 0.35,
        guidance_scale: float = 7.0,
        controlnet_conditioning_scale: float = 1.0,
        preview_every: int = 5,
    ) -> None:
        if controlnet == "hed" and hed is None:
            raise ValueError("the HED ControlNet needs the HED annotator (hed=) to make its control images")
        self.pipe = pipe
        self.prompt_encoder = prompt_encoder
        self.controlnet = controlnet
        self.hed = hed
        self.num_inference_steps = num_inference_steps
        self.strength = strength
        self.guidance_scale = guidance_scale
        self.controlnet_conditioning_scale = controlnet_conditioning_scale
        self.preview_every = preview_every
        self.steering: Any = None  # an ``ImageSteering`` for the calls inside ``steered_by``

    @classmethod
    def from_config(
        cls, config: Config, cache: ModelCache | None = None, *, controlnet: ControlNetKind | None = None
    ) -> ControlNetUpscaler:
        """Build on the shared SD components (through ``cache``) and load the chosen ControlNet."""
        from storyloom.models.runtime.loading import load_sd_components

        return cls.from_pipeline(load_sd_components(config, cache), config, cache, controlnet=controlnet)

    @classmethod
    def from_pipeline(
        cls, base: Any, config: Config, cache: ModelCache | None = None, *, controlnet: ControlNetKind | None = None
    ) -> ControlNetUpscaler:
        """Share ``base``'s weights: a fresh scheduler (``set_timesteps`` mutates it), no built-in safety checker
        (the upscaler runs the shared filter and blurs instead of blacking out)."""
        from diffusers import StableDiffusionControlNetImg2ImgPipeline

        from storyloom.models.image.conditioning import PromptEncoder
        from storyloom.models.image.sd_task import task_components

        kind: ControlNetKind = controlnet or config.upscale.controlnet
        model = load_controlnet(config, kind, device=base.device, dtype=base.dtype, cache=cache)
        hed = None
        if kind == "hed":
            from storyloom.models.image.hed import HedAnnotator

            hed = HedAnnotator.from_config(config, cache, device=base.device)
        pipe = StableDiffusionControlNetImg2ImgPipeline(
            **task_components(base), controlnet=model, requires_safety_checker=False
        )
        pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # diffusers' top-level names resolve to its dummy classes for mypy
        return cls(
            pipe,
            PromptEncoder.from_pipeline(pipe, max_chars=config.image.max_prompt_chars),
            controlnet=kind,
            hed=hed,
            num_inference_steps=config.upscale.steps,
            strength=config.upscale.strength,
            guidance_scale=config.image.guidance_scale,
            controlnet_conditioning_scale=config.upscale.controlnet_scale,
            preview_every=config.image.preview_every,
        )

    def using_loras(self, loras: Sequence[tuple[Path, str]], *, scale: float = 1.0) -> Any:
        """A context manager: calls inside it re-draw with the LoRAs (file, adapter name) of characters. The UNet
        and text encoder are the base pipeline's own, so the LoRAs are unloaded on exit (see ``lora_loaded``)."""
        from storyloom.models.image.lora import lora_loaded

        return lora_loaded(self.pipe, loras, scale=scale)

    def steered_by(self, steering: Any) -> Any:
        """A context manager: calls inside it re-draw steered by ``steering`` (characters' reference pictures
        through IP-Adapter); the shared UNet is exactly as before once it exits."""
        from storyloom.models.image.image_prompt import steering_loaded

        return steering_loaded(self, steering)

    def control_image(self, image: Image.Image) -> Image.Image:
        """Tile: the (already resized) image itself. HED: its HED soft-edge map, the same size."""
        if self.controlnet == "tile" or self.hed is None:  # __init__ refuses "hed" without an annotator
            return image
        return self.hed(image)

    @staticmethod
    def steps_to_request(num_inference_steps: int, strength: float) -> int:
        """Img2img runs ``int(steps * strength)`` of the asked steps; ask for enough that at least one runs."""
        return max(num_inference_steps, math.ceil(1.0 / strength))

    def check_inputs(
        self,
        image: Any,
        prompt: str,
        negative_prompt: str,
        num_inference_steps: Any,
        strength: Any,
        seed: Any,
        first_pass_steps: int | None = None,
    ) -> None:
        from storyloom.models.image.sd_task import check_common_inputs

        if not isinstance(image, Image.Image):
            raise InvalidInput(f"image must be a PIL image, not {type(image).__name__}")
        check_common_inputs(
            num_inference_steps=num_inference_steps, guidance_scale=self.guidance_scale, seed=seed, num_images=1
        )
        if not isinstance(strength, (int, float)) or not 0.0 < strength <= 1.0:
            raise InvalidInput(f"strength must be above 0 and at most 1 (got {strength})")
        self.prompt_encoder.validate(prompt, negative_prompt, first_pass_steps=first_pass_steps)

    def __call__(
        self,
        image: Image.Image,
        *,
        prompt: str,
        negative_prompt: str = "",
        seed: int | None = None,
        num_inference_steps: int | None = None,
        strength: float | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        first_pass_steps: int | None = None,
    ) -> ControlNetUpscaleOutput:
        """Re-draw ``image`` at 2× with ``prompt`` (A1111 emphasis allowed), guided by the ControlNet.

        ``progress`` gets one ``StepProgress`` per denoising step (stage ``"controlnet"``, a latent preview
        every few steps); ``should_cancel`` is checked at every step and raises ``JobCanceled``."""
        from storyloom.domain.seeds import random_seed
        from storyloom.models.image.sd_task import cpu_generators, make_step_callback, run_with_oom_retry

        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        strength = self.strength if strength is None else strength
        self.check_inputs(image, prompt, negative_prompt, steps, strength, seed, first_pass_steps)
        steps = self.steps_to_request(steps, strength)
        seed = random_seed() if seed is None else seed
        if should_cancel is not None and should_cancel():
            raise JobCanceled("canceled")

        width, height = upscaled_size(image.width, image.height)
        resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        # img2img runs only the last int(steps × strength) steps; the schedule spans the steps that run.
        # Like A1111's hires fix, a second pass over the picture: its schedule counts on from the picture's
        # own steps (``first_pass_steps``), so [a:b:1.5] would switch halfway through this pass.
        conditioning = self.prompt_encoder.conditioning(
            prompt, negative_prompt, steps=max(1, min(steps, int(steps * strength))), first_pass_steps=first_pass_steps
        )
        prompt_embeds, negative_prompt_embeds = conditioning.initial()
        callback = make_step_callback(progress, should_cancel, self.preview_every, STAGE)

        steered = {} if self.steering is None else self.steering.pipeline_arguments(self.guidance_scale, width, height)

        def generate(seeds: list[int]) -> list[Image.Image]:
            with conditioning.applied(self.pipe, callback) as (step_callback, tensor_inputs):
                output = self.pipe(
                    **steered,
                    image=resized,
                    control_image=self.control_image(resized),
                    height=height,
                    width=width,
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_prompt_embeds,
                    strength=strength,
                    num_inference_steps=steps,
                    guidance_scale=self.guidance_scale,
                    controlnet_conditioning_scale=self.controlnet_conditioning_scale,
                    generator=cpu_generators(seeds),
                    output_type="pil",
                    callback_on_step_end=step_callback,
                    callback_on_step_end_tensor_inputs=tensor_inputs,
                )
            return list(output.images)

        (redrawn,) = run_with_oom_retry(generate, [seed], self.pipe.device, f"the 2× image at {width}×{height}")
        return ControlNetUpscaleOutput(
            image=redrawn,
            seed=seed,
            num_inference_steps=steps,
            strength=strength,
            guidance_scale=self.guidance_scale,
            controlnet_conditioning_scale=self.controlnet_conditioning_scale,
            controlnet=self.controlnet,
        )


def load_controlnet(
    config: Config, kind: ControlNetKind, *, device: torch.device, dtype: torch.dtype, cache: ModelCache | None = None
) -> Any:
    """The configured tile or HED ``ControlNetModel`` (safetensors only) on ``device``, shared through ``cache``."""
    name = config.models.controlnet_tile if kind == "tile" else config.models.controlnet_hed

    def load() -> Any:
        from diffusers import ControlNetModel

        from storyloom.models.runtime.loading import model_errors, resolve_source

        source = resolve_source(name, build_tiny=config.models.build_tiny)
        with model_errors(name):
            model = ControlNetModel.from_pretrained(source, torch_dtype=dtype, use_safetensors=True)
        logger.info("loaded %s ControlNet %s on %s (%s)", kind, name, device, dtype)
        return model.to(device).eval()

    if cache is None:
        return load()
    return cache.get(("controlnet", name, str(device), str(dtype)), load)
