"""``/queue``: the user's own jobs, where they stand and roughly when they will be done."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.queue.job import JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

SHOWN = 15


class Queue(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue")
    async def show_queue(self, interaction: discord.Interaction) -> None:
        """Your jobs: their place in the queue and when they should be done."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.store
        mine = await store.list_jobs((JobStatus.QUEUED, JobStatus.RUNNING), user_id=interaction.user.id, limit=SHOWN)
        everyone = await store.positions()
        waiting = sum(1 for p in everyone.values() if p.status is JobStatus.QUEUED)
        running = sum(1 for p in everyone.values() if p.status is JobStatus.RUNNING)
        overall = f"-# {waiting} waiting and {running} running in total"
        if not mine:
            await interaction.followup.send(f"You have nothing queued or running.\n{overall}", ephemeral=True)
            return
        lines = []
        for job in reversed(mine):  # oldest first, like the queue
            position = everyone.get(job.id)
            eta = texts.duration(position.eta_seconds) if position else ""
            done = f" · done in {eta}" if eta else ""
            lines.append(f"`{job.id}` {texts.headline(job)} — {texts.progress_text(job, position)}{done}")
        await interaction.followup.send(texts.fit("\n".join([*lines, overall])), ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Queue(bot))
