"""imagine, vary and upscale: the Midjourney-style commands."""

from __future__ import annotations

from storyloom.queue.job import ArtifactKind
from storyloom.queue.params import ImagineParams, UpscaleParams, VaryParams
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import batch_artifacts, png_artifact
from storyloom.worker.handlers.characters import source_character


def imagine(context: JobContext) -> HandlerResult:
    """Four images; with ``character`` its LoRA is loaded for this job and its words go into the prompt."""
    from storyloom.models.image.lora import drawing_with

    params = context.params
    assert isinstance(params, ImagineParams)
    record = context.lookup_character(params.character) if params.character else None  # before any model loads
    txt2img = context.resources.txt2img()
    with drawing_with(txt2img, record, context.config.paths.data_dir) as character:
        batch = txt2img(
            character.prompt(params.prompt),
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
    return HandlerResult(batch_artifacts(character.tagged(batch)))


def vary(context: JobContext) -> HandlerResult:
    """Variations of image ``index`` of the parent job; its PNG parameters supply the prompt, and the character
    it was drawn with (if that character still exists)."""
    from storyloom.models.image.lora import drawing_with

    params = context.params
    assert isinstance(params, VaryParams)
    source = context.source_image()  # before loading any model: a vanished source fails at once
    record = source_character(context, source)
    variations = context.resources.variations()
    with drawing_with(variations, record, context.config.paths.data_dir) as character:
        batch = variations(
            source,
            strength=params.strength,
            seed=params.seed,
            safety_checker=params.safety_checker,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    return HandlerResult(batch_artifacts(character.tagged(batch)))


def upscale(context: JobContext) -> HandlerResult:
    """Image ``index`` of the parent job, upscaled; the 2× re-drawing uses the character the picture was drawn
    with (if that character still exists), and the result keeps its name for a later variation."""
    from storyloom.models.image.lora import drawing_with

    params = context.params
    assert isinstance(params, UpscaleParams)
    source = context.source_image()
    record = source_character(context, source)
    upscaler = context.resources.upscaler()
    with drawing_with(upscaler, record, context.config.paths.data_dir) as character:
        result = upscaler(
            source,
            mode=params.mode,
            seed=params.seed,
            progress=context.progress,
            should_cancel=context.should_cancel,
            safety_checker=params.safety_checker,
        )
    artifact = png_artifact(
        ArtifactKind.IMAGE,
        0,
        "upscaled.png",
        result.image,
        character.named(result.parameters),
        mode=result.mode,
        nsfw=result.nsfw,
        source_index=params.index,
    )
    return HandlerResult((artifact,))
