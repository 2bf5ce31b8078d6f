"""How deliveries end and wait: back-off after temporary failures, refusals, and one destination never
crowding out another in the listing."""

from __future__ import annotations

import pytest

from storyloom.config import QueueConfig
from storyloom.queue import AsyncJobStore, JobKind, JobStore, NewJob
from storyloom.queue.job import DeliveryOutcome
from tests.support.clock import Clock

KINDS = [kind.value for kind in JobKind]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bot_store(database: str, clock: Clock):
    settings = QueueConfig(max_waiting_per_user=1000, max_waiting_total=5000)
    async with await AsyncJobStore.open(database, settings, clock=clock) as store:
        yield store


@pytest.fixture
def worker_store(database: str, bot_store: AsyncJobStore):
    with JobStore.open(database) as store:
        yield store


async def finished_job(bot_store: AsyncJobStore, worker: JobStore, channel: int, followups=()) -> int:
    job = await bot_store.enqueue("imagine", {"prompt": "x"}, user_id=1, channel_id=channel)
    claimed = worker.claim("w", KINDS)
    assert claimed is not None and claimed.id == job.id
    worker.complete(job.id, "w", (), followups)
    return job.id


async def test_a_postponed_delivery_waits_out_a_doubling_capped_back_off(
    bot_store: AsyncJobStore, worker_store: JobStore, clock: Clock
) -> None:
    job_id = await finished_job(bot_store, worker_store, channel=10)
    waits = []
    for _ in range(5):
        assert [j.id for j in await bot_store.list_undelivered()] == [job_id]
        await bot_store.begin_delivery(job_id)
        record = await bot_store.postpone_delivery(job_id, "HTTP 503 (code 0)", first_delay=2.0, max_delay=10.0)
        waits.append(record.next_try_at - clock())
        assert await bot_store.list_undelivered() == []  # held back until the back-off ends
        clock.now += waits[-1] - 0.01
        assert await bot_store.list_undelivered() == []
        clock.now += 0.01
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert (record.failures, record.outcome, record.reason) == (5, None, "HTTP 503 (code 0)")
    longer = await bot_store.postpone_delivery(job_id, "rate limited", first_delay=2.0, max_delay=10.0, not_before=30)
    assert longer.next_try_at - clock() == 30.0  # a rate limit's own wait wins


async def test_an_ended_delivery_is_never_listed_again_and_keeps_its_reason(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    job_id = await finished_job(bot_store, worker_store, channel=10)
    await bot_store.begin_delivery(job_id)
    reason = "HTTP 400 (code 50083): Thread is archived; the user was told in channel 10"
    record = await bot_store.end_delivery(job_id, DeliveryOutcome.REFUSED, reason, [4242])
    assert (record.outcome, record.reason, record.message_ids) == (DeliveryOutcome.REFUSED, reason, (4242,))
    assert record.ended_at is not None and record.next_try_at is None
    assert await bot_store.list_undelivered() == []
    assert await bot_store.begin_delivery(job_id) is None
    assert await bot_store.record_delivery(job_id, [1]) is False  # the ending stays as it was
    assert await bot_store.delivered_messages(job_id) is None  # nothing of the results was posted
    assert (await bot_store.delivery_record(job_id)).outcome is DeliveryOutcome.REFUSED


async def test_a_story_whose_delivery_was_refused_still_lets_its_pages_through(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    page = NewJob(JobKind.STORY_PAGE, {"page": 0, "text": "page 1", "prompt": "scene"}, page_index=0)
    story = await bot_store.enqueue("story", {"summary": "a fox"}, user_id=1, channel_id=10, thread_id=11)
    worker_store.claim("w", KINDS)
    worker_store.complete(story.id, "w", (), [page])
    [child] = await bot_store.children(story.id)
    worker_store.claim("w", KINDS)
    worker_store.complete(child.id, "w")
    assert [j.id for j in await bot_store.list_undelivered()] == [story.id]
    await bot_store.begin_delivery(story.id)
    await bot_store.end_delivery(story.id, DeliveryOutcome.REFUSED, "HTTP 403 (code 50013)")
    assert [j.id for j in await bot_store.list_undelivered()] == [child.id]  # it ends too, rather than wait forever


async def test_one_destination_with_a_backlog_does_not_crowd_out_a_newer_one(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    backlog = [await finished_job(bot_store, worker_store, channel=10) for _ in range(60)]
    newer = await finished_job(bot_store, worker_store, channel=20)
    listed = [j.id for j in await bot_store.list_undelivered(50, per_destination=5)]
    assert listed == [*backlog[:5], newer]
    assert [j.id for j in await bot_store.list_undelivered(3, per_destination=5)] == backlog[:3]  # oldest first
