"""``/imagine``: four pictures from a prompt, as a 2×2 grid with U1–U4, V1–V4 and 🔄."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.bot.characters import character_names
from storyloom.bot.errors import report
from storyloom.bot.pictures import read_pictures
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request, submit
from storyloom.bot.validation import STEPS_MAX, STEPS_MIN, imagine_jobs
from storyloom.domain.pictures import start_strength
from storyloom.domain.seeds import MAX_SEED
from storyloom.errors import InvalidInput, QueueFull, StoryloomError
from storyloom.queue.job import JobKind, JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


async def model_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete: the extra checkpoints the server's config names."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    found = [name for name in sorted(bot.config.models.checkpoints) if current.casefold() in name.casefold()]
    return [app_commands.Choice(name=name, value=name) for name in found[:25]]


class Imagine(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(
        prompt="what to draw: (word:1.3), [a:b:0.5], a AND b, {red, blue}; flags at the end: --ar 16:9 --no text",
        negative="what to keep out of the pictures",
        ar="aspect ratio such as 16:9, 2:3 or 1:1",
        seed="a number that makes the same pictures again",
        steps="denoising steps: more is slower and often finer",
        character="a character to draw, trained or from a picture (see /character list)",
        image="a picture that guides what is drawn and how",
        image_weight="how much the picture counts, 0 to 1 (default 0.5)",
        image_as="guide: the picture steers content and style; start: drawing starts from the picture",
        model="another image model the server offers (<lora:name:0.8> in the prompt adds a LoRA)",
    )
    @app_commands.autocomplete(character=character_names, model=model_names)
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        negative: Optional[str] = None,
        ar: Optional[str] = None,
        seed: Optional[app_commands.Range[int, 0, MAX_SEED]] = None,
        steps: Optional[app_commands.Range[int, STEPS_MIN, STEPS_MAX]] = None,
        character: Optional[str] = None,
        image: Optional[discord.Attachment] = None,
        image_weight: Optional[app_commands.Range[float, 0.0, 1.0]] = None,
        image_as: Optional[Literal["guide", "start"]] = None,
        model: Optional[str] = None,
    ) -> None:
        """Draw four pictures from a prompt."""
        bot = self.bot
        try:  # pure checks first, so a refusal is private and nothing is queued
            jobs = imagine_jobs(
                bot.config, bot.banned, prompt=prompt, negative=negative, aspect_ratio=ar, seed=seed, steps=steps,
                safety_checker=safety_checker_for(interaction.channel), character=character, model=model,
            )  # fmt: skip
            if character is not None:  # a character unknown here: the message lists the known ones
                found = await bot.store.character(jobs[0].character or character, guild_id=interaction.guild_id)
                jobs = [job.model_copy(update={"character": found.name}) for job in jobs]
            if image is None and (image_weight is not None or image_as is not None):
                raise InvalidInput("image_weight and image_as need a picture: attach one as image")
            pictures = await read_pictures([image]) if image is not None else ()
            if pictures:
                if image_as == "start" and any(job.chaos or job.tile for job in jobs):
                    raise InvalidInput("--chaos and --tile work when the picture guides, not with image_as start")
                if image_as == "start":  # a weight so high that no denoising step would be left
                    weight = bot.config.image.image_weight if image_weight is None else image_weight
                    for job in jobs:
                        start_strength(weight, job.num_inference_steps or bot.config.image.steps)
                update = {"image_mode": image_as or "guide", "image_weight": image_weight}
                jobs = [job.model_copy(update=update) for job in jobs]
            if len(jobs) > 1:  # several jobs: all of them fit under the user's cap, or none is queued
                await check_room(bot, interaction.user.id, len(jobs))
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        async with bot.in_flight():  # a shutdown lets an accepted request finish queueing
            await interaction.response.defer(thinking=True)
            defaults = await bot.settings.get(interaction.user.id)
            for params in jobs:
                changes = {}
                if negative is None and defaults.negative_prompt:
                    changes["negative_prompt"] = ", ".join(
                        filter(None, [defaults.negative_prompt, params.negative_prompt])
                    )
                if params.aspect_ratio is None and defaults.aspect_ratio:
                    changes["aspect_ratio"] = defaults.aspect_ratio
                if changes:
                    params = params.model_copy(update=changes)
                thread = texts.shorten(params.prompt, 90) if bot.config.bot.results_in_thread else ""
                head = f"🎨 **{texts.quote(params.prompt, 120)}**" + (" with your picture" if pictures else "")
                if (
                    await submit(bot, interaction, Request(JobKind.IMAGINE, params, head, thread, inputs=pictures))
                    is None
                ):
                    break  # refused (the cap filled meanwhile): the user has been told


async def check_room(bot: StoryloomBot, user_id: int, count: int) -> None:
    """``QueueFull`` unless ``count`` more jobs fit under the user's cap of waiting jobs."""
    cap = bot.config.queue.max_waiting_per_user
    waiting = len(await bot.store.list_jobs([JobStatus.QUEUED], user_id=user_id, limit=cap + 1))
    if waiting + count > cap:
        raise QueueFull(
            f"this prompt makes {count} jobs and you have {waiting} waiting; the limit is {cap} waiting at once"
        )


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Imagine(bot))
