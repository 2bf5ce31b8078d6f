"""``/cancel [job]``: stop one of your jobs (by default the newest); server managers may stop anyone's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot.errors import JobFailure
from storyloom.queue.job import Job, JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


def is_manager(interaction: discord.Interaction) -> bool:
    """Server managers (Manage Server) of the guild the interaction comes from."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def may_cancel(interaction: discord.Interaction, job: Job) -> bool:
    return job.user_id == interaction.user.id or (is_manager(interaction) and job.guild_id == interaction.guild_id)


class Cancel(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(job="the job number (default: your newest job that is not finished)")
    async def cancel(self, interaction: discord.Interaction, job: Optional[app_commands.Range[int, 1]] = None) -> None:
        """Cancel one of your jobs."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.store
        if job is None:
            mine = await store.list_jobs((JobStatus.QUEUED, JobStatus.RUNNING), user_id=interaction.user.id, limit=1)
            if not mine:
                await interaction.followup.send("You have nothing queued or running to cancel.", ephemeral=True)
                return
            target = mine[0]
        else:
            target = await store.get(job)
        if not may_cancel(interaction, target):
            raise JobFailure("this job belongs to someone else; only server managers can cancel it", target.id)
        result = await store.cancel(target.id)
        if result.status is JobStatus.RUNNING:
            text = f"🛑 Asked job {target.id} to stop; it ends at its next step."
        else:
            text = f"🛑 Canceled job {target.id}."
        await interaction.followup.send(text, ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Cancel(bot))
