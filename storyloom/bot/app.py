"""The bot process: a ``commands.Bot`` that receives its resources, loads its commands and starts its loops.

Built like discord.py's ``examples/advanced_startup.py``: the config and the open job store are handed in, and
``setup_hook`` loads one extension per command, registers the restart-proof buttons, starts the delivery and
progress loops, and syncs the slash commands (to ``bot.dev_guild`` when set, for instant updates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import discord
from discord.ext import commands

from storyloom.bot.attachments import SizeLimits
from storyloom.bot.book import Books
from storyloom.bot.buttons import ALL_BUTTONS
from storyloom.bot.delivery import DeliveryLoop
from storyloom.bot.errors import StoryloomTree
from storyloom.bot.live_status import ProgressLoop, StatusBoard
from storyloom.bot.maintenance import MaintenanceLoop
from storyloom.bot.safety import BannedWords, story_screen
from storyloom.bot.stories import Stories
from storyloom.bot.user_settings import UserSettings
from storyloom.config import Config, is_postgres_url
from storyloom.queue.async_store import AsyncJobStore

logger = logging.getLogger(__name__)

LOOP_STOP_SECONDS = 30.0
IN_FLIGHT_SECONDS = 15.0

EXTENSIONS = (
    "storyloom.bot.commands.imagine",
    "storyloom.bot.commands.blend",
    "storyloom.bot.commands.describe",
    "storyloom.bot.commands.story",
    "storyloom.bot.commands.queue",
    "storyloom.bot.commands.cancel",
    "storyloom.bot.commands.settings",
    "storyloom.bot.commands.help",
    "storyloom.bot.commands.status",
    "storyloom.bot.commands.character",
)


def default_intents() -> discord.Intents:
    """Slash commands and buttons need no privileged intents; guilds are enough to see channels and threads."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class StoryloomBot(commands.Bot):
    def __init__(
        self,
        config: Config,
        store: AsyncJobStore,
        *,
        sync_commands: bool = True,
        worker_health: Callable[[], str | None] | None = None,
        **options: Any,
    ) -> None:
        """``worker_health`` says what is wrong with the workers run beside the bot (``storyloom run``), if
        anything; ``/status`` shows it."""
        options.setdefault("intents", default_intents())
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        options.setdefault("max_messages", None)  # the bot never reads message history from its cache
        options.setdefault("chunk_guilds_at_startup", False)
        options.setdefault("member_cache_flags", discord.MemberCacheFlags.none())
        super().__init__(command_prefix=commands.when_mentioned, tree_cls=StoryloomTree, help_command=None, **options)
        self.config = config
        self.store = store
        self.sync_commands = sync_commands
        self.worker_health = worker_health
        self.limits = SizeLimits()
        self.banned = BannedWords(config.bot.banned_words)
        self.story_screen = story_screen(config.bot.banned_words)
        self.stories = Stories(store)
        self.books = Books(self.stories)
        self.settings = UserSettings(store)
        interval = config.bot.progress_edit_interval
        self.board = StatusBoard(self, interval)
        self.delivery = DeliveryLoop(self, config.bot.delivery_poll_interval)
        self.progress = ProgressLoop(self, poll=min(1.0, max(0.1, interval / 4)))
        sqlite_file = None if is_postgres_url(config.database) else config.database_path
        self.maintenance = MaintenanceLoop(store, config.queue, database_file=sqlite_file)
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def in_flight(self) -> AsyncIterator[None]:
        """Marks work that must not be cut off by a shutdown (queueing a job and giving it its place)."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            await self.load_extension(name)
        self.add_dynamic_items(*ALL_BUTTONS)
        self._loops = [
            asyncio.create_task(self.delivery.run(), name="storyloom-delivery"),
            asyncio.create_task(self.progress.run(), name="storyloom-progress"),
            asyncio.create_task(self.maintenance.run(), name="storyloom-maintenance"),
        ]
        if self.sync_commands and self.registers_commands:
            await self._sync()

    @property
    def registers_commands(self) -> bool:
        """Slash commands are registered once for the whole bot: by the process that runs shard 0 (or the only one)."""
        shards = self.config.bot.shards
        return not shards or 0 in shards

    async def _sync(self) -> None:
        guild_id = self.config.bot.dev_guild
        if guild_id:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            logger.info("synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            logger.info("synced %d global commands (they can take a while to appear)", len(synced))

    async def on_ready(self) -> None:
        logger.info(
            "connected as %s (id %s) to %d guild(s)", self.user, self.user.id if self.user else "?", len(self.guilds)
        )

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Every interaction tells the upload limit of where it came from; delivery uses the latest one.
        self.limits.learn(interaction.guild_id, interaction.channel_id, interaction.filesize_limit)

    async def close(self) -> None:
        # Requests being queued finish first: a job must not be left without its status message and thread.
        try:
            await asyncio.wait_for(self._idle.wait(), IN_FLIGHT_SECONDS)
        except TimeoutError:
            logger.warning("stopping with %d request(s) still being queued", self._in_flight)
        # Let the loops finish the round in hand: cancelling one halfway through a store call could leave the
        # store's connection inside a transaction.
        self.delivery.stop()
        self.progress.stop()
        self.maintenance.stop()
        if self._loops:
            _, late = await asyncio.wait(self._loops, timeout=LOOP_STOP_SECONDS)
            for task in late:
                logger.warning("%s did not stop in time; cancelling it", task.get_name())
                task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
            self._loops = []
        await self.board.close()
        await super().close()


class ShardedStoryloomBot(StoryloomBot, commands.AutoShardedBot):
    """The bot on several gateway shards in one process (``bot.shard_count``, ``bot.shard_ids``). Other processes
    run the other shards; each delivers only the results of its own shards' guilds (see ``DeliveryLoop``)."""

    def __init__(self, config: Config, store: AsyncJobStore, **options: Any) -> None:
        options.setdefault("shard_count", config.bot.shard_count)
        options.setdefault("shard_ids", list(config.bot.shards))
        super().__init__(config, store, **options)


def make_bot(config: Config, store: AsyncJobStore, **options: Any) -> StoryloomBot:
    """The bot for ``config``: sharded when ``bot.shard_count`` is set."""
    if config.bot.shard_count:
        return ShardedStoryloomBot(config, store, **options)
    return StoryloomBot(config, store, **options)


async def run_bot(config: Config, token: str, *, stop: asyncio.Event | None = None, **options: Any) -> None:
    """Open the store, run the bot until it is closed (or ``stop`` is set), then close the store."""
    store = await AsyncJobStore.from_config(config)
    try:
        async with make_bot(config, store, **options) as bot:
            runner = asyncio.create_task(bot.start(token))
            waiters: set[asyncio.Task[Any]] = {runner}
            if stop is not None:
                waiters.add(asyncio.create_task(stop.wait()))
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                if task is not runner:
                    task.cancel()
            await bot.close()
            if runner in done:
                runner.result()
            else:
                await asyncio.gather(runner, return_exceptions=True)
    finally:
        await store.close()
