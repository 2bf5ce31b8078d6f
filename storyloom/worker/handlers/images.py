"""imagine, vary and upscale: the Midjourney-style commands."""

from __future__ import annotations

from storyloom.queue.job import ArtifactKind
from storyloom.queue.params import ImagineParams, UpscaleParams, VaryParams
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import batch_artifacts, png_artifact
from storyloom.worker.handlers.characters import character_prompt, drawing_with, named, source_character, tagged


def imagine(context: JobContext) -> HandlerResult:
    """Four images; with ``character`` its LoRA is loaded for this job and its words go into the prompt."""
    params = context.params
    assert isinstance(params, ImagineParams)
    record = context.character(params.character) if params.character else None  # before any model loads
    txt2img = context.resources.txt2img()
    with drawing_with(context, txt2img, record):
        batch = txt2img(
            character_prompt(params.prompt, record),
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
    return HandlerResult(batch_artifacts(tagged(batch, record)))


def vary(context: JobContext) -> HandlerResult:
    """Variations of image ``index`` of the parent job; its PNG parameters supply the prompt, and the character
    it was drawn with (if that character still exists)."""
    params = context.params
    assert isinstance(params, VaryParams)
    source = context.source_image()  # before loading any model: a vanished source fails at once
    record = source_character(context, source)
    variations = context.resources.variations()
    with drawing_with(context, variations, record):
        batch = variations(
            source,
            strength=params.strength,
            seed=params.seed,
            safety_checker=params.safety_checker,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    return HandlerResult(batch_artifacts(tagged(batch, record)))


def upscale(context: JobContext) -> HandlerResult:
    """Image ``index`` of the parent job, upscaled; the 2× re-drawing uses the character the picture was drawn
    with (if that character still exists), and the result keeps its name for a later variation."""
    params = context.params
    assert isinstance(params, UpscaleParams)
    source = context.source_image()
    record = source_character(context, source)
    upscaler = context.resources.upscaler()
    with drawing_with(context, upscaler, record):
        result = upscaler(
            source,
            mode=params.mode,
            seed=params.seed,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    artifact = png_artifact(
        ArtifactKind.IMAGE,
        0,
        "upscaled.png",
        result.image,
        named(result.parameters, record),
        mode=result.mode,
        nsfw=result.nsfw,
        source_index=params.index,
    )
    return HandlerResult((artifact,))
