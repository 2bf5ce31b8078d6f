"""Delivery against the fake Discord: failures of one destination never hold up another, refusals end with a
record and a notice, temporary failures back off and give up, and a resumed delivery posts nothing twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storyloom.bot.delivery import RetryPolicy
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import DeliveryOutcome, DeliveryRecord, Job, JobKind
from tests.support.bot import FastWorker, bot_config, job_of, running_bot
from tests.support.fakediscord import FakeChannel, FakeDiscord, FakeUser
from tests.support.jobs import wait_delivered

FAST_RETRIES = RetryPolicy(first_delay=0.2, max_delay=0.4, max_tries=3)


async def finished_job(
    store: AsyncJobStore, fake: FakeDiscord, user: FakeUser, channel: FakeChannel, thread: FakeChannel | None = None
) -> Job:
    """An /imagine job finished by the stand-in worker, aimed at ``thread`` (or at ``channel`` itself)."""
    job = await store.enqueue(
        JobKind.IMAGINE, {"prompt": "a fox"}, user_id=user.id, guild_id=channel.guild_id, channel_id=channel.id,
        thread_id=thread.id if thread else None, enforce_caps=False,
    )  # fmt: skip
    worker = FastWorker(store)
    claimed = await store.claim("fast/1", [JobKind.IMAGINE.value])
    assert claimed is not None and claimed.id == job.id
    artifacts, _ = worker.results(claimed)
    await store.complete(job.id, "fast/1", artifacts)
    return await store.get(job.id)


def locked_thread(fake: FakeDiscord, name: str = "closed by a moderator") -> FakeChannel:
    thread = fake.state.create_thread(fake.text_channel.id, fake.member, name)
    thread.archived = thread.locked = True
    return thread


def posts_to(fake: FakeDiscord, channel: FakeChannel) -> list:
    return fake.calls.filter("POST", f"/channels/{channel.id}/messages")


async def test_archived_thread_does_not_block_newer_results(fake: FakeDiscord, store, tmp_path: Path) -> None:
    thread = locked_thread(fake)
    stuck = [await finished_job(store, fake, fake.member, fake.text_channel, thread) for _ in range(50)]
    victim = await finished_job(store, fake, fake.owner, fake.no_threads_channel)

    async with running_bot(bot_config(tmp_path), store, fake):
        grid = await fake.wait_for_message(fake.no_threads_channel, lambda m: job_of(m) == victim.id, timeout=10)
        assert grid.attachments and await wait_delivered(store, victim.id) == (grid.id,)
        await wait_ended(store, [job.id for job in stuck])

    refused = [await store.delivery_record(job.id) for job in stuck]
    assert {r.outcome for r in refused} == {DeliveryOutcome.REFUSED}
    assert all("code 50083" in r.reason for r in refused), refused[0].reason
    assert len(posts_to(fake, thread)) <= 2  # asked once; the refusal is remembered for the rest
    assert thread.archived and not [m for m in fake.messages_in(thread) if m.attachments]
    # One notice where the request came from, naming the user and why; not fifty.
    [notice] = [m for m in fake.messages_in(fake.text_channel) if "could not be posted" in m.content]
    assert f"<@{fake.member.id}>" in notice.content and "archived or locked" in notice.content
    assert f"told in channel {fake.text_channel.id}" in refused[0].reason and refused[0].message_ids == (notice.id,)


async def wait_ended(store: AsyncJobStore, job_ids: list[int], timeout: float = 10.0) -> list[DeliveryRecord]:
    """The delivery records of ``job_ids`` once every one of them has ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = [await store.delivery_record(job_id) for job_id in job_ids]
        if all(r is not None and r.ended_at is not None for r in records):
            return records
        if loop.time() > deadline:
            raise TimeoutError(f"{sum(r is None or r.ended_at is None for r in records)} deliveries still open")
        await asyncio.sleep(0.05)
