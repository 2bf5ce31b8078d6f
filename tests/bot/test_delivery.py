"""Delivery against the fake Discord: failures of one destination never hold up another, refusals end with a
record and a notice, temporary failures back off and give up, and a resumed delivery posts nothing twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storyloom.bot import results
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


async def test_a_403_ends_the_delivery_and_tells_the_user_by_direct_message(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        fake.fail_next("POST", f"/channels/{fake.no_threads_channel.id}/messages", status=403, code=50013, times=20)
        job = await finished_job(store, fake, fake.member, fake.no_threads_channel)
        [record] = await wait_ended(store, [job.id])
    assert record.outcome is DeliveryOutcome.REFUSED and "HTTP 403 (code 50013)" in record.reason
    assert "told by direct message" in record.reason
    [notice] = fake.messages_in(fake.dm_with(fake.member))
    assert f"job {job.id}" in notice.content and "not allowed to post there" in notice.content
    assert record.message_ids == (notice.id,)
    assert len(posts_to(fake, fake.no_threads_channel)) == 1  # refused once, never asked again


async def test_a_failing_destination_backs_off_gives_up_and_never_holds_up_another(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    thread = fake.state.create_thread(fake.text_channel.id, fake.member, "down for now")
    async with running_bot(bot_config(tmp_path), store, fake) as bot:
        bot.delivery.policy = FAST_RETRIES
        fake.fail_next("POST", f"/channels/{thread.id}/messages", status=503, times=100)
        failing = await finished_job(store, fake, fake.member, fake.text_channel, thread)
        other = await finished_job(store, fake, fake.owner, fake.no_threads_channel)
        await wait_delivered(store, other.id, timeout=5)
        [record] = await wait_ended(store, [failing.id])
    assert record.outcome is DeliveryOutcome.GAVE_UP and record.failures == FAST_RETRIES.max_tries
    assert "gave up after 3 tries" in record.reason and "HTTP 503" in record.reason
    tries = posts_to(fake, thread)
    assert len(tries) == FAST_RETRIES.max_tries + 1  # three tries, then the notice tried there first
    gaps = [later.at - earlier.at for earlier, later in zip(tries, tries[1:])]
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9, gaps  # a doubling back-off, capped at 0.4 s
    [notice] = [m for m in fake.messages_in(fake.text_channel) if f"job {failing.id}" in m.content]
    assert "could not be posted" in notice.content and f"<@{fake.member.id}>" in notice.content


async def test_a_resumed_delivery_recognises_the_book_and_posts_nothing_twice(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    """A crash after posting a story's last page and its book, once Discord's nonce window has passed."""
    channel = fake.no_threads_channel
    async with running_bot(bot_config(tmp_path), store, fake) as bot:
        bot.delivery.stop()  # deliver by hand below
        await fake.wait_for(lambda: bot._loops[0].done(), timeout=5)
        worker = FastWorker(store)
        story = await store.enqueue(
            JobKind.STORY, {"summary": "a cat"}, user_id=fake.member.id, guild_id=fake.guild.id, channel_id=channel.id
        )
        claimed = await store.claim("fast/1", [JobKind.STORY.value])
        artifacts, followups = worker.results(claimed)
        await store.complete(story.id, "fast/1", artifacts, followups[:1])
        assert await bot.delivery.deliver(await store.get(story.id))
        page = await store.claim("fast/1", [JobKind.STORY_PAGE.value])
        await store.complete(page.id, "fast/1", worker.results(page)[0])
        page = await store.get(page.id)

        intent = await store.begin_delivery(page.id)
        outcome = await results.prepare(bot, page)
        assert len(outcome.posts) == 2 and outcome.posts[1].filename.endswith(".pdf")  # the page, then the book
        target = bot.get_partial_messageable(channel.id)
        earlier = [await target.send(post.content, nonce=f"lost{i}") for i, post in enumerate(outcome.posts)]
        assert intent is not None and not intent.resumed
        before = len(fake.messages_in(channel))

        assert await bot.delivery.deliver(page)
        assert len(fake.messages_in(channel)) == before  # neither the page nor the book again
        assert await store.delivered_messages(page.id) == tuple(m.id for m in earlier)
