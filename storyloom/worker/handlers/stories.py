"""story and story_page: one text job that writes and plans the book, then one job per page.

The story job's success enqueues its pages in the same transaction (as follow-ups), so a story is never
left without pages, and other users' jobs run between the pages.
"""

from __future__ import annotations

from typing import Any

from storyloom.domain.story.plan import PLAN_FILE
from storyloom.errors import InvalidInput
from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact, NewJob
from storyloom.queue.params import StoryPageParams, StoryParams
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import JSON, png_artifact, text_artifact


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.STORY: story, JobKind.STORY_PAGE: story_page}


def story(context: JobContext) -> HandlerResult:
    """Write (or continue) the story; result: the plan as ``story.json``; follow-ups: its new pages."""
    from storyloom.characters.registry import registry_lookup
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
    if params.character:
        characters(params.character)  # an unknown character fails before the language model loads
    pipeline = StoryPipeline(context.config, lm=context.resources.story_writer(), txt2img=None, characters=characters)
    if previous is None:
        plan = pipeline.write(
            params.summary, params.pages, params.style, params.character, params.seed,
            progress=context.progress, should_cancel=context.should_cancel,
        )  # fmt: skip
        first_new = 0
    else:
        before = StoryPlan.model_validate_json(previous.data)
        plan = pipeline.continue_story(
            before, params.summary, params.pages, progress=context.progress, should_cancel=context.should_cancel
        )
        first_new = len(before.pages)
    document = text_artifact(
        0, PLAN_FILE, plan.model_dump_json(indent=2), JSON, title=plan.title, pages=len(plan.pages)
    )
    pages = tuple(
        NewJob(JobKind.STORY_PAGE, _page_params(index, page, plan, params), page_index=index)
        for index, page in enumerate(plan.pages)
        if index >= first_new
    )
    return HandlerResult((document,), pages)


def _page_params(index: int, page: Any, plan: Any, story: StoryParams) -> dict[str, Any]:
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
    if plan.character:
        params["character"] = plan.character  # the page loads the character's LoRA; its prompt already has the token
    if story.narrate is not None:
        params["narrate"] = story.narrate.model_dump(exclude_none=True)
    return params


def story_page(context: JobContext) -> HandlerResult:
    """Illustrate one page with its planned prompt and seed (a redraw passes a new seed), with the story's
    character's LoRA loaded when it has one; drawn as the CLI draws a book's pages."""
    from storyloom.domain.seeds import random_seed
    from storyloom.domain.story.plan import PagePlan
    from storyloom.models.image.lora import drawing_with
    from storyloom.models.story.pipeline import draw_page

    params = context.params
    assert isinstance(params, StoryPageParams)
    record = context.lookup_character(params.character) if params.character else None
    number = params.plan.get("number", params.page + 1)
    page = PagePlan(
        number=number, chapter=params.plan.get("chapter", 1), text=params.text, scene=params.plan.get("scene", ""),
        prompt=params.prompt, negative_prompt=params.negative_prompt,
        seed=random_seed() if params.seed is None else params.seed,
    )  # fmt: skip
    txt2img = context.resources.txt2img()
    with drawing_with(txt2img, record, context.config.paths.data_dir) as character:
        drawn = draw_page(
            txt2img,
            page,
            safety_checker=params.safety_checker,
            progress=context.progress,
            should_cancel=context.should_cancel,
        )
    picture = png_artifact(
        ArtifactKind.IMAGE, 0, f"page_{number:03d}.png", drawn.image, character.named(drawn.parameters),
        seed=drawn.seed, nsfw=drawn.nsfw, page=params.page,
    )  # fmt: skip
    text = text_artifact(0, f"page_{number:03d}.txt", params.text, page=params.page)
    return HandlerResult((picture, text, *_page_narration(context, params, number)))


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
