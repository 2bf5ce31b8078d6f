"""Where results go: a thread started from the request, or in place (and why).

Threads keep a busy channel readable, so results go into a thread started from the status message when
that is possible. In DMs, inside a thread, or where the bot may not create threads, the results are posted
in the same channel and the status message says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

import discord

from storyloom.bot.texts import thread_name

logger = logging.getLogger(__name__)

THREAD_TYPES = (discord.ChannelType.public_thread, discord.ChannelType.private_thread, discord.ChannelType.news_thread)
ALREADY_HAS_THREAD = 160004
ARCHIVE_MINUTES: Final = 1440

NO_THREADS_IN_DMS = "direct messages have no threads, so results are posted here"
NO_THREADS_ALLOWED = "threads are not allowed in this channel, so results are posted here"


@dataclass(frozen=True)
class ThreadResult:
    thread_id: int | None
    note: str = ""


def in_thread(interaction: discord.Interaction) -> bool:
    channel = interaction.channel
    return isinstance(channel, discord.Thread) or getattr(channel, "type", None) in THREAD_TYPES


def in_dm(interaction: discord.Interaction) -> bool:
    return interaction.guild_id is None


class _HasMessages(Protocol):
    def get_partial_message(self, message_id: int, /) -> discord.PartialMessage: ...


def _messages_of(channel: object) -> _HasMessages | None:
    """The channel if messages can be looked up in it (not a forum, category or group DM)."""
    if channel is not None and hasattr(channel, "get_partial_message"):
        return channel
    return None


async def open_thread(interaction: discord.Interaction, status: discord.Message, name: str) -> ThreadResult:
    """A public thread started from ``status`` (same ID as the message), or why there is none."""
    if in_dm(interaction):
        return ThreadResult(None, NO_THREADS_IN_DMS)
    if in_thread(interaction):
        return ThreadResult(None)  # already in a thread: answer right here
    channel: _HasMessages = _messages_of(interaction.channel) or interaction.client.get_partial_messageable(
        status.channel.id, guild_id=interaction.guild_id
    )
    starter = channel.get_partial_message(status.id)  # carries the guild, which a webhook message may not
    try:
        thread = await starter.create_thread(name=thread_name(name), auto_archive_duration=ARCHIVE_MINUTES)
    except discord.Forbidden:
        return ThreadResult(None, NO_THREADS_ALLOWED)
    except discord.HTTPException as exc:
        if exc.code == ALREADY_HAS_THREAD:  # a retry after a crash: Discord gives a message's thread its ID
            return ThreadResult(status.id)
        logger.warning("could not open a thread in channel %s (%s %s)", interaction.channel_id, exc.status, exc.code)
        return ThreadResult(None, "no thread could be opened here, so results are posted here")
    except ValueError:  # the message carries no guild information
        return ThreadResult(None, NO_THREADS_ALLOWED)
    return ThreadResult(thread.id)


def in_place_note(interaction: discord.Interaction) -> str:
    """Why results are posted in place when no thread was even tried."""
    return NO_THREADS_IN_DMS if in_dm(interaction) else ""
