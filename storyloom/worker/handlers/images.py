"""imagine, vary, upscale, blend and describe: the Midjourney-style commands."""

from __future__ import annotations

import json

from storyloom.queue.character import CharacterRecord
from storyloom.queue.job import ArtifactKind
from storyloom.queue.params import BlendParams, DescribeParams, ImagineParams, UpscaleParams, VaryParams
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import JSON, batch_artifacts, png_artifact, text_artifact
from storyloom.worker.handlers.characters import drawing_cast, source_characters, source_model


def _alone(record: CharacterRecord | None) -> list[tuple[CharacterRecord, str]]:
    """A picture's one character, if any, steering the whole picture (its reference picture, its LoRA)."""
    return [] if record is None else [(record, "whole")]


def imagine(context: JobContext) -> HandlerResult:
    """Four images; with ``character`` its LoRA is loaded for this job and its words go into the prompt, and its
    reference picture, if it has one, steers them (IP-Adapter). With a picture (``image_mode``) the picture
    steers them too (IP-Adapter) or is where they start from (img2img)."""
    params = context.params
    assert isinstance(params, ImagineParams)
    record = context.lookup_character(params.character) if params.character else None  # before any model loads
    if params.image_mode is not None:
        return _imagine_from_picture(context, params, record)
    txt2img = context.resources.txt2img(params.model)
    with drawing_cast(context, txt2img, _alone(record)) as character:
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
            chaos=params.chaos,
            tile=params.tile,
        )
    return HandlerResult(batch_artifacts(character.tagged(batch)))


def _imagine_from_picture(context: JobContext, params: ImagineParams, record: CharacterRecord | None) -> HandlerResult:
    picture = context.input_pictures()[0]  # before any model loads: a missing or bad picture fails at once
    if params.image_mode == "start":
        from storyloom.domain.pictures import start_strength

        weight = context.config.image.image_weight if params.image_weight is None else params.image_weight
        steps = context.config.image.steps if params.num_inference_steps is None else params.num_inference_steps
        variations = context.resources.variations(params.model)
        with drawing_cast(context, variations, _alone(record)) as character:
            batch = variations(
                picture,
                character.prompt(params.prompt),
                params.negative_prompt,
                strength=start_strength(weight, steps),
                num_inference_steps=params.num_inference_steps,
                guidance_scale=params.guidance_scale,
                seed=params.seed,
                num_images=params.num_images,
                safety_checker=params.safety_checker,
                progress=context.progress,
                should_cancel=context.should_cancel,
            )
        return HandlerResult(batch_artifacts(character.tagged(batch)))
    image_prompt = context.resources.image_prompt(params.model)
    with drawing_cast(context, image_prompt, _alone(record)) as character:
        batch = image_prompt(
            character.prompt(params.prompt),
            params.negative_prompt,
            pictures=[picture],
            image_weight=params.image_weight,
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
            chaos=params.chaos,
            tile=params.tile,
        )
    return HandlerResult(batch_artifacts(character.tagged(batch)))


def blend(context: JobContext) -> HandlerResult:
    """Four images mixing the job's pictures: their image embeddings averaged, through the IP-Adapter."""
    from storyloom.models.image.image_prompt import DEFAULT_BLEND_PROMPT

    params = context.params
    assert isinstance(params, BlendParams)
    pictures = context.input_pictures()
    image_prompt = context.resources.image_prompt()
    batch = image_prompt(
        params.prompt or DEFAULT_BLEND_PROMPT,
        params.negative_prompt,
        pictures=pictures,
        image_weight=1.0 if params.image_weight is None else params.image_weight,
        aspect_ratio=params.aspect_ratio,
        seed=params.seed,
        safety_checker=params.safety_checker,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    return HandlerResult(batch_artifacts(batch))


def describe(context: JobContext) -> HandlerResult:
    """Prompt suggestions for the job's picture, as ``describe.json`` (caption, prompts best first, scores)."""
    params = context.params
    assert isinstance(params, DescribeParams)
    picture = context.input_pictures()[0]
    description = context.resources.describer()(
        picture, params.count, progress=context.progress, should_cancel=context.should_cancel
    )
    text = json.dumps(description.as_dict(), ensure_ascii=False)
    return HandlerResult((text_artifact(0, "describe.json", text, JSON),))


def vary(context: JobContext) -> HandlerResult:
    """Variations of image ``index`` of the parent job; its PNG parameters supply the prompt, and the character
    it was drawn with (if that character still exists: its LoRA and its reference picture)."""
    params = context.params
    assert isinstance(params, VaryParams)
    source = context.source_image()  # before loading any model: a vanished source fails at once
    placed = source_characters(context, source)
    variations = context.resources.variations(source_model(context, source))
    with drawing_cast(context, variations, placed) as character:
        batch = variations(
            source,
            params.prompt,
            params.negative_prompt,
            strength=params.strength,
            seed=params.seed,
            safety_checker=params.safety_checker,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    return HandlerResult(batch_artifacts(character.tagged(batch)))


def upscale(context: JobContext) -> HandlerResult:
    """Image ``index`` of the parent job, upscaled; the 2× re-drawing uses the character the picture was drawn
    with (if that character still exists: its LoRA and its reference picture), and the result keeps its name for
    a later variation."""
    params = context.params
    assert isinstance(params, UpscaleParams)
    source = context.source_image()
    placed = source_characters(context, source)
    redraws = (params.mode or context.config.upscale.mode) == "chain"  # only the chain re-draws with a model
    upscaler = context.resources.upscaler(source_model(context, source) if redraws else None)
    with drawing_cast(context, upscaler, placed) as character:
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
