"""``/status`` (server managers): workers, their devices and warm models, and the queue's depth."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.bot.commands.cancel import is_manager
from storyloom.bot.errors import JobFailure
from storyloom.queue.job import JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot


class Status(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.default_permissions(manage_guild=True)
    async def status(self, interaction: discord.Interaction) -> None:
        """Workers, devices, loaded models and queue depth (server managers)."""
        if not is_manager(interaction):
            raise JobFailure("only server managers can see the bot's status")
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.store
        workers = await store.list_workers(stopped_within_seconds=600)
        positions = await store.positions()
        waiting = sum(1 for p in positions.values() if p.status is JobStatus.QUEUED)
        running = sum(1 for p in positions.values() if p.status is JobStatus.RUNNING)
        now = time.time()
        lines = [f"**Queue**: {waiting} waiting, {running} running"]
        trouble = self.bot.worker_health() if self.bot.worker_health else None
        if trouble:
            lines.append(f"⚠️ **Workers**: {trouble}")
        live = [w for w in workers if w.stopped_at is None]
        lines.append(
            f"**Workers**: {len(live)} running"
            + (f", {len(workers) - len(live)} stopped recently" if len(workers) > len(live) else "")
        )
        for worker in workers:
            state = "stopped" if worker.stopped_at else f"busy with job {worker.job_id}" if worker.job_id else "idle"
            models = ", ".join(worker.models) or "no models loaded yet"
            seen = texts.duration(max(0.0, now - worker.last_seen)) or "just now"
            lines.append(f"• `{worker.id}` on **{worker.device}** — {state}; {models}; seen {seen} ago")
        if not workers:
            lines.append("No worker has reported in: start one with `storyloom worker` (or `storyloom run`).")
        await interaction.followup.send(texts.fit("\n".join(lines)), ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Status(bot))
