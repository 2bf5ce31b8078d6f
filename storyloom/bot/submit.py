"""Queueing a request from an interaction: enqueue, post the status message, open a thread, record where.

The interaction has already been deferred (public "thinking…"), so the first followup fills that placeholder
and becomes the status message. The job is enqueued with the channel it came from, so even if the bot dies
before the status message and thread exist its results still reach that channel; ``set_destination`` then
adds the status message and thread. Everything later goes
through the bot token by channel ID, so nothing depends on the 15-minute interaction token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from storyloom.bot import places, texts
from storyloom.bot.errors import user_line
from storyloom.errors import StoryloomError
from storyloom.queue.job import Job, JobInput, JobKind
from storyloom.queue.params import JobParams

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    kind: JobKind
    params: JobParams
    head: str  # what the status message calls it
    thread_name: str = ""  # start a thread for the results, named this (empty: results in place)
    parent_id: int | None = None
    inputs: tuple[JobInput, ...] = ()  # pictures given with the request, stored with the job
    inputs_of: int | None = None  # or: the same pictures as this job (a re-roll)


async def submit(bot: StoryloomBot, interaction: discord.Interaction, request: Request) -> Job | None:
    """Queue ``request`` for the user who interacted; returns the job, or None after telling them why not."""
    async with bot.in_flight():  # a shutdown waits for this, so no job is left without a place
        return await _submit(bot, interaction, request)


async def _submit(bot: StoryloomBot, interaction: discord.Interaction, request: Request) -> Job | None:
    store = bot.store
    try:
        inputs = request.inputs
        if not inputs and request.inputs_of is not None:
            inputs = tuple(await store.job_inputs(request.inputs_of))
        job = await store.enqueue(
            request.kind, request.params, user_id=interaction.user.id, guild_id=interaction.guild_id,
            channel_id=interaction.channel_id, parent_id=request.parent_id, inputs=inputs,
        )  # fmt: skip
    except StoryloomError as exc:
        # Private where the placeholder was already used (training); filling a public "thinking…" keeps it public.
        await interaction.followup.send(user_line(exc), ephemeral=True)
        return None
    try:
        position = (await store.positions([job.id])).get(job.id)
        upfront = places.in_place_note(interaction)  # known before posting (a DM): shown at once
        content = texts.status_line(request.head, job, position, upfront)
        status = await interaction.followup.send(content, wait=True, allowed_mentions=discord.AllowedMentions.none())
        channel_id = interaction.channel_id or status.channel.id
        if request.thread_name and not upfront:
            opened = await places.open_thread(interaction, status, request.thread_name)
        else:
            opened = places.ThreadResult(None, upfront)
        # A note learned only now (threads refused) appears with the next progress edit, within the rate limit.
        bot.board.created(channel_id, status.id, content, opened.note)
        await store.set_destination(job.id, channel_id=channel_id, thread_id=opened.thread_id, message_id=status.id)
        # A job that finished before its thread existed handed its destination to its follow-ups (a story's
        # pages) without the thread; give them the thread too. Later follow-ups inherit it from the job itself.
        for child in await store.children(job.id):
            if child.channel_id is None or (opened.thread_id is not None and child.thread_id is None):
                await store.set_destination(child.id, channel_id=channel_id, thread_id=opened.thread_id)
    except BaseException:
        # Nobody will ever see this job's results: do not spend a worker on it.
        logger.warning("job %s could not be given a place in Discord; canceling it", job.id)
        try:
            await store.cancel(job.id)
        except StoryloomError:
            pass
        raise
    logger.info("job %s (%s) queued for user %s", job.id, job.kind, interaction.user.id)
    return job
