"""story and story_page: one text job that writes and plans the book, then one job per page.

The story job's success enqueues its pages in the same transaction (as follow-ups), so a story is never
left without pages, and other users' jobs run between the pages.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

from storyloom.domain.story.plan import PLAN_FILE
from storyloom.errors import InvalidInput
from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact, NewJob
from storyloom.queue.params import StoryPageParams, StoryParams
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import JSON, PNG, png_artifact, text_artifact

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.STORY: story, JobKind.STORY_PAGE: story_page}


def story(context: JobContext) -> HandlerResult:
    """Write (or continue) the story; results: the plan as ``story.json`` and, for a new story, the cast card (one
    portrait per character as IMAGE 0..n-1, the composed card as GRID 0); follow-ups: its new pages."""
    from storyloom.characters.registry import registry_lookup
    from storyloom.domain.story.checks import character_names
    from storyloom.domain.story.edits import edited_plan
    from storyloom.domain.story.plan import StoryPlan
    from storyloom.models.story.pipeline import StoryPipeline

    params = context.params
    assert isinstance(params, StoryParams)
    previous = None
    if params.continue_from is not None:  # checked before loading the language model
        previous = context.lookup_artifact(params.continue_from, 0, ArtifactKind.TEXT)
        if previous is None or previous.name != PLAN_FILE:
            raise InvalidInput(f"job {params.continue_from} has no story to continue")
    characters = registry_lookup(context.lookup_character)
    names = character_names(params.cast_names)
    for name in names:
        characters(name)  # an unknown character fails before the language model loads
    pipeline = StoryPipeline(context.config, lm=context.resources.story_writer(), txt2img=None, characters=characters)
    portraits: tuple[NewArtifact, ...] = ()
    if previous is None or params.continue_from is None:  # a new story
        plan = pipeline.write(
            params.summary, params.pages, params.style, names, params.seed,
            progress=context.progress, should_cancel=context.should_cancel,
        )  # fmt: skip
        first_new = 0
        portraits = _cast_card(context, plan, params)
        cast_job, cast_size = context.job.id, len(plan.cast) if portraits else 0
    else:
        versions = context.lookup_story(params.continue_from)  # the story as its readers left it
        before = edited_plan(StoryPlan.model_validate_json(previous.data), versions.title, versions.page_words)
        plan = pipeline.continue_story(
            before, params.summary, params.pages, progress=context.progress, should_cancel=context.should_cancel
        )
        first_new = len(before.pages)
        cast_job = int(previous.metadata.get("cast_job") or 0)
        cast_size = int(previous.metadata.get("cast_size") or 0)
    document = text_artifact(
        0, PLAN_FILE, plan.model_dump_json(indent=2), JSON,
        title=plan.title, pages=len(plan.pages), cast_job=cast_job, cast_size=cast_size,
    )  # fmt: skip
    reference = (cast_job, cast_size) if cast_job and cast_size else None
    pages = tuple(
        NewJob(JobKind.STORY_PAGE, _page_params(index, page, plan, params, reference), page_index=index)
        for index, page in enumerate(plan.pages)
        if index >= first_new
    )
    return HandlerResult((document, *portraits), pages)


def _cast_card(context: JobContext, plan: Any, params: StoryParams) -> tuple[NewArtifact, ...]:
    """One portrait per cast member, each drawn with its character's reference picture and LoRA when it is a
    registered one (a fixed seed per member), as IMAGE 0..n-1; and the card composed from them as GRID 0."""
    from dataclasses import replace

    from storyloom.domain.seeds import cast_seed
    from storyloom.domain.story.cast_card import CastPortrait, compose_cast_card
    from storyloom.domain.story.scenes import portrait_prompt
    from storyloom.domain.story.styles import get_style
    from storyloom.worker.handlers.characters import drawing_cast

    if not plan.cast:
        return ()
    style = get_style(plan.style)
    registered = {name.casefold() for name in plan.characters}
    txt2img = context.resources.txt2img()
    drawn: list[CastPortrait] = []
    artifacts: list[NewArtifact] = []
    for index, member in enumerate(plan.cast):
        context.check_canceled()
        record = context.lookup_character(member.name) if member.name.casefold() in registered else None
        stage = f"cast {index + 1}/{len(plan.cast)}"
        with drawing_cast(context, txt2img, [(record, "whole")] if record else []) as character:
            batch = txt2img(
                portrait_prompt(style, member), style.negative_prompt, seed=cast_seed(plan.base_seed, member.name),
                num_images=1, safety_checker=params.safety_checker, should_cancel=context.should_cancel,
                progress=lambda step, stage=stage: context.progress(replace(step, stage=stage)),
            )  # fmt: skip
        picture = batch.images[0]
        artifacts.append(
            png_artifact(
                ArtifactKind.IMAGE,
                index,
                f"cast_{index + 1:02d}.png",
                picture,
                character.named(batch.parameters[0]),
                seed=batch.seeds[0],
                nsfw=bool(batch.nsfw[0]),
                character=member.name,
                description=member.description,
            )  # fmt: skip
        )
        drawn.append(CastPortrait(member.name, member.description, picture))
    card = compose_cast_card(drawn)
    buffer = io.BytesIO()
    card.save(buffer, format="PNG")
    cast = [{"name": member.name, "description": member.description} for member in plan.cast]
    about = {
        "width": card.width,
        "height": card.height,
        "cast": cast,
        "nsfw": any(a.metadata["nsfw"] for a in artifacts),
    }
    return (NewArtifact(ArtifactKind.GRID, 0, "cast.png", PNG, buffer.getvalue(), about), *artifacts)


def _page_params(
    index: int, page: Any, plan: Any, story: StoryParams, reference: tuple[int, int] | None
) -> dict[str, Any]:
    """A page job's parameters: its words and seed, the registered characters on it with their places, the
    consistent-look option and the cast portrait it shares attention with (its main character's, else the first)."""
    params: dict[str, Any] = {
        "page": index,
        "text": page.text,
        "prompt": page.prompt,
        "negative_prompt": page.negative_prompt,
        "seed": page.seed,
        "plan": {"number": page.number, "chapter": page.chapter, "scene": page.scene, "language": plan.language},
    }
    if story.safety_checker is not None:
        params["safety_checker"] = story.safety_checker
    registered = {name.casefold() for name in (plan.characters or ([plan.character] if plan.character else []))}
    present = [name for name in page.characters if name.casefold() in registered]
    params["characters"] = [{"name": name, "position": page.positions.get(name, "whole")} for name in present]
    if story.consistent is not None:
        params["consistent"] = story.consistent
    if reference is not None:
        cast_job, cast_size = reference
        order = [member.name for member in plan.cast]
        main = next((order.index(name) for name in page.characters if name in order), 0)
        params["reference"] = {"job": cast_job, "index": main if main < cast_size else 0}
    if story.narrate is not None:
        params["narrate"] = story.narrate.model_dump(exclude_none=True)
    return params


def story_page(context: JobContext) -> HandlerResult:
    """Illustrate one page with its planned prompt and seed (a redraw passes a new seed), drawn as the CLI draws
    a book's pages, with the registered characters on it: their LoRAs, and their reference pictures each steering
    its place in the picture (the only one steers all of it); with the consistent look (``consistent``; None:
    where the memory budget allows) sharing self-attention with the story's reference picture."""
    from storyloom.domain.seeds import random_seed
    from storyloom.domain.story.plan import PagePlan
    from storyloom.models.story.pipeline import draw_page
    from storyloom.worker.handlers.characters import drawing_cast

    params = context.params
    assert isinstance(params, StoryPageParams)
    placed = [(context.lookup_character(c.name), c.position) for c in params.characters]
    if not placed and params.character:  # a page queued before pages named their characters
        placed = [(context.lookup_character(params.character), "whole")]
    shared = _shared_attention_picture(context, params)
    number = params.plan.get("number", params.page + 1)
    page = PagePlan(
        number=number, chapter=params.plan.get("chapter", 1), text=params.text, scene=params.plan.get("scene", ""),
        prompt=params.prompt, negative_prompt=params.negative_prompt,
        seed=random_seed() if params.seed is None else params.seed,
    )  # fmt: skip
    txt2img = context.resources.txt2img()
    with drawing_cast(context, txt2img, placed, shared_attention=shared) as character:
        drawn = draw_page(
            txt2img,
            page,
            safety_checker=params.safety_checker,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    picture = png_artifact(
        ArtifactKind.IMAGE, 0, f"page_{number:03d}.png", drawn.image, character.named(drawn.parameters),
        seed=drawn.seed, nsfw=drawn.nsfw, page=params.page, consistent=shared is not None,
    )  # fmt: skip
    text = text_artifact(0, f"page_{number:03d}.txt", params.text, page=params.page)
    return HandlerResult((picture, text, *_page_narration(context, params, number)))


def _shared_attention_picture(context: JobContext, params: StoryPageParams) -> Image.Image | None:
    """The story's picture the page shares self-attention with, when the page has one and the consistent look is
    on (asked for, or None and it fits this worker's memory budget); a picture gone since leaves the page plain."""
    if params.reference is None or params.consistent is False:
        return None
    if params.consistent is None and not context.resources.consistent_attention_fits():
        return None
    artifact = context.lookup_artifact(params.reference.job, params.reference.index, ArtifactKind.IMAGE)
    if artifact is None:
        logger.info("job %s: the story's reference picture is gone; drawing the page without it", context.job.id)
        return None
    from storyloom.domain.pictures import open_picture

    return open_picture(artifact.data, "the story's reference picture")


def _page_narration(context: JobContext, params: StoryPageParams, number: int) -> tuple[NewArtifact, ...]:
    """With ``narrate`` (``/story narrate:True``): the page read aloud in the story's language, as the 🔊
    button would read it; a language the voices cannot speak leaves a note instead of failing the page."""
    if params.narrate is None:
        return ()
    from storyloom.domain.narration import DEFAULT_SEED, choose_voice
    from storyloom.models.narration.cache import SpeechCache, read_page
    from storyloom.models.narration.media import OGG_MIME, encode_ogg_opus

    try:
        choice = choose_voice(
            context.config, params.narrate.voice, str(params.plan.get("language", "en")), params.narrate.speed
        )
    except InvalidInput as exc:
        return (text_artifact(1, "narration.txt", str(exc), page=params.page),)
    speech = read_page(
        context.resources.narrator(), SpeechCache.from_config(context.config), params.text, choice, DEFAULT_SEED
    )
    if speech is None:
        return ()  # an empty page has nothing to read
    data = encode_ogg_opus(speech, title=f"Page {number}")
    about = {"page": number, "seconds": round(speech.duration, 3), "voice": choice.voice, "language": choice.language}
    return (NewArtifact(ArtifactKind.FILE, 0, f"page-{number}.ogg", OGG_MIME, data, about),)
