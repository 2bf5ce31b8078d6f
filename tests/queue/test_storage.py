"""Keeping the store's size in hand, on both backends: purges a batch at a time (other writers get the write
lock in between), the storage each user holds, and which of a user's results may go to make room."""

from __future__ import annotations

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue import ArtifactKind, JobStatus, JobStore, NewArtifact
from tests.support.clock import Clock

DAY = 86400.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: str, clock: Clock):
    with JobStore.open(database, QueueConfig(max_waiting_per_user=100, max_waiting_total=500), clock=clock) as store:
        yield store


def finished(store: JobStore, user: int = 1, size: int = 10, *, delivered: bool = True, channel: int | None = 9):
    """A succeeded imagine job of ``user`` holding one ``size``-byte image, posted to ``channel`` if ``delivered``."""
    job = store.enqueue("imagine", {"prompt": "a cat"}, user_id=user, channel_id=channel)
    store.claim("w", ["imagine"])
    image = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", bytes(size))
    done = store.complete(job.id, "w", [image])
    if delivered and channel is not None:
        store.begin_delivery(job.id)
        store.record_delivery(job.id, [1000 + job.id])
    return done


def test_purge_removes_a_batch_per_transaction_oldest_first(store: JobStore, clock: Clock) -> None:
    old = [finished(store) for _ in range(25)]
    clock.now += 40 * DAY
    recent = finished(store)
    assert [store.purge(30, limit=10) for _ in range(4)] == [10, 10, 5, 0]
    remaining = store.list_jobs(tuple(JobStatus))
    assert [job.id for job in remaining] == [recent.id]
    assert store.artifacts(old[0].id) == []
    with pytest.raises(InvalidInput, match="at least one job"):
        store.purge(30, limit=0)


def test_users_over_the_bound_and_their_removable_results_oldest_first(store: JobStore, clock: Clock) -> None:
    first = finished(store, user=1, size=400)
    clock.now += 1
    undelivered = finished(store, user=1, size=400, delivered=False)
    clock.now += 1
    worked_on = finished(store, user=1, size=400)
    store.enqueue("vary", {"index": 0}, user_id=1, parent_id=worked_on.id)  # waits for its picture
    clock.now += 1
    newest = finished(store, user=1, size=400)
    not_posted_anywhere = finished(store, user=1, size=400, channel=None)
    finished(store, user=2, size=100)
    assert store.users_over_storage(1000) == [(1, 2000)]
    assert store.users_over_storage(2000) == []
    removable = store.removable_results(1)
    assert [job_id for job_id, _ in removable] == [first.id, newest.id, not_posted_anywhere.id]
    assert all(size == 400 for _, size in removable)
    assert store.delete_finished([first.id, undelivered.id]) == 2
    assert store.users_over_storage(1000) == [(1, 1200)]
    assert undelivered.id not in [job.id for job in store.list_jobs(tuple(JobStatus))]


def test_delete_finished_leaves_waiting_and_running_jobs_alone(store: JobStore) -> None:
    waiting = store.enqueue("imagine", {"prompt": "a cat"}, user_id=1)
    assert store.delete_finished([waiting.id]) == 0
    assert store.get(waiting.id).status is JobStatus.QUEUED
    with pytest.raises(InvalidInput, match="at most 10 jobs"):
        store.delete_finished(list(range(11)))
