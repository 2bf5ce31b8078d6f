"""What pressing a result button does: a new job made from the job the button belongs to.

Anyone in the server may press any button; the new job belongs to whoever pressed it. The button's custom ID
carries only the source job's ID and an image number; everything else (prompt, parameters) is read from the
store, so a button works the same after a restart. Results appear in the channel or thread where the button was.

A custom ID is only a number a client sends, so every button and form checks that the job it names belongs
where it is pressed (``load_source``): the same server, or in direct messages the same user's own job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from storyloom.bot.errors import JobFailure, report
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request, submit
from storyloom.bot.texts import quote
from storyloom.bot.validation import imagine_params
from storyloom.domain.regions import fitted_source
from storyloom.domain.seeds import random_seed
from storyloom.domain.sizes import MAX_UPSCALE_SOURCE_SIDE, MIN_UPSCALE_SOURCE_SIDE, fits_upscale
from storyloom.errors import StoryloomError
from storyloom.queue import JobNotFound
from storyloom.queue.job import ArtifactKind, Job, JobKind
from storyloom.queue.params import (
    BlendParams,
    ImagineParams,
    OutpaintParams,
    StoryPageParams,
    UpscaleParams,
    VaryParams,
)

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.bot.remix import Prompts

MakeRequest = Callable[[Job, discord.Interaction], Request]


async def press(interaction: discord.Interaction, source_id: int, make: MakeRequest) -> Job | None:
    """Read and check the source job, build the request (a refusal is one private line), then acknowledge and
    queue it."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    async with bot.in_flight():  # a shutdown lets an accepted press finish queueing
        try:
            source = await load_source(interaction, source_id)
            request = make(source, interaction)
            if isinstance(request.params, UpscaleParams):
                await check_upscale_fits(bot, source, request.params)
            if isinstance(request.params, OutpaintParams):
                await check_growth_fits(bot, source, request.params)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=source_id)
            return None
        await interaction.response.defer(thinking=True)
        return await submit(bot, interaction, request)


async def load_source(interaction: discord.Interaction, source_id: int) -> Job:
    """The job a button or form names, if it belongs where it is pressed: a job of this server, or in direct
    messages one of the presser's own. Anything else is refused the same way, so nothing is learned of it."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        source = await bot.store.get(source_id)
    except JobNotFound:
        source = None
    if interaction.guild_id is not None:
        if source is None or source.guild_id != interaction.guild_id:
            raise JobFailure("that job is not one of this server's; buttons work where their results were posted")
    elif source is None or source.guild_id is not None or source.user_id != interaction.user.id:
        raise JobFailure("that job is not one of yours; in direct messages buttons work on your own results")
    return source


async def check_upscale_fits(bot: StoryloomBot, source: Job, params: UpscaleParams) -> None:
    """Refuse before queueing an upscale of a picture too large (or small) for its mode, which would only fail."""
    mode = params.mode or bot.config.upscale.mode
    picture = await bot.store.artifact(source.id, params.index, ArtifactKind.IMAGE)
    if picture is None:
        return  # the worker says what is missing
    width, height = int(picture.metadata.get("width", 0)), int(picture.metadata.get("height", 0))
    if width and height and not fits_upscale(width, height, mode):
        raise JobFailure(
            f"image {params.index + 1} is {width}×{height} pixels; {upscale_label(mode)} takes "
            f"{MIN_UPSCALE_SOURCE_SIDE} to {MAX_UPSCALE_SOURCE_SIDE[mode]} pixels on each side",
            source.id,
        )


async def check_growth_fits(bot: StoryloomBot, source: Job, params: OutpaintParams) -> None:
    """Refuse before queueing a Zoom Out or Pan whose picture would be larger than ``[inpaint]`` allows even grown
    from a scaled-down copy (the bot's growths all ask for one)."""
    picture = await bot.store.artifact(source.id, params.index, ArtifactKind.IMAGE)
    if picture is None:
        return  # the worker says what is missing
    width, height = int(picture.metadata.get("width", 0)), int(picture.metadata.get("height", 0))
    if width and height:
        limits = bot.config.inpaint
        fitted_source(
            (width, height), zoom=params.zoom, pan=params.pan,
            max_side=limits.max_result_side, max_pixels=limits.max_result_pixels,
        )  # fmt: skip


def upscale_label(mode: str | None) -> str:
    return "4× Real-ESRGAN" if mode == "esrgan" else "upscaling"


def upscale(index: int, mode: str | None = None) -> MakeRequest:
    def make(source: Job, interaction: discord.Interaction) -> Request:
        label = upscale_label(mode)
        return Request(
            JobKind.UPSCALE,
            UpscaleParams(index=index, mode=mode, safety_checker=safety_checker_for(interaction.channel)),
            f"⬆️ {label} image {index + 1} of job {source.id}",
            parent_id=source.id,
        )

    return make


def vary(index: int, strength: str) -> Callable[[Job, discord.Interaction, Prompts | None], Request]:
    """Variations of image ``index``; with ``remix`` prompts (the Remix form) instead of the picture's own."""

    def make(source: Job, interaction: discord.Interaction, remix: Prompts | None = None) -> Request:
        prompts = {}
        if remix is not None and remix.prompt:  # a form left without words keeps the picture's own
            prompts = {"prompt": remix.prompt, "negative_prompt": remix.negative_prompt}
        safety = safety_checker_for(interaction.channel)
        params = VaryParams(index=index, strength=strength, safety_checker=safety, **prompts)
        head = f"🎲 {strength} variations of image {index + 1} of job {source.id}"
        return Request(JobKind.VARY, params, head, parent_id=source.id)

    return make


def reroll(source: Job, interaction: discord.Interaction, remix: Prompts | None = None) -> Request:
    """Same request (and pictures), new seeds; with ``remix`` prompts from the Remix form instead."""
    safety = safety_checker_for(interaction.channel)
    changes: dict[str, object] = {"seed": None, "safety_checker": safety}
    if remix is not None:
        changes |= {"prompt": remix.prompt, "negative_prompt": remix.negative_prompt}
    if source.kind is JobKind.IMAGINE:
        params = ImagineParams.model_validate({**source.params, **changes})
        return Request(JobKind.IMAGINE, params, f"🔄 {_prompt_head(params.prompt)}", inputs_of=source.id)
    if source.kind is JobKind.BLEND:
        blended = BlendParams.model_validate({**source.params, **changes})
        return Request(JobKind.BLEND, blended, f"🔄 blend of job {source.id}", inputs_of=source.id)
    if source.kind is JobKind.VARY:
        varied = VaryParams.model_validate({**source.params, **changes})
        return Request(JobKind.VARY, varied, f"🔄 variations of job {source.parent_id}", parent_id=source.parent_id)
    raise JobFailure("only picture grids can be re-rolled", source.id)


async def imagine_suggestion(interaction: discord.Interaction, describe_id: int, index: int) -> Job | None:
    """/imagine on suggestion ``index`` of a /describe result."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        source = await load_source(interaction, describe_id)
        prompt = (await described_prompts(bot, source))[index]
        params = imagine_params(
            bot.config, bot.banned, prompt=prompt, safety_checker=safety_checker_for(interaction.channel)
        )
    except IndexError:
        await report(interaction, JobFailure(f"there is no suggestion {index + 1}", describe_id), job_id=describe_id)
        return None
    except StoryloomError as exc:
        await report(interaction, exc, job_id=describe_id)
        return None
    request = Request(JobKind.IMAGINE, params, f"🎨 {_prompt_head(params.prompt)}")
    return await press(interaction, describe_id, lambda source, pressed: request)


async def described_prompts(bot: StoryloomBot, job: Job) -> list[str]:
    """The prompt suggestions of a /describe job, best first (``describe.json``)."""
    if job.kind is not JobKind.DESCRIBE:
        raise JobFailure("that is not a /describe result", job.id)
    found = await bot.store.artifact(job.id, 0, ArtifactKind.TEXT)
    if found is None:
        raise JobFailure("the suggestions of this /describe are gone (deleted or expired)", job.id)
    try:
        prompts = json.loads(found.data.decode("utf-8"))["prompts"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise JobFailure("the suggestions of this /describe cannot be read", job.id) from None
    return [str(prompt) for prompt in prompts]


def redraw(source: Job, interaction: discord.Interaction) -> Request:
    """The same page of the same story with a new seed."""
    if source.kind is not JobKind.STORY_PAGE or source.parent_id is None:
        raise JobFailure("only story pages can be redrawn", source.id)
    params = StoryPageParams.model_validate(
        {
            **source.params,
            "seed": random_seed(),
            "safety_checker": safety_checker_for(interaction.channel),
        }
    )
    return Request(JobKind.STORY_PAGE, params, f"🔁 redrawing page {params.page + 1}", parent_id=source.parent_id)


def _prompt_head(prompt: str) -> str:
    return f"**{quote(prompt, 120)}**"
