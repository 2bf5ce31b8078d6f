"""What every Stable Diffusion task shares: input checks, seeds, the step callback, the out-of-memory
retry, the safety pass, the output batch, and the base class that builds a task pipeline from the loaded
components without copying weights."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from storyloom.config import Config
from storyloom.domain.parameters import GenerationParameters, save_png
from storyloom.domain.seeds import check_seed
from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable, OutOfMemory
from storyloom.models.image.conditioning import PromptConditioning, PromptEncoder
from storyloom.models.image.imaging import latent_preview, make_grid
from storyloom.models.image.safety import SafetyFilter
from storyloom.models.runtime.devices import empty_cache, resolve_device
from storyloom.models.runtime.loading import ModelCache, load_sd_components, model_display_name
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress

logger = logging.getLogger(__name__)

MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MIN_DRAW_SIDE = 32  # the width and height a task may draw at (multiples of 8 in between)
MAX_DRAW_SIDE = 2048
MAX_IMAGES = 8
PREVIEW_SIDE = 256


@dataclass(frozen=True)
class ImageBatch:
    """The result of one request: images in order, with the seed, parameters and safety flag of each."""

    images: list[Image.Image]
    seeds: list[int]
    parameters: list[GenerationParameters]
    nsfw: list[bool]

    def grid(self, columns: int = 2) -> Image.Image:
        return make_grid(self.images, columns)

    def save(self, directory: Path | str) -> list[Path]:
        """``grid.png`` (carrying the first image's parameters, as A1111 does) and ``image_1.png``…"""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "grid.png"]
        save_png(self.grid(), paths[0], self.parameters[0])
        for number, (image, params) in enumerate(zip(self.images, self.parameters), start=1):
            path = directory / f"image_{number}.png"
            save_png(image, path, params)
            paths.append(path)
        return paths


class StepCallback:
    """``callback_on_step_end`` for diffusers: progress with a cheap preview, and cancellation.

    Cancellation raises ``JobCanceled`` from inside the loop, so nothing after the current UNet step runs
    (not even the VAE decode of a result nobody wants).
    """

    def __init__(
        self,
        *,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
        preview_every: int,
        stage: str,
    ) -> None:
        self.progress = progress
        self.should_cancel = should_cancel
        self.preview_every = preview_every
        self.stage = stage

    def __call__(self, pipe: Any, step_index: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.should_cancel is not None and self.should_cancel():
            raise JobCanceled("canceled")
        if self.progress is not None:
            step, total = step_index + 1, pipe.num_timesteps
            preview = None
            latents = callback_kwargs.get("latents")
            if latents is not None and step % self.preview_every == 0 and step < total:
                side = max(latents.shape[-2:])
                preview = latent_preview(latents, scale=max(1, round(PREVIEW_SIDE / side)))
            self.progress(StepProgress(step=step, total=total, preview=preview, stage=self.stage))
        return {}


def make_step_callback(
    progress: ProgressCallback | None, should_cancel: CancelCheck | None, preview_every: int, stage: str
) -> StepCallback | None:
    if progress is None and should_cancel is None:
        return None
    return StepCallback(progress=progress, should_cancel=should_cancel, preview_every=preview_every, stage=stage)


def run_with_oom_retry(
    generate: Callable[[list[int]], list[Image.Image]], seeds: list[int], device: torch.device, what: str
) -> list[Image.Image]:
    """All seeds in one batch; on CUDA out-of-memory, free the cache and make them one at a time, once.

    The cache is emptied after leaving the ``except`` block: until then the traceback keeps the failed
    attempt's tensors alive.
    """
    try:
        return generate(seeds)
    except torch.cuda.OutOfMemoryError:
        logger.warning("out of memory making %s as a batch of %d", what, len(seeds))
    empty_cache(device)
    if len(seeds) == 1:
        raise OutOfMemory(f"out of GPU memory while making {what}; try a smaller size")
    images: list[Image.Image] = []
    failed = False
    try:
        for seed in seeds:
            images.extend(generate([seed]))
    except torch.cuda.OutOfMemoryError:
        failed = True
    if failed:
        empty_cache(device)
        raise OutOfMemory(
            f"out of GPU memory while making {what}, even one image at a time; try a smaller size or fewer images"
        )
    return images


def apply_safety(
    images: list[Image.Image], safety: SafetyFilter | None, enabled: bool
) -> tuple[list[Image.Image], list[bool]]:
    if not enabled:
        return images, [False] * len(images)
    if safety is None:
        raise ModelUnavailable("the safety checker was asked for but the image model was loaded without one")
    result = safety(images)
    return result.images, result.flagged


def check_common_inputs(*, num_inference_steps: Any, guidance_scale: Any, seed: Any, num_images: Any) -> None:
    """Range checks shared by every image task; each message names the value and what is allowed."""
    if not is_int(num_inference_steps) or not 1 <= num_inference_steps <= MAX_STEPS:
        raise InvalidInput(f"steps must be between 1 and {MAX_STEPS} (got {num_inference_steps})")
    if (
        not isinstance(guidance_scale, (int, float))
        or isinstance(guidance_scale, bool)
        or not math.isfinite(guidance_scale)
        or not 0 <= guidance_scale <= MAX_GUIDANCE
    ):
        raise InvalidInput(f"guidance scale must be between 0 and {MAX_GUIDANCE:g} (got {guidance_scale})")
    check_seed(seed)
    if not is_int(num_images) or not 1 <= num_images <= MAX_IMAGES:
        raise InvalidInput(f"number of images must be between 1 and {MAX_IMAGES} (got {num_images})")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cpu_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """CPU generators make the starting noise identical on every device, so a seed means the same image anywhere."""
    return [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]


def task_components(base: Any) -> dict[str, Any]:
    """``base``'s modules for another SD task pipeline: same weights, a fresh scheduler, no built-in checker."""
    components = dict(base.components)
    components["scheduler"] = type(base.scheduler).from_config(base.scheduler.config)
    components["safety_checker"] = None
    return components


class SDTask:
    """Base of the SD task pipelines: the diffusers pipeline class named by ``pipeline_class``, built from the
    shared base pipeline's modules, plus the prompt encoder and the base model's safety filter."""

    pipeline_class: str = "StableDiffusionPipeline"

    def __init__(
        self,
        pipe: Any,
        config: Config,
        *,
        safety: SafetyFilter | None,
        model_name: str,
        model_extra: dict[str, str] | None = None,
    ) -> None:
        self.pipe = pipe
        self.config = config
        self.safety = safety
        self.model_name = model_name
        self.model_extra = dict(model_extra or {})  # what the PNG parameters say of the model besides its name
        self.device = resolve_device(config.device)
        self.encoder = PromptEncoder.from_pipeline(pipe, max_chars=config.image.max_prompt_chars)
        self.lora_hashes: dict[str, str | None] = {}  # a named LoRA's weights hash, once per worker
        self.cache: ModelCache | None = None  # the base's model cache (adapters loaded on demand are kept there)
        self.steering: Any = None  # an ``ImageSteering`` for the calls inside ``steered_by``
        self.shared_attention: Image.Image | None = None  # the picture calls inside ``sharing_attention`` attend to

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None, *, checkpoint: str | None = None):
        """Load (or take from ``cache``) the base pipeline once; this object is then reused for every request.
        ``checkpoint``: one of the configured extra checkpoints, by name, instead of the base model."""
        task = cls.from_pipeline(load_sd_components(config, cache, checkpoint=checkpoint), config)
        task.cache = cache
        if checkpoint is not None:
            from storyloom.models.runtime.loading import checkpoint_source, weights_hash

            task.model_name = checkpoint
            found = weights_hash(checkpoint_source(config, checkpoint), length=10)
            task.model_extra = {"Model hash": found} if found else {}
        return task

    def drawing_loras(self, prompt: str) -> Any:
        """A context manager: the ``<lora:…>`` tags of ``prompt`` loaded for the calls inside; it gives the
        PNG parameters entry naming them (``Lora hashes``), and the base is exactly as before afterwards."""
        from storyloom.models.image.lora import named_loras_loaded

        return named_loras_loaded(self.pipe, self.config, prompt, self.lora_hashes)

    @classmethod
    def from_pipeline(cls, base: Any, config: Config):
        """Share ``base``'s weights; this pipeline gets its own scheduler state and no built-in safety checker."""
        import diffusers

        pipe = getattr(diffusers, cls.pipeline_class)(**task_components(base), requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return cls(
            pipe, config, safety=SafetyFilter.from_pipeline(base), model_name=model_display_name(config.models.image)
        )

    def _call_pipeline(
        self, seeds: list[int], prompt_embeds: Any, negative_embeds: Any, callback: Any, **task_arguments: Any
    ) -> list[Image.Image]:
        """The one place a diffusers pipeline runs: one image per seed, each from its own CPU generator; steered
        by pictures (IP-Adapter embeddings and region masks) inside ``steered_by``."""
        if self.steering is not None:
            image = task_arguments.get("image")
            width, height = image.size if image is not None else (task_arguments["width"], task_arguments["height"])
            guidance = task_arguments.get("guidance_scale", 0)
            task_arguments.update(self.steering.pipeline_arguments(guidance, width, height))
        output = self.pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            num_images_per_prompt=len(seeds),
            generator=cpu_generators(seeds),
            output_type="pil",
            callback_on_step_end=callback,
            **task_arguments,
        )
        return list(output.images)

    def _draw(
        self,
        seeds: list[int],
        conditioning: PromptConditioning,
        callback: Any,
        *,
        chaos: float = 0.0,
        tile: bool = False,
        **task_arguments: Any,
    ) -> list[Image.Image]:
        """``_call_pipeline`` following ``conditioning`` step by step (prompt editing, alternation, AND), with
        ``chaos`` (0–1) between the pictures and, with ``tile``, pictures that tile seamlessly."""
        from storyloom.models.image.consistent_attention import consistent_attention
        from storyloom.models.image.tiling import seamless

        prompt_embeds, negative_embeds = conditioning.initial()
        shared = self.shared_attention
        with (
            seamless(self.pipe.unet, self.pipe.vae, enabled=tile),
            conditioning.applied(self.pipe, callback, seeds=seeds, chaos=chaos) as (step_callback, tensor_inputs),
            # Inside the conditioning's hooks: the reference item joins the batch the UNet really runs.
            consistent_attention(self.pipe, shared) if shared is not None else contextlib.nullcontext(),
        ):
            return self._call_pipeline(
                seeds, prompt_embeds, negative_embeds, step_callback,
                callback_on_step_end_tensor_inputs=tensor_inputs, **task_arguments,
            )  # fmt: skip

    def using_lora(self, lora_file: Path, *, adapter_name: str, scale: float = 1.0) -> Any:
        """A context manager: calls inside it draw with the LoRA at ``lora_file`` (a character), and the shared
        base modules are exactly as before once it exits (see ``character_lora``)."""
        return self.using_loras([(lora_file, adapter_name)], scale=scale)

    def using_loras(self, loras: Sequence[tuple[Path, str]], *, scale: float = 1.0) -> Any:
        """``using_lora`` for several LoRAs at once (several characters): (file, adapter name) each."""
        from storyloom.models.image.lora import lora_loaded

        return lora_loaded(self.pipe, loras, scale=scale)

    @contextlib.contextmanager
    def sharing_attention(self, picture: Image.Image) -> Iterator[None]:
        """Calls inside the block share self-attention with ``picture`` (a story's consistent look, see
        ``consistent_attention``); outside it the plain pipeline runs, bit for bit."""
        previous, self.shared_attention = self.shared_attention, picture
        try:
            yield
        finally:
            self.shared_attention = previous

    def steered_by(self, steering: Any) -> Any:
        """A context manager: calls inside it are steered by ``steering`` (an ``ImageSteering``: IP-Adapters with
        their pictures), and the shared UNet is exactly as before once it exits."""
        from storyloom.models.image.image_prompt import steering_loaded

        return steering_loaded(self, steering)
