"""Operations of the bot and the CLI: enqueue (with caps), look up, list, cancel, retry, positions, and keeping
the store's size in hand (purging old jobs a batch at a time, the storage each user holds, removing a user's
oldest results). Those are short transactions; callers loop, pausing between batches, so heartbeats and claims
get the write lock in between (``storyloom.bot.maintenance``, ``storyloom queue purge``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput, QueueFull
from storyloom.queue import sql
from storyloom.queue.fairness import Running, Waiting, estimate_waits, remaining_seconds, serving_order
from storyloom.queue.job import (
    Artifact,
    ArtifactKind,
    Destination,
    Job,
    JobInput,
    JobKind,
    JobStatus,
    QueuePosition,
)
from storyloom.queue.operation import Operation, Steps, autocommit, one, query, reads, scalar, writes
from storyloom.queue.ops.training import check_name_free
from storyloom.queue.params import NEEDS_PARENT, JobParams, encode_params, parse_kind, validate_params
from storyloom.queue.transitions import InvalidTransition, JobNotFound, load_job, transition


def enqueue(
    kind: str | JobKind,
    params: Mapping[str, Any] | JobParams,
    destination: Destination,
    *,
    parent_id: int | None,
    now: float,
    settings: QueueConfig,
    enforce_caps: bool = True,
    inputs: Sequence[JobInput] = (),
) -> Operation[Job]:
    """Validate first (no transaction is opened for bad input), then check caps and insert the job with its
    ``inputs`` atomically (a worker never sees the job without them)."""
    kind = parse_kind(kind)
    typed = validate_params(kind, params)
    encoded = encode_params(kind, typed)
    if kind in NEEDS_PARENT and parent_id is None:
        raise InvalidInput(f"a {kind} job needs the job it works on (parent_id)")
    index = getattr(typed, "index", None) if kind in NEEDS_PARENT else None
    return _enqueue(kind, encoded, destination, parent_id, index, now, settings, enforce_caps, tuple(inputs))


@writes
def _enqueue(
    kind: JobKind,
    encoded: str,
    destination: Destination,
    parent_id: int | None,
    index: int | None,
    now: float,
    settings: QueueConfig,
    enforce_caps: bool,
    inputs: tuple[JobInput, ...],
) -> Steps[Job]:
    yield from query(sql.SERIALIZE_ENQUEUE, {"key": sql.ENQUEUE_LOCK_KEY})
    if parent_id is not None:
        yield from _check_parent(kind, parent_id, index)
    if enforce_caps:
        yield from _check_caps(destination.user_id, settings)
    if kind is JobKind.TRAIN_SUBJECT:
        yield from check_name_free(json.loads(encoded)["name"], destination.guild_id)
    job = yield from insert_job(kind, encoded, destination, parent_id=parent_id, page_index=None, now=now)
    for item in inputs:
        yield from query(
            sql.INSERT_INPUT,
            {"job_id": job.id, "idx": item.index, "name": item.name, "mime": item.mime, "data": item.data},
        )
    return job


def insert_job(
    kind: JobKind, encoded: str, destination: Destination, *, parent_id: int | None, page_index: int | None, now: float
) -> Steps[Job]:
    row = yield from one(
        sql.INSERT_JOB,
        {
            "kind": kind.value,
            "params": encoded,
            "user_id": destination.user_id,
            "guild_id": destination.guild_id,
            "channel_id": destination.channel_id,
            "thread_id": destination.thread_id,
            "message_id": destination.message_id,
            "parent_id": parent_id,
            "page_index": page_index,
            "now": now,
        },
    )
    assert row is not None, "INSERT ... RETURNING gives the new row"
    return Job.from_row(row)


def _check_parent(kind: JobKind, parent_id: int, index: int | None) -> Steps[None]:
    parent = yield from load_job(parent_id)
    if kind is JobKind.STORY_PAGE:
        return
    if parent.status is not JobStatus.SUCCEEDED:
        raise InvalidInput(f"job {parent_id} has no results to work on (it is {parent.status})")
    if index is not None and not (yield from scalar(sql.HAS_ARTIFACT, (parent_id, ArtifactKind.IMAGE.value, index))):
        raise InvalidInput(f"job {parent_id} has no image number {index + 1}")


def _check_caps(user_id: int, settings: QueueConfig) -> Steps[None]:
    mine = yield from scalar(sql.COUNT_WAITING_OF_USER, (user_id,))
    if mine >= settings.max_waiting_per_user:
        raise QueueFull(
            f"you already have {mine} jobs waiting (the limit is {settings.max_waiting_per_user}); "
            "wait until one of them starts, or cancel one"
        )
    everyone = yield from scalar(sql.COUNT_WAITING)
    if everyone >= settings.max_waiting_total:
        raise QueueFull(f"the queue is full ({everyone} jobs waiting); please try again in a few minutes")


@reads
def get_job(job_id: int) -> Steps[Job]:
    return (yield from load_job(job_id))


@reads
def list_jobs(statuses: Sequence[JobStatus], user_id: int | None, limit: int) -> Steps[list[Job]]:
    rows = yield from query(
        sql.LIST_JOBS, {"statuses": json.dumps([s.value for s in statuses]), "user_id": user_id, "limit": limit}
    )
    return [Job.from_row(row) for row in rows]


@reads
def children(job_id: int) -> Steps[list[Job]]:
    return [Job.from_row(row) for row in (yield from query(sql.SELECT_CHILDREN, (job_id,)))]


@writes
def set_destination(job_id: int, channel_id: int | None, thread_id: int | None, message_id: int | None) -> Steps[Job]:
    """Record where the bot is showing this job (status message, thread) once it knows."""
    row = yield from one(
        sql.SET_DESTINATION, {"id": job_id, "channel_id": channel_id, "thread_id": thread_id, "message_id": message_id}
    )
    if row is None:
        raise JobNotFound(job_id)
    return Job.from_row(row)


@writes
def cancel(job_id: int, now: float) -> Steps[Job]:
    """Cancel a queued job at once; ask a running one to stop (its worker sees the flag within one step).

    Canceling a finished story cancels its unfinished pages. Canceling a canceled job changes nothing."""
    job = yield from load_job(job_id)
    if job.status is JobStatus.QUEUED:
        return (yield from transition(job, JobStatus.CANCELED, now=now))
    if job.status is JobStatus.RUNNING:
        yield from query(sql.REQUEST_CANCEL, (job_id,))
        return (yield from load_job(job_id))
    rows = yield from query(sql.SELECT_UNFINISHED_FOLLOWUPS, (job_id,))
    followups = [Job.from_row(row) for row in rows]
    for child in followups:
        if child.status is JobStatus.QUEUED:
            yield from transition(child, JobStatus.CANCELED, now=now)
        else:
            yield from query(sql.REQUEST_CANCEL, (child.id,))
    if not followups and job.status is not JobStatus.CANCELED:
        raise InvalidTransition(f"job {job_id} has already finished ({job.status}); there is nothing to cancel")
    return job


@writes
def retry(job_id: int, now: float) -> Steps[Job]:
    """A failed or canceled job runs again as a new job (finished jobs never change); caps do not apply, a
    training's name must still be free."""
    job = yield from load_job(job_id)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
        raise InvalidTransition(f"job {job_id} is {job.status}; only failed or canceled jobs can be retried")
    if job.kind is JobKind.TRAIN_SUBJECT:
        yield from query(sql.SERIALIZE_ENQUEUE, {"key": sql.ENQUEUE_LOCK_KEY})
        yield from check_name_free(str(job.params["name"]), job.guild_id)
    destination = Destination(job.user_id, job.guild_id, job.channel_id, job.thread_id, None)
    encoded = json.dumps(dict(job.params), ensure_ascii=False, sort_keys=True)
    again = yield from insert_job(job.kind, encoded, destination, parent_id=job.parent_id, page_index=None, now=now)
    yield from query(sql.COPY_INPUTS, {"to_job": again.id, "from_job": job.id})
    return again


@writes
def purge(before: float, limit: int) -> Steps[int]:
    """Delete at most ``limit`` finished jobs that ended before ``before``, oldest first (their artifacts, inputs
    and delivery records go with them), and workers stopped before then; returns how many jobs went."""
    deleted = yield from query(sql.PURGE_FINISHED, {"before": before, "limit": limit})
    yield from query(sql.PURGE_STOPPED_WORKERS, (before,))
    return len(deleted)


@reads
def users_over_storage(limit_bytes: int) -> Steps[list[tuple[int, int]]]:
    """(user, bytes stored by their finished jobs) for every user above ``limit_bytes``."""
    rows = yield from query(sql.SELECT_USERS_OVER_STORAGE, {"limit": limit_bytes})
    return [(int(row["user_id"]), int(row["bytes"])) for row in rows]


@reads
def removable_results(user_id: int, limit: int) -> Steps[list[tuple[int, int]]]:
    """(job, bytes) of the user's oldest finished jobs that may be removed to make room, at most ``limit``."""
    rows = yield from query(sql.SELECT_REMOVABLE_RESULTS, {"user_id": user_id, "limit": limit})
    return [(int(row["id"]), int(row["bytes"])) for row in rows]


@writes
def delete_finished(job_ids: Sequence[int]) -> Steps[int]:
    """Delete these jobs if they are finished (a job that is not is left alone); returns how many went."""
    deleted = 0
    for job_id in job_ids:
        deleted += len((yield from query(sql.DELETE_FINISHED_JOB, (job_id,))))
    return deleted


@reads
def running_count() -> Steps[int]:
    return int((yield from scalar(sql.COUNT_RUNNING)))


@autocommit
def vacuum() -> Steps[None]:
    yield from query(sql.VACUUM)


@reads
def artifacts(job_id: int) -> Steps[list[Artifact]]:
    return [Artifact.from_row(row) for row in (yield from query(sql.SELECT_ARTIFACTS, (job_id,)))]


@reads
def artifact(job_id: int, kind: ArtifactKind, index: int) -> Steps[Artifact | None]:
    row = yield from one(sql.SELECT_ARTIFACT, (job_id, kind.value, index))
    return None if row is None else Artifact.from_row(row)


@reads
def job_inputs(job_id: int) -> Steps[list[JobInput]]:
    return [JobInput.from_row(row) for row in (yield from query(sql.SELECT_INPUTS, (job_id,)))]


@writes
def delete_results(job_id: int) -> Steps[int]:
    """Forget what a job produced and was given (its artifacts and inputs); the job row stays as a record.
    Returns how many stored files went."""
    yield from load_job(job_id)
    artifacts = yield from query(sql.DELETE_ARTIFACTS, (job_id,))
    inputs = yield from query(sql.DELETE_INPUTS, (job_id,))
    return len(artifacts) + len(inputs)


@reads
def preview(job_id: int) -> Steps[bytes | None]:
    data = yield from scalar(sql.SELECT_PREVIEW, (job_id,))
    return None if data is None else bytes(data)


@reads
def positions(job_ids: Iterable[int] | None, now: float, live_after: float) -> Steps[dict[int, QueuePosition]]:
    """Positions of the given jobs (all active jobs when None), from one consistent snapshot."""
    rows = yield from query(sql.SELECT_WAITING_FOR_ORDER)
    waiting = [Waiting(r["id"], r["user_id"], r["kind"], r["last_served"]) for r in rows]
    rows = yield from query(sql.SELECT_RUNNING_FOR_ETA)
    running = [Running(r["id"], r["kind"], r["started_at"]) for r in rows]
    averages = {r["kind"]: r["average"] for r in (yield from query(sql.SELECT_DURATIONS))}
    workers = yield from scalar(sql.COUNT_LIVE_WORKERS, (live_after,))
    estimates = estimate_waits(serving_order(waiting), running, averages, workers=workers, now=now)
    result = {}
    for started in running:
        left = remaining_seconds(started, averages, now)
        result[started.job_id] = QueuePosition(started.job_id, JobStatus.RUNNING, 0, 0, 0.0, left)
    for job_id, estimate in estimates.items():
        result[job_id] = QueuePosition(
            job_id,
            JobStatus.QUEUED,
            estimate.position,
            estimate.jobs_ahead,
            estimate.wait_seconds,
            estimate.eta_seconds,
        )
    if job_ids is None:
        return result
    wanted = {}
    for job_id in job_ids:
        if job_id not in result:
            job = yield from load_job(job_id)
            result[job_id] = QueuePosition(job_id, job.status, None, 0, None, None)
        wanted[job_id] = result[job_id]
    return wanted
