"""``/story``: a children's story written, split into pages and illustrated, in a thread named after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.bot.characters import character_names
from storyloom.bot.errors import report
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request, submit
from storyloom.bot.validation import story_params
from storyloom.domain.narration import check_voice
from storyloom.domain.story.checks import MAX_PAGES
from storyloom.domain.story.styles import style_presets
from storyloom.errors import StoryloomError
from storyloom.queue.job import JobKind
from storyloom.queue.params import NarrationChoice

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


async def voice_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    found = [name for name in sorted(bot.config.narration.voices) if current.lower() in name.lower()]
    return [app_commands.Choice(name=name, value=name) for name in found[:25]]


async def style_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    found = [name for name in style_presets() if current.lower() in name.lower()]
    return [app_commands.Choice(name=name, value=name) for name in found[:25]]


class Story(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(
        summary="what the story is about, in a sentence or two",
        pages="how many illustrated pages",
        style="illustration style (watercolor, crayon, storybook, …)",
        character="a registered character to star in it",
        character2="a second character in the story",
        character3="a third character in the story",
        consistent="keep one look across the pages (default: on where the server can afford it)",
        narrate="read every page aloud as it arrives",
        voice="the narration voice (default: yours from /settings)",
    )
    @app_commands.autocomplete(
        style=style_names,
        character=character_names,
        character2=character_names,
        character3=character_names,
        voice=voice_names,
    )
    async def story(
        self,
        interaction: discord.Interaction,
        summary: str,
        pages: Optional[app_commands.Range[int, 1, MAX_PAGES]] = None,
        style: Optional[str] = None,
        character: Optional[str] = None,
        character2: Optional[str] = None,
        character3: Optional[str] = None,
        consistent: Optional[bool] = None,
        narrate: bool = False,
        voice: Optional[str] = None,
    ) -> None:
        """Write and illustrate a children's story."""
        bot = self.bot
        try:
            params = story_params(
                bot.config,
                bot.story_screen,
                summary=summary,
                pages=pages,
                style=style,
                characters=[character, character2, character3],
                consistent=consistent,
                safety_checker=safety_checker_for(interaction.channel),
            )
            found = []
            for name in params.characters:  # a character unknown here: the message lists the known ones
                found.append((await bot.store.character(name, guild_id=interaction.guild_id)).name)
            params = params.model_copy(update={"characters": found})
            if voice is not None:
                voice = check_voice(bot.config, voice)  # an unknown voice: the message lists the voices
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        async with bot.in_flight():  # a shutdown lets an accepted request finish queueing
            await interaction.response.defer(thinking=True)
            if style is None:
                defaults = await bot.settings.get(interaction.user.id)
                if defaults.style:
                    params = params.model_copy(update={"style": defaults.style})
            if narrate:
                mine = await bot.settings.get(interaction.user.id)
                chosen = NarrationChoice(voice=voice or check_voice(bot.config, mine.voice or None), speed=mine.pace)
                params = params.model_copy(update={"narrate": chosen})
            head = f"📖 *{texts.quote(params.summary, 120)}*"
            await submit(
                bot,
                interaction,
                Request(JobKind.STORY, params, head, thread_name=f"📖 {texts.shorten(params.summary, 90)}"),
            )


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Story(bot))
