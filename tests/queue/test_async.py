"""The bot's side of the store (aiosqlite, psycopg's async pool): same operations, delivery protocol, page order, restarts."""

from __future__ import annotations

import asyncio

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput, QueueFull
from storyloom.queue import (
    ArtifactKind,
    AsyncJobStore,
    InvalidTransition,
    JobKind,
    JobStatus,
    JobStore,
    NewArtifact,
    NewJob,
)
from storyloom.queue.job import JobError

KINDS = [kind.value for kind in JobKind]
CHANNEL = 555


@pytest.fixture
async def bot_store(database: str):
    async with await AsyncJobStore.open(database, QueueConfig(max_waiting_per_user=100)) as store:
        yield store


@pytest.fixture
def worker_store(database: str, bot_store: AsyncJobStore):
    with JobStore.open(database) as store:
        yield store


def run_next(worker: JobStore, artifacts=(), followups=()) -> int:
    job = worker.claim("w", KINDS)
    assert job is not None
    worker.complete(job.id, "w", artifacts, followups)
    return job.id


async def test_the_bot_enqueues_and_reads_what_a_worker_produced(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    job = await bot_store.enqueue("imagine", {"prompt": "a fox", "seed": 3}, user_id=1, channel_id=CHANNEL)
    await bot_store.set_destination(job.id, message_id=77)
    assert (await bot_store.get(job.id)).message_id == 77
    claimed = worker_store.claim("w", KINDS)
    worker_store.report_progress(claimed.id, "w", 3, 10, stage="txt2img", preview=b"\xff\xd8jpeg")
    running = await bot_store.get(job.id)
    assert (running.progress.step, running.progress.total, running.has_preview) == (3, 10, True)
    assert await bot_store.preview(job.id) == b"\xff\xd8jpeg"
    worker_store.complete(job.id, "w", [NewArtifact(ArtifactKind.GRID, 0, "grid.png", "image/png", b"png")])
    done = await bot_store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and not done.has_preview
    assert [a.name for a in await bot_store.artifacts(job.id)] == ["grid.png"]


async def test_validation_and_caps_on_the_bot_side(database: str) -> None:
    async with await AsyncJobStore.open(database, QueueConfig(max_waiting_per_user=1)) as store:
        with pytest.raises(InvalidInput, match="unknown job kind"):
            await store.enqueue("dream", {"prompt": "x"}, user_id=1)
        with pytest.raises(InvalidInput, match="negative_prompt"):
            await store.enqueue("imagine", {"prompt": "x", "negative_prompt": 5}, user_id=1)
        await store.enqueue("imagine", {"prompt": "x"}, user_id=1)
        with pytest.raises(QueueFull, match="limit is 1"):
            await store.enqueue("imagine", {"prompt": "y"}, user_id=1)


async def test_concurrent_coroutines_share_one_store_safely(bot_store: AsyncJobStore) -> None:
    jobs = await asyncio.gather(*(bot_store.enqueue("imagine", {"prompt": f"p{i}"}, user_id=i % 7) for i in range(60)))
    assert len({job.id for job in jobs}) == 60
    positions = await bot_store.positions()
    assert sorted(p.position for p in positions.values()) == list(range(1, 61))


async def test_delivery_is_recorded_once_and_a_resumed_delivery_keeps_its_nonce(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    job = await bot_store.enqueue("imagine", {"prompt": "a fox"}, user_id=1, channel_id=CHANNEL)
    with pytest.raises(InvalidTransition, match="only finished jobs"):
        await bot_store.begin_delivery(job.id)
    run_next(worker_store)
    assert [j.id for j in await bot_store.list_undelivered()] == [job.id]

    intent = await bot_store.begin_delivery(job.id)
    assert not intent.resumed and len(intent.nonce) <= 25
    # The bot dies after posting, before marking. After the restart the job is still listed...
    assert [j.id for j in await bot_store.list_undelivered()] == [job.id]
    again = await bot_store.begin_delivery(job.id)
    # ... and the bot learns an earlier try may have posted, with the same nonce to look for.
    assert again.resumed and again.nonce == intent.nonce
    assert await bot_store.record_delivery(job.id, [1001]) is True
    assert await bot_store.record_delivery(job.id, [2002]) is False
    assert await bot_store.delivered_messages(job.id) == (1001,)
    assert await bot_store.is_delivered(job.id)
    assert await bot_store.begin_delivery(job.id) is None
    assert await bot_store.list_undelivered() == []


async def test_failed_and_canceled_jobs_are_delivered_too_and_jobs_without_a_channel_never(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    failed = await bot_store.enqueue("imagine", {"prompt": "x"}, user_id=1, channel_id=CHANNEL)
    canceled = await bot_store.enqueue("imagine", {"prompt": "y"}, user_id=2, channel_id=CHANNEL)
    await bot_store.enqueue("imagine", {"prompt": "from the CLI"}, user_id=3)
    claimed = worker_store.claim("w", KINDS)
    worker_store.fail(claimed.id, "w", JobError("out of memory"))
    await bot_store.cancel(canceled.id)
    run_next(worker_store)
    listed = await bot_store.list_undelivered()
    assert [(j.id, j.status) for j in listed] == [(failed.id, JobStatus.FAILED), (canceled.id, JobStatus.CANCELED)]
    assert listed[0].error.message == "out of memory"


def page(index: int) -> NewJob:
    return NewJob(JobKind.STORY_PAGE, {"page": index, "text": f"page {index + 1}", "prompt": "scene"}, page_index=index)


async def test_pages_are_delivered_in_page_order_after_their_story(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    story = await bot_store.enqueue("story", {"summary": "a fox at sea"}, user_id=1, channel_id=CHANNEL)
    run_next(worker_store, followups=[page(0), page(1), page(2)])
    pages = {p.page_index: p.id for p in await bot_store.children(story.id)}

    # Two workers finish pages 2 and 0 before page 1; nothing is listed before the story itself is delivered.
    claims = {worker_store.claim(f"w{i}", KINDS).page_index: f"w{i}" for i in range(3)}
    worker_store.complete(pages[2], claims[2])
    worker_store.complete(pages[0], claims[0])
    assert [j.id for j in await bot_store.list_undelivered()] == [story.id]
    await bot_store.record_delivery(story.id, [1])

    # Page 0 may go; page 2 waits for page 1, which is still running.
    assert [j.id for j in await bot_store.list_undelivered()] == [pages[0]]
    await bot_store.record_delivery(pages[0], [2])
    assert await bot_store.list_undelivered() == []

    # Page 1 fails: it is delivered (as a failure) before page 2, which is no longer held.
    worker_store.fail(pages[1], claims[1], JobError("the picture could not be made"))
    assert [j.id for j in await bot_store.list_undelivered()] == [pages[1], pages[2]]


async def test_a_bot_restart_mid_queue_keeps_everything_in_order(database: str) -> None:
    path = database
    settings = QueueConfig(max_waiting_per_user=100)
    store = await AsyncJobStore.open(path, settings)
    first = [(await store.enqueue("imagine", {"prompt": str(i)}, user_id=u)).id for i, u in enumerate((1, 1, 2, 2))]
    await store.close()
    store = await AsyncJobStore.open(path, settings)  # the bot comes back
    later = [(await store.enqueue("imagine", {"prompt": "new"}, user_id=3)).id]
    predicted = await store.positions()
    await store.close()
    with JobStore.open(path) as worker:
        order = [run_next(worker) for _ in range(5)]
        assert worker.claim("w", KINDS) is None
    assert order == [first[0], first[2], later[0], first[1], first[3]]
    assert sorted(predicted, key=lambda job_id: predicted[job_id].position) == order


async def test_cancelling_a_store_call_mid_transaction_leaves_the_connection_usable(database):
    """A caller cancelled while its transaction runs must not leave the connection inside that transaction."""
    import asyncio

    from storyloom.queue import AsyncJobStore

    store = await AsyncJobStore.open(database)
    try:
        for attempt in range(30):
            call = asyncio.ensure_future(
                store.enqueue("imagine", {"prompt": f"cat {attempt}"}, user_id=attempt % 5 + 1, enforce_caps=False)
            )
            await asyncio.sleep(0.0005 * (attempt % 6))
            call.cancel()
            try:
                await call
            except asyncio.CancelledError:
                pass
        job = await store.enqueue("imagine", {"prompt": "after"}, user_id=99)
        assert (await store.get(job.id)).params["prompt"] == "after"
        if not database.startswith("postgresql"):
            assert not store.connection.in_transaction
    finally:
        await store.close()


async def test_a_sharded_bot_lists_only_its_own_guilds_results_and_direct_messages_go_to_shard_0(
    bot_store: AsyncJobStore, worker_store: JobStore
) -> None:
    guilds = {shard: (3000 + shard) << 22 for shard in range(3)}  # guild IDs as Discord numbers them, one per shard
    jobs = {}
    for shard, guild in guilds.items():
        jobs[shard] = (await bot_store.enqueue("imagine", {"prompt": "x"}, user_id=1, guild_id=guild, channel_id=9)).id
    direct = (await bot_store.enqueue("imagine", {"prompt": "dm"}, user_id=1, channel_id=8)).id
    for _ in range(4):
        run_next(worker_store)

    async def listed(shards: tuple[int, ...]) -> set[int]:
        return {j.id for j in await bot_store.list_undelivered(shard_count=3, shards=shards, per_destination=10)}

    assert await listed((0,)) == {jobs[0], direct}
    assert await listed((1, 2)) == {jobs[1], jobs[2]}
    assert {j.id for j in await bot_store.list_undelivered(per_destination=10)} == {*jobs.values(), direct}
    with pytest.raises(InvalidInput, match="at least one shard"):
        await bot_store.list_undelivered(shard_count=3)
