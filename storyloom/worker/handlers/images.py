"""imagine, vary and upscale: the Midjourney-style commands."""

from __future__ import annotations

from storyloom.queue.job import ArtifactKind
from storyloom.queue.params import ImagineParams, UpscaleParams, VaryParams
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import batch_artifacts, png_artifact


def imagine(context: JobContext) -> HandlerResult:
    params = context.params
    assert isinstance(params, ImagineParams)
    batch = context.resources.txt2img()(
        params.prompt,
        params.negative_prompt,
        num_inference_steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        width=params.width,
        height=params.height,
        aspect_ratio=params.aspect_ratio,
        seed=params.seed,
        num_images=params.num_images,
        safety_checker=params.safety_checker,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    return HandlerResult(batch_artifacts(batch))


def vary(context: JobContext) -> HandlerResult:
    """Variations of image ``index`` of the parent job; its PNG parameters supply the prompt."""
    params = context.params
    assert isinstance(params, VaryParams)
    source = context.source_image()  # before loading any model: a vanished source fails at once
    batch = context.resources.variations()(
        source,
        strength=params.strength,
        seed=params.seed,
        safety_checker=params.safety_checker,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    return HandlerResult(batch_artifacts(batch))


def upscale(context: JobContext) -> HandlerResult:
    params = context.params
    assert isinstance(params, UpscaleParams)
    source = context.source_image()
    result = context.resources.upscaler()(
        source,
        mode=params.mode,
        seed=params.seed,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    artifact = png_artifact(
        ArtifactKind.IMAGE, 0, "upscaled.png", result.image, result.parameters, mode=result.mode, nsfw=result.nsfw,
        source_index=params.index,
    )
    return HandlerResult((artifact,))
