"""Operations of workers: claim under a lease, heartbeat, progress, finish, hand back, recover lost leases.

A lease is (worker ID, expiry). Every write a worker makes about its job is conditioned on still holding
the lease, so a worker that was presumed dead (and whose job another worker took over) can neither
overwrite the newer run nor add a second set of results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace

from storyloom.config import QueueConfig
from storyloom.queue import sql
from storyloom.queue.character import NewCharacter
from storyloom.queue.job import (
    Destination,
    HeartbeatReply,
    Job,
    JobError,
    JobKind,
    JobStatus,
    NewArtifact,
    WorkerInfo,
)
from storyloom.queue.operation import Steps, autocommit, lossy_writes, one, query, reads, scalar, writes
from storyloom.queue.ops.characters import insert_character
from storyloom.queue.ops.jobs import insert_job
from storyloom.queue.transitions import load_job, transition

# The ETA average follows roughly the last this-many runs of a kind.
DURATION_WINDOW = 20


def crash_message(times: int) -> str:
    return f"this job crashed the worker {times} time{'s' if times != 1 else ''}"


@autocommit
def has_work(kinds: Sequence[str], now: float) -> Steps[bool]:
    """Cheap check without the write lock, so idle workers don't queue up on it."""
    return bool((yield from scalar(sql.HAS_WORK, {"kinds": json.dumps(list(kinds)), "now": now})))


@writes
def claim(worker_id: str, kinds: Sequence[str], now: float, settings: QueueConfig) -> Steps[Job | None]:
    """Take the next job fairly, in one ``BEGIN IMMEDIATE`` transaction, recovering expired leases first."""
    yield from _recover_expired(now, settings)
    row = yield from one(sql.SELECT_NEXT_JOB, {"kinds": json.dumps(list(kinds))})
    if row is None:
        return None
    job = Job.from_row(row)  # locked by the claim query itself on PostgreSQL; under the write lock on SQLite
    yield from query(sql.MARK_SERVED, {"user_id": job.user_id})
    job = yield from transition(
        job,
        JobStatus.RUNNING,
        now=now,
        started_at=now,
        worker_id=worker_id,
        lease_expires_at=now + settings.lease_seconds,
        runs=job.runs + 1,
    )
    yield from query(sql.WORKER_TOOK_JOB, {"id": worker_id, "now": now, "job_id": job.id})
    return job


@writes
def recover_expired(now: float, settings: QueueConfig) -> Steps[list[Job]]:
    return (yield from _recover_expired(now, settings))


def _recover_expired(now: float, settings: QueueConfig) -> Steps[list[Job]]:
    recovered = []
    for row in (yield from query(sql.SELECT_EXPIRED_LEASES, (now,))):
        recovered.append((yield from _hand_back(Job.from_row(row), now, settings, crashed=True)))
    return recovered


def _hand_back(job: Job, now: float, settings: QueueConfig, *, crashed: bool, holder: str | None = None) -> Steps[Job]:
    """Return a running job to the queue. A crash costs an attempt; enough of them end the job."""
    attempts = job.attempts + 1 if crashed else job.attempts
    if job.cancel_requested:
        return (yield from transition(job, JobStatus.CANCELED, now=now, holder=holder, attempts=attempts))
    if crashed and attempts >= settings.max_attempts:
        return (
            yield from transition(
                job,
                JobStatus.FAILED,
                now=now,
                holder=holder,
                attempts=attempts,
                error_message=crash_message(attempts),
                error_type="WorkerLost",
                error_traceback="",
            )
        )
    return (yield from transition(job, JobStatus.QUEUED, now=now, holder=holder, attempts=attempts))


@writes
def release(job_id: int, holder: str, now: float, settings: QueueConfig) -> Steps[Job]:
    """A worker shutting down gracefully hands its job back; that is not the job's fault, so no attempt counts."""
    job = yield from load_job(job_id)
    return (yield from _hand_back(job, now, settings, crashed=False, holder=holder))


@writes
def release_worker(worker_id: str, now: float, settings: QueueConfig, *, crashed: bool) -> Steps[list[Job]]:
    """Hand back every job a worker held: it died (``crashed``) or was stopped by its supervisor."""
    released = []
    for row in (yield from query(sql.SELECT_RUNNING_OF_WORKER, (worker_id,))):
        released.append((yield from _hand_back(Job.from_row(row), now, settings, crashed=crashed)))
    yield from query(sql.STOP_WORKER, {"id": worker_id, "now": now})
    return released


@reads
def running_on_host(prefix: str) -> Steps[list[Job]]:
    return [Job.from_row(row) for row in (yield from query(sql.SELECT_RUNNING_ON_HOST, {"prefix": prefix}))]


@lossy_writes
def heartbeat(
    worker_id: str, job_id: int | None, models: Iterable[str], now: float, settings: QueueConfig
) -> Steps[HeartbeatReply]:
    yield from query(
        sql.TOUCH_WORKER, {"id": worker_id, "now": now, "job_id": job_id, "models": json.dumps(sorted(models))}
    )
    if job_id is None:
        return HeartbeatReply(lease_held=False, cancel_requested=False)
    rows = yield from query(
        sql.RENEW_LEASE, {"id": job_id, "worker_id": worker_id, "expires": now + settings.lease_seconds}
    )
    return _reply(rows)


@lossy_writes
def report_progress(
    job_id: int, worker_id: str, step: int, total: int, stage: str, preview: bytes | None, now: float
) -> Steps[HeartbeatReply]:
    rows = yield from query(
        sql.REPORT_PROGRESS,
        {
            "id": job_id,
            "worker_id": worker_id,
            "step": step,
            "total": total,
            "stage": stage,
            "preview": preview,
            "now": now,
        },
    )
    return _reply(rows)


@autocommit
def cancel_state(job_id: int, worker_id: str) -> Steps[HeartbeatReply]:
    row = yield from one(sql.SELECT_CANCEL_STATE, (job_id,))
    if row is None or row["status"] != JobStatus.RUNNING.value or row["worker_id"] != worker_id:
        return HeartbeatReply(lease_held=False, cancel_requested=True)
    return HeartbeatReply(lease_held=True, cancel_requested=bool(row["cancel_requested"]))


def _reply(rows: list) -> HeartbeatReply:
    if not rows:
        return HeartbeatReply(lease_held=False, cancel_requested=True)
    return HeartbeatReply(lease_held=True, cancel_requested=bool(rows[0]["cancel_requested"]))


@writes
def complete(
    job_id: int,
    holder: str,
    artifacts: Sequence[NewArtifact],
    followups: Sequence[tuple[JobKind, str, int | None]],
    now: float,
    characters: Sequence[NewCharacter] = (),
) -> Steps[Job]:
    """Success, results, follow-up jobs and registered characters in one transaction: all of it happens, or
    none (the job stays running and its lease runs out, so it is retried; a taken character name fails it)."""
    job = yield from transition(job_id, JobStatus.SUCCEEDED, now=now, holder=holder)
    for character in characters:
        yield from insert_character(replace(character, job_id=job.id), now)
    destination = Destination(job.user_id, job.guild_id, job.channel_id, job.thread_id, None)
    for kind, encoded, page_index in followups:
        yield from insert_job(kind, encoded, destination, parent_id=job.id, page_index=page_index, now=now)
    for item in artifacts:
        yield from query(
            sql.INSERT_ARTIFACT,
            {
                "job_id": job.id,
                "kind": item.kind.value,
                "idx": item.index,
                "name": item.name,
                "mime": item.mime,
                "data": item.data,
                "metadata": json.dumps(dict(item.metadata), ensure_ascii=False, sort_keys=True),
                "now": now,
            },
        )
    if job.started_at is not None:
        yield from query(
            sql.RECORD_DURATION, {"kind": job.kind.value, "seconds": now - job.started_at, "window": DURATION_WINDOW}
        )
    return job


@writes
def fail(job_id: int, holder: str, error: JobError, now: float) -> Steps[Job]:
    return (
        yield from transition(
            job_id,
            JobStatus.FAILED,
            now=now,
            holder=holder,
            error_message=error.message,
            error_type=error.type,
            error_traceback=error.traceback,
        )
    )


@writes
def mark_canceled(job_id: int, holder: str, now: float) -> Steps[Job]:
    return (yield from transition(job_id, JobStatus.CANCELED, now=now, holder=holder))


@writes
def register_worker(worker_id: str, host: str, pid: int, device: str, now: float) -> Steps[None]:
    yield from query(sql.UPSERT_WORKER, {"id": worker_id, "host": host, "pid": pid, "device": device, "now": now})


@writes
def stop_worker(worker_id: str, now: float) -> Steps[None]:
    yield from query(sql.STOP_WORKER, {"id": worker_id, "now": now})


@reads
def list_workers(stopped_after: float) -> Steps[list[WorkerInfo]]:
    return [WorkerInfo.from_row(row) for row in (yield from query(sql.SELECT_WORKERS, (stopped_after,)))]
