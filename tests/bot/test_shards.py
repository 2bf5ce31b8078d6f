"""Several bot processes on one store: each connects its own shards and delivers only the results of guilds on
them (direct messages: shard 0), so no result is posted twice, and one of them registers the slash commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storyloom.queue.async_store import AsyncJobStore
from tests.support.bot import bot_config, fast_worker, messages_of_job, open_store, start_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.jobs import wait_delivered

SHARDS = 2


def shard_of(guild_id: int) -> int:
    return (guild_id >> 22) % SHARDS


async def guild_on_other_shard(fake: FakeDiscord):
    """A second guild whose ID puts it on the shard the main guild is not on."""
    while True:
        guild = fake.add_guild("Other server")
        if shard_of(guild.id) != shard_of(fake.guild.id):
            return guild
        await asyncio.sleep(0.003)  # snowflakes of the next millisecond


def general(fake: FakeDiscord, guild):
    return next(c for c in fake.state.channels.values() if c.guild_id == guild.id and c.name == "general")


async def imagine_in(store: AsyncJobStore, fake: FakeDiscord, guild) -> int:
    job = await store.enqueue(
        "imagine", {"prompt": "a cat"}, user_id=fake.member.id, guild_id=guild.id, channel_id=general(fake, guild).id
    )
    return job.id


async def test_each_guilds_results_come_from_its_shards_process_only(fake: FakeDiscord, tmp_path: Path) -> None:
    other = await guild_on_other_shard(fake)
    guilds = {shard_of(fake.guild.id): fake.guild, shard_of(other.id): other}
    configs = {
        shard: bot_config(tmp_path, shard_count=SHARDS, shard_ids=[shard], results_in_thread=False)
        for shard in range(SHARDS)
    }
    store = await open_store(configs[0])
    first = await start_bot(configs[0], await open_store(configs[0]), fake)  # shard 0's process only, for now
    second = None
    try:
        async with fast_worker(store):
            jobs = {shard: await imagine_in(store, fake, guild) for shard, guild in guilds.items()}
            await wait_delivered(store, jobs[0])
            await asyncio.sleep(0.5)  # several delivery rounds of shard 0's process
            assert await store.delivered_messages(jobs[1]) is None  # not shard 0's guild: it waits for its process

            second = await start_bot(configs[1], await open_store(configs[1]), fake)
            await wait_delivered(store, jobs[1])
            for shard, guild in guilds.items():
                assert len(messages_of_job(fake, general(fake, guild), jobs[shard])) == 1
        assert fake.state.commands.sync_count == {None: 1}  # registered once, by shard 0's process
    finally:
        for running in (first, second):
            if running is not None:
                await running.stop()
                await running.bot.store.close()
        await store.close()
