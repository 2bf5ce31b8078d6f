"""❌ and ✉️ under a result: delete a result you asked for (people who may manage messages or the server: anyone's
in it), or get a copy in your direct messages.

Deleting removes the Discord message and what the store keeps of the job (its pictures and any picture it was
given); the job's row stays, so /queue and the job's number still make sense.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord

from storyloom.bot.actions import load_source
from storyloom.bot.attachments import DEFAULT_LIMIT, fit_image
from storyloom.bot.errors import JobFailure, report
from storyloom.errors import StoryloomError
from storyloom.queue.job import ArtifactKind, Job, JobKind

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

NOT_YOURS = "only the person who asked for this result, or someone who may manage messages here, can delete it"
DMS_CLOSED = "I cannot send you direct messages; allow direct messages from this server's members and try again"


def may_delete(interaction: discord.Interaction, job: Job) -> bool:
    """The requester always; in a server also whoever may manage its messages or the server itself."""
    if job.user_id == interaction.user.id:
        return True
    permissions = interaction.permissions
    return interaction.guild_id is not None and (permissions.manage_messages or permissions.manage_guild)


async def delete_result(interaction: discord.Interaction, job_id: int) -> None:
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        job = await load_source(interaction, job_id)
        if not may_delete(interaction, job):
            raise JobFailure(NOT_YOURS, job_id)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=job_id)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    if interaction.message is not None:
        try:
            await interaction.message.delete()
        except discord.NotFound:
            pass  # already gone: the store's part still goes
    await bot.store.delete_results(job_id)
    await interaction.followup.send(f"🗑️ deleted the result of job {job_id}", ephemeral=True)


async def send_copy(interaction: discord.Interaction, job_id: int) -> None:
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        job = await load_source(interaction, job_id)
        picture = await result_picture(bot, job)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=job_id)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    content = interaction.message.content if interaction.message is not None else f"job {job_id}"
    files = []
    if picture is not None:
        fitted = fit_image(picture[0], picture[1], DEFAULT_LIMIT)
        if fitted.fits:
            files.append(discord.File(io.BytesIO(fitted.data), fitted.filename))
    try:
        await interaction.user.send(content, files=files, allowed_mentions=discord.AllowedMentions.none())
    except discord.Forbidden:
        await interaction.followup.send(DMS_CLOSED, ephemeral=True)
        return
    await interaction.followup.send("✉️ sent to your direct messages", ephemeral=True)


async def result_picture(bot: StoryloomBot, job: Job) -> tuple[bytes, str] | None:
    """The picture a result shows (the grid, the upscaled picture, the described picture), as (bytes, file name)."""
    if job.kind is JobKind.DESCRIBE:
        given = await bot.store.job_inputs(job.id)
        return (given[0].data, given[0].name) if given else None
    grid = await bot.store.artifact(job.id, 0, ArtifactKind.GRID)
    found = grid or await bot.store.artifact(job.id, 0, ArtifactKind.IMAGE)
    if found is None:
        raise JobFailure("this result's picture is gone (deleted or expired)", job.id)
    return found.data, f"storyloom_{job.id}_{found.name}"
