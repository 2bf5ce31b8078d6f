"""Waiting for jobs: on the real (blocking) store from test threads, and on the async store from the bot's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import Job, JobStatus
from storyloom.worker.testing import wait_until


def finished_somehow(store, job_id: int, timeout: float = 120.0):
    """The job once it has ended, whatever its status (waits on the real store)."""
    return wait_until(
        lambda: (j := store.get(job_id)).is_finished and j, timeout, interval=0.05, what=f"job {job_id} to end"
    )


def finished(store, job_id: int, timeout: float = 120.0):
    """The job once it has succeeded; fails the test with the job's error otherwise."""
    job = finished_somehow(store, job_id, timeout)
    assert job.status is JobStatus.SUCCEEDED, job.error
    return job


def status_becomes(store, job_id: int, *statuses: JobStatus, timeout: float = 10.0):
    """The job once its status is one of ``statuses``."""
    return wait_until(
        lambda: (job := store.get(job_id)).status in statuses and job, timeout, what=f"job {job_id} {statuses}"
    )


async def wait_job(store: AsyncJobStore, job_id: int, predicate: Callable[[Job], bool], timeout: float = 60.0) -> Job:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = await store.get(job_id)
        if predicate(job):
            return job
        if loop.time() > deadline:
            raise TimeoutError(f"job {job_id} is {job.status} after {timeout} s")
        await asyncio.sleep(0.05)


async def wait_delivered(store: AsyncJobStore, job_id: int, timeout: float = 10.0) -> tuple[int, ...]:
    """The message IDs the bot recorded for the job, once it has recorded them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (ids := await store.delivered_messages(job_id)) is None:
        if loop.time() > deadline:
            raise TimeoutError(f"job {job_id} was not recorded as delivered within {timeout} s")
        await asyncio.sleep(0.05)
    return ids
