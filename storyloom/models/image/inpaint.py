"""Vary (Region), Zoom Out and Pan: find a region, redraw it, grow a picture, and keep the rest exactly.

``RegionFinder`` turns a few words ("the hat") into a mask with CLIPSeg (text-prompted segmentation), or grid
cells into one (``domain/regions.py``). ``Inpaint`` redraws a mask's area with the SD 1.5 inpainting model (a
9-channel UNet: noisy latents, the mask, the masked picture) and ``Outpaint`` grows a picture onto a larger
canvas, the new area being the mask. After decoding, the original is put back outside a mask feathered inwards,
so every pixel outside the mask is the original's, bit for bit (the VAE alone would change them all slightly).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image, ImageChops, ImageFilter

from storyloom.config import Config
from storyloom.domain.parameters import DEFAULT_SAMPLER, GenerationParameters, read_png_parameters
from storyloom.domain.regions import (
    binary_mask,
    cells_mask,
    check_region_words,
    check_result_size,
    coverage,
    describe_growth,
    outpaint_canvas,
    region_preview,
)
from storyloom.domain.seeds import random_seed
from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable
from storyloom.models.image.sd_task import (
    ImageBatch,
    SDTask,
    apply_safety,
    check_common_inputs,
    make_step_callback,
    run_with_oom_retry,
)
from storyloom.models.runtime.devices import optimize_pipeline, resolve_device, resolve_dtype
from storyloom.models.runtime.loading import ModelCache, model_display_name, model_errors, resolve_source
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback

logger = logging.getLogger(__name__)

SIDE_MULTIPLE = 8
# What the new area of a grown picture starts as; the inpainting UNet sees the masked picture with that area
# blanked out, so it only has to be neutral.
CANVAS_FILL = (127, 127, 127)


@dataclass(frozen=True)
class Region:
    """A region found on a picture: its mask (``"L"``, 255 = redraw, unfeathered, the picture's size), the preview
    that shows it, and the fraction of pixels it covers."""

    mask: Image.Image
    preview: Image.Image
    coverage: float

    @property
    def empty(self) -> bool:
        return self.coverage == 0.0


class RegionFinder:
    """Words or grid cells → ``Region`` on a picture; load once (``from_config``), call many times."""

    def __init__(self, model: Any, processor: Any, *, threshold: float) -> None:
        self.model = model
        self.processor = processor
        self.threshold = threshold

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None) -> RegionFinder:
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.device, device)
        key = ("clipseg", config.models.segmentation, str(device), str(dtype))
        model, processor = (
            _load_clipseg(config, device, dtype)
            if cache is None
            else cache.get(key, lambda: _load_clipseg(config, device, dtype))
        )
        return cls(model, processor, threshold=config.inpaint.mask_threshold)

    @torch.no_grad()
    def probabilities(self, picture: Image.Image, words: str) -> torch.Tensor:
        """How likely each pixel of ``picture`` belongs to what ``words`` name: (height, width), 0–1, on the CPU."""
        parameter = next(self.model.parameters())
        inputs = self.processor(
            text=[check_region_words(words)], images=[picture.convert("RGB")], padding=True, return_tensors="pt"
        )
        inputs = {
            name: value.to(device=parameter.device, dtype=parameter.dtype if value.is_floating_point() else None)
            for name, value in inputs.items()
        }
        logits = self.model(**inputs).logits
        logits = logits.reshape(-1, *logits.shape[-2:])[:1, None].float()
        scaled = torch.nn.functional.interpolate(
            logits, size=(picture.height, picture.width), mode="bilinear", align_corners=False
        )
        return scaled.sigmoid()[0, 0].cpu()

    def mask_from_words(self, picture: Image.Image, words: str, threshold: float | None = None) -> Image.Image:
        """The mask of what ``words`` name: pixels whose probability is above the threshold (the configured one
        unless given)."""
        limit = self.threshold if threshold is None else threshold
        chosen = (self.probabilities(picture, words) > limit).to(torch.uint8).mul(255).numpy()
        return Image.fromarray(chosen, mode="L")

    def find(
        self,
        picture: Image.Image,
        *,
        words: str | None = None,
        cells: list[int] | tuple[int, ...] | None = None,
        threshold: float | None = None,
    ) -> Region:
        """The region named by ``words`` or covering grid ``cells`` (exactly one), with its preview."""
        if (words is None) == (cells is None):
            raise InvalidInput("choose the part to redraw either in words or as cells of the 3×3 grid, not both")
        mask = (
            self.mask_from_words(picture, words, threshold)
            if words is not None
            else cells_mask(cells or (), picture.size)
        )
        return Region(mask=mask, preview=region_preview(picture, mask), coverage=coverage(mask))


def _load_clipseg(config: Config, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    name = config.models.segmentation
    source = resolve_source(name, build_tiny=config.models.build_tiny)
    with model_errors(name):
        processor = CLIPSegProcessor.from_pretrained(source)
        model = CLIPSegForImageSegmentation.from_pretrained(source, dtype=dtype, use_safetensors=True)
    model.to(device).eval()  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
    logger.info("loaded segmentation model %s on %s", name, device)
    return model, processor


def load_inpaint_pipeline(config: Config, cache: ModelCache | None = None) -> Any:
    """The ``StableDiffusionInpaintPipeline`` of ``models.inpainting`` (DPM++ 2M Karras, its own safety checker),
    on the configured device and dtype; loaded once per (model, device, dtype) with a ``cache``."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    key = ("sd-inpaint", config.models.inpainting, str(device), str(dtype))
    if cache is None:
        return _load_inpaint(config, device, dtype)
    return cache.get(key, lambda: _load_inpaint(config, device, dtype))


def _load_inpaint(config: Config, device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionInpaintPipeline

    name = config.models.inpainting
    source = resolve_source(name, build_tiny=config.models.build_tiny)
    with model_errors(name):
        pipe = StableDiffusionInpaintPipeline.from_pretrained(source, dtype=dtype, use_safetensors=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, use_karras_sigmas=True, algorithm_type="dpmsolver++"
    )
    optimize_pipeline(pipe, config.device, pipe.device)
    logger.info("loaded inpainting model %s on %s (%s)", name, pipe.device, pipe.dtype)
    return pipe


def feathered(mask: Image.Image, radius: int) -> Image.Image:
    """``mask`` softened over ``radius`` pixels inwards only: 0 wherever the mask is 0, so what is kept stays
    exact, rising to 255 inside the region."""
    binary = binary_mask(mask)
    if radius <= 0:
        return binary
    return ImageChops.darker(binary, binary.filter(ImageFilter.GaussianBlur(radius / 2)))


def blend_kept(original: Image.Image, drawn: Image.Image, mask: Image.Image, radius: int) -> Image.Image:
    """``drawn`` inside the feathered ``mask``, ``original`` outside it (pixel for pixel)."""
    return Image.composite(drawn.convert("RGB"), original.convert("RGB"), feathered(mask, radius))


def work_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The size the model draws a ``size`` picture at: at most ``max_pixels``, sides multiples of 8."""
    width, height = size
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))

    def side(value: float) -> int:
        return max(SIDE_MULTIPLE, int(value // SIDE_MULTIPLE) * SIDE_MULTIPLE)

    return side(width * scale), side(height * scale)


class Inpaint(SDTask):
    """Picture + mask + prompt → ``ImageBatch`` of one picture, redrawn inside the mask and unchanged outside."""

    pipeline_class = "StableDiffusionInpaintPipeline"
    stage = "inpainting"

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None, *, checkpoint: str | None = None):
        """The inpainting model of ``models.inpainting`` (the extra checkpoints are not inpainting models)."""
        if checkpoint is not None:
            raise ModelUnavailable(
                f"model {checkpoint!r} cannot redraw part of a picture; regions are redrawn with models.inpainting"
            )
        task = cls.from_pipeline(load_inpaint_pipeline(config, cache), config)
        task.model_name = model_display_name(config.models.inpainting)
        task.cache = cache
        return task

    def __call__(
        self,
        image: Image.Image,
        mask: Image.Image,
        prompt: str,
        negative_prompt: str = "",
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        safety_checker: bool | None = None,
    ) -> ImageBatch:
        """``image`` with the area of ``mask`` (same size, 255 = redraw) redrawn as ``prompt`` describes."""
        if mask.size != image.size:
            raise InvalidInput(
                f"the mask is {mask.width}×{mask.height} but the picture is {image.width}×{image.height}"
            )
        covered = coverage(mask)
        if covered == 0.0:
            raise InvalidInput("the region to redraw is empty; choose a part of the picture first")
        return self.redraw(
            image.convert("RGB"), mask, prompt, negative_prompt,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed, progress=progress,
            should_cancel=should_cancel, safety_checker=safety_checker,
            extra={"Inpaint": f"{covered:.1%} of the picture"},
        )  # fmt: skip

    def redraw(
        self,
        picture: Image.Image,
        mask: Image.Image,
        prompt: str,
        negative_prompt: str,
        *,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        seed: int | None,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
        safety_checker: bool | None,
        extra: dict[str, str],
    ) -> ImageBatch:
        """The shared inpainting run: draw at the work size, scale back, keep the original outside the mask."""
        image_cfg = self.config.image
        steps = image_cfg.steps if num_inference_steps is None else num_inference_steps
        guidance = image_cfg.guidance_scale if guidance_scale is None else guidance_scale
        check_common_inputs(num_inference_steps=steps, guidance_scale=guidance, seed=seed, num_images=1)
        self.encoder.validate(prompt, negative_prompt, allow_empty_prompt=True)
        seed = random_seed() if seed is None else seed
        if should_cancel is not None and should_cancel():
            raise JobCanceled("canceled")
        width, height = work_size(picture.size, self.config.inpaint.max_work_pixels)
        work_picture = (
            picture if picture.size == (width, height) else picture.resize((width, height), Image.Resampling.LANCZOS)
        )
        work_mask = mask.convert("L")
        if work_mask.size != (width, height):
            work_mask = work_mask.resize((width, height), Image.Resampling.BILINEAR)
        work_mask = binary_mask(work_mask)
        callback = make_step_callback(progress, should_cancel, image_cfg.preview_every, self.stage)
        with self.drawing_loras(prompt) as lora_extra:
            conditioning = self.encoder.conditioning(prompt, negative_prompt, steps=steps, allow_empty_prompt=True)

            def generate(batch_seeds: list[int]) -> list[Image.Image]:
                return self._draw(
                    batch_seeds, conditioning, callback,
                    image=work_picture, mask_image=work_mask, width=width, height=height, strength=1.0,
                    num_inference_steps=steps, guidance_scale=guidance,
                )  # fmt: skip

            drawn = run_with_oom_retry(generate, [seed], self.device, f"a redraw at {width}×{height}")[0]
        if drawn.size != picture.size:
            drawn = drawn.resize(picture.size, Image.Resampling.LANCZOS)
        result = blend_kept(picture, drawn, mask, self.config.inpaint.feather)
        enabled = image_cfg.safety_checker if safety_checker is None else safety_checker
        images, nsfw = apply_safety([result], self.safety, enabled)
        parameters = GenerationParameters(
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=steps,
            sampler=DEFAULT_SAMPLER,
            cfg_scale=float(guidance),
            seed=seed,
            width=picture.width,
            height=picture.height,
            model=self.model_name,
            extra={**lora_extra, **extra},
        )
        return ImageBatch(images=images, seeds=[seed], parameters=[parameters], nsfw=nsfw)


class Outpaint(Inpaint):
    """Picture → ``ImageBatch`` of one larger picture (Zoom Out or Pan) with the original unchanged in it."""

    stage = "outpainting"

    def __call__(  # type: ignore[override]  # grows a picture rather than taking a mask
        self,
        image: Image.Image,
        *,
        zoom: float | None = None,
        pan: str | None = None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        safety_checker: bool | None = None,
    ) -> ImageBatch:
        """``image`` zoomed out by ``zoom`` (centred) or extended towards ``pan``; a prompt of None is the
        picture's own (from its PNG parameters)."""
        canvas = outpaint_canvas(image.size, zoom=zoom, pan=pan)
        check_result_size(
            canvas, max_side=self.config.inpaint.max_result_side, max_pixels=self.config.inpaint.max_result_pixels
        )
        stored = read_png_parameters(image)
        if prompt is None:
            prompt = stored.prompt if stored else ""
        if negative_prompt is None:
            negative_prompt = stored.negative_prompt if stored else ""
        start = Image.new("RGB", canvas.size, CANVAS_FILL)
        start.paste(image.convert("RGB"), (canvas.left, canvas.top))
        return self.redraw(
            start, canvas.new_area_mask(), prompt, negative_prompt,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed, progress=progress,
            should_cancel=should_cancel, safety_checker=safety_checker,
            extra={"Outpaint": describe_growth(zoom=zoom, pan=pan)},
        )  # fmt: skip
