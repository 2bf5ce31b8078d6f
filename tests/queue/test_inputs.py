"""Files given with a request (pictures) travel in the store with their job, on both backends: stored atomically with it, copied by a
retry, removed with the job's results or when the job is purged."""

from __future__ import annotations

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue import ArtifactKind, JobStatus, JobStore, NewArtifact
from storyloom.queue.job import JobError, JobInput
from tests.support.clock import Clock

PICTURES = (JobInput(0, "cat.png", "image/png", b"\x89PNG cat"), JobInput(1, "dog.jpg", "image/jpeg", b"\xff\xd8 dog"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: str, clock: Clock) -> JobStore:
    with JobStore.open(database, QueueConfig(), clock=clock) as store:
        yield store


def test_inputs_are_stored_with_their_job_in_order(store: JobStore) -> None:
    job = store.enqueue("blend", {"prompt": "a cat"}, user_id=1, inputs=PICTURES)
    assert store.job_inputs(job.id) == list(PICTURES)
    other = store.enqueue("imagine", {"prompt": "a dog"}, user_id=1)
    assert store.job_inputs(other.id) == []


def test_bad_inputs_are_refused_before_anything_is_stored(store: JobStore) -> None:
    with pytest.raises(InvalidInput, match="numbered"):
        store.enqueue("blend", {}, user_id=1, inputs=(PICTURES[1],))
    with pytest.raises(InvalidInput, match="at most 8 files"):
        store.enqueue("blend", {}, user_id=1, inputs=[JobInput(i, f"{i}.png", "image/png", b"x") for i in range(9)])
    with pytest.raises(InvalidInput, match="between 1 byte"):
        store.enqueue("blend", {}, user_id=1, inputs=(JobInput(0, "empty.png", "image/png", b""),))
    assert store.list_jobs() == []


def test_a_retry_gets_the_same_inputs(store: JobStore) -> None:
    job = store.enqueue("describe", {}, user_id=1, inputs=PICTURES[:1])
    claimed = store.claim("w1", ["describe"])
    assert claimed is not None and claimed.id == job.id
    store.fail(job.id, "w1", JobError("boom"))
    again = store.retry(job.id)
    assert again.id != job.id and store.job_inputs(again.id) == list(PICTURES[:1])


def test_deleting_results_removes_artifacts_and_inputs_but_keeps_the_record(store: JobStore) -> None:
    job = store.enqueue("describe", {}, user_id=1, inputs=PICTURES[:1])
    store.claim("w1", ["describe"])
    picture = NewArtifact(ArtifactKind.IMAGE, 0, "a.png", "image/png", b"png")
    store.complete(job.id, "w1", [picture])
    assert store.delete_results(job.id) == 2
    assert store.artifacts(job.id) == [] and store.job_inputs(job.id) == []
    assert store.get(job.id).status is JobStatus.SUCCEEDED


def test_purging_a_job_removes_its_inputs(store: JobStore, clock: Clock) -> None:
    job = store.enqueue("describe", {}, user_id=1, inputs=PICTURES[:1])
    store.cancel(job.id)
    clock.now += 40 * 86400
    assert store.purge() == 1
    assert store.job_inputs(job.id) == []
