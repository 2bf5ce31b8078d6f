"""``/describe``: four prompt suggestions for a picture, each with a button that draws it with /imagine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot.errors import report
from storyloom.bot.pictures import read_pictures
from storyloom.bot.submit import Request, submit
from storyloom.errors import StoryloomError
from storyloom.queue.job import JobKind
from storyloom.queue.params import DescribeParams

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


class Describe(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(image="the picture to describe")
    async def describe(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        """Four prompts that could have made a picture."""
        bot = self.bot
        try:
            pictures = await read_pictures([image])
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        async with bot.in_flight():
            await interaction.response.defer(thinking=True)
            head = f"🔎 describing {discord.utils.escape_markdown(image.filename)}"
            await submit(bot, interaction, Request(JobKind.DESCRIBE, DescribeParams(), head, inputs=pictures))


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Describe(bot))
