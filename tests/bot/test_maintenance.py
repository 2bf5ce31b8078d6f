"""The bot's store maintenance: old results go after ``queue.retention_days`` without anyone running a command,
and a user above ``queue.max_user_storage_mb`` loses their oldest posted results first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storyloom.bot.maintenance import MB, MaintenanceLoop, Removed
from storyloom.config import QueueConfig
from storyloom.queue import ArtifactKind, JobStatus, NewArtifact
from storyloom.queue.async_store import AsyncJobStore
from tests.support.clock import Clock

DAY = 86400.0


async def finished(store: AsyncJobStore, user: int, size: int, *, delivered: bool = True) -> int:
    job = await store.enqueue("imagine", {"prompt": "a cat"}, user_id=user, channel_id=9)
    await store.claim("w", ["imagine"])
    image = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", bytes(size))
    await store.complete(job.id, "w", [image])
    if delivered:
        await store.begin_delivery(job.id)
        await store.record_delivery(job.id, [1000 + job.id])
    return job.id


async def job_ids(store: AsyncJobStore) -> set[int]:
    return {job.id for job in await store.list_jobs(tuple(JobStatus))}


async def open_store(tmp_path: Path, clock: Clock, **settings) -> tuple[AsyncJobStore, QueueConfig]:
    config = QueueConfig(max_waiting_per_user=100, **settings)
    return await AsyncJobStore.open(tmp_path / "jobs.db", config, clock=clock), config


async def test_old_results_are_removed_automatically_a_batch_at_a_time(tmp_path: Path) -> None:
    clock = Clock()
    store, settings = await open_store(tmp_path, clock, retention_days=30, max_user_storage_mb=0)
    try:
        old = [await finished(store, user=1, size=100) for _ in range(23)]
        clock.now += 31 * DAY
        kept = await finished(store, user=1, size=100)
        assert await MaintenanceLoop(store, settings, pause=0).run_once() == Removed(expired=23)
        assert await job_ids(store) == {kept}
        assert await store.artifacts(old[-1]) == []
    finally:
        await store.close()


async def test_a_users_oldest_posted_results_go_first_above_the_storage_bound(tmp_path: Path) -> None:
    clock = Clock()
    store, settings = await open_store(tmp_path, clock, max_user_storage_mb=1)
    try:
        heavy = []
        for _ in range(4):
            heavy.append(await finished(store, user=1, size=400_000))
            clock.now += 60
        unposted = await finished(store, user=1, size=400_000, delivered=False)
        other_user = await finished(store, user=2, size=900_000)
        # User 1 stores 2 MB: the oldest posted results go until at most 1 MB is left.
        assert await MaintenanceLoop(store, settings, pause=0).run_once() == Removed(over_storage=3)
        assert await job_ids(store) == {heavy[3], unposted, other_user}
        assert await store.users_over_storage(1 * MB) == []
    finally:
        await store.close()


async def test_the_loop_runs_at_start_and_stops_when_asked(tmp_path: Path) -> None:
    clock = Clock()
    store, settings = await open_store(tmp_path, clock, retention_days=1, maintenance_interval_seconds=3600)
    try:
        old = await finished(store, user=1, size=10)
        clock.now += 2 * DAY
        loop = MaintenanceLoop(store, settings, pause=0)
        task = asyncio.create_task(loop.run())
        for _ in range(100):
            if old not in await job_ids(store):
                break
            await asyncio.sleep(0.02)
        assert old not in await job_ids(store)
        loop.stop()
        await asyncio.wait_for(task, 5)
    finally:
        await store.close()


async def test_the_disk_reserve_is_kept_beside_a_sqlite_store(tmp_path: Path) -> None:
    from storyloom.queue.disk_reserve import reserve_path

    store, settings = await open_store(tmp_path, Clock(), disk_reserve_mb=1)
    try:
        loop = MaintenanceLoop(store, settings, database_file=tmp_path / "jobs.db", pause=0)
        await loop.run_once()
        assert reserve_path(tmp_path / "jobs.db").stat().st_size == 1 * MB
    finally:
        await store.close()


async def test_stored_files_nothing_refers_to_go_after_the_retention_age(tmp_path: Path) -> None:
    from storyloom.queue import NewCharacter

    clock = Clock()
    store, settings = await open_store(tmp_path, clock, retention_days=30, max_user_storage_mb=0)
    try:
        lora = await store.put_blob(b"the weights of a character")
        photos = await store.put_blob(b"photos of a training nobody queued")
        await store.add_character(
            NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x", lora_digest=lora)
        )
        loop = MaintenanceLoop(store, settings, pause=0)
        await loop.run_once()
        assert await store.has_blob(photos)  # young: a training may still be queued with them
        clock.now += 31 * DAY
        await loop.run_once()
        assert not await store.has_blob(photos) and await store.has_blob(lora)
    finally:
        await store.close()
