"""``/blend``: two to five pictures mixed into a 2×2 grid (their IP-Adapter image embeddings averaged)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot.errors import report
from storyloom.bot.pictures import read_pictures
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request, submit
from storyloom.domain.prompts import validate_prompt
from storyloom.domain.seeds import MAX_SEED, check_seed
from storyloom.domain.sizes import parse_aspect_ratio
from storyloom.errors import StoryloomError
from storyloom.queue.job import JobKind
from storyloom.queue.params import BlendParams

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


class Blend(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(
        image1="the first picture",
        image2="the second picture",
        image3="a third picture (optional)",
        image4="a fourth picture (optional)",
        image5="a fifth picture (optional)",
        prompt="words to steer the mix (optional)",
        ar="aspect ratio such as 16:9, 2:3 or 1:1",
        seed="a number that makes the same pictures again",
    )
    async def blend(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment,
        image3: Optional[discord.Attachment] = None,
        image4: Optional[discord.Attachment] = None,
        image5: Optional[discord.Attachment] = None,
        prompt: Optional[str] = None,
        ar: Optional[str] = None,
        seed: Optional[app_commands.Range[int, 0, MAX_SEED]] = None,
    ) -> None:
        """Mix two to five pictures into four new ones."""
        bot = self.bot
        attachments = [a for a in (image1, image2, image3, image4, image5) if a is not None]
        try:
            prompt = (prompt or "").strip()
            if prompt:
                validate_prompt(prompt, max_chars=bot.config.image.max_prompt_chars)
                bot.banned.ensure_allowed(prompt)
            if ar is not None and ar.strip():
                parse_aspect_ratio(ar)
            check_seed(seed)
            params = BlendParams(
                prompt=prompt,
                seed=seed,
                aspect_ratio=ar.strip() if ar and ar.strip() else None,
                safety_checker=safety_checker_for(interaction.channel),
            )
            pictures = await read_pictures(attachments)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        async with bot.in_flight():
            await interaction.response.defer(thinking=True)
            head = f"🌀 blending {len(pictures)} pictures" + (f": **{prompt[:100]}**" if prompt else "")
            thread = f"blend of {len(pictures)} pictures" if bot.config.bot.results_in_thread else ""
            await submit(bot, interaction, Request(JobKind.BLEND, params, head, thread, inputs=pictures))


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Blend(bot))
