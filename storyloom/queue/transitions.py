"""The only way a job's status changes.

``queued → running → succeeded | failed | canceled``, plus ``running → queued`` (a lost worker or a
graceful shutdown hands the job back) and ``queued → canceled``. A finished job never changes again: a
retry is a new job. Keeping every status write in :func:`transition` means the rules above are enforced in
one place, and every write is guarded by the status it was read with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storyloom.errors import InvalidInput, StoryloomError
from storyloom.queue import sql
from storyloom.queue.job import Job, JobStatus
from storyloom.queue.operation import Steps, one

ALLOWED: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}

# Columns every transition into a status resets, so no stale lease or progress survives it.
_ENTERING: Mapping[JobStatus, Mapping[str, Any]] = {
    JobStatus.QUEUED: {
        "worker_id": None, "lease_expires_at": None, "started_at": None, "progress_step": 0,
        "progress_total": 0, "progress_stage": "", "progress_at": None, "preview": None,
    },
    JobStatus.RUNNING: {"progress_step": 0, "progress_total": 0, "progress_stage": "", "preview": None},
    JobStatus.SUCCEEDED: {"lease_expires_at": None, "preview": None},
    JobStatus.FAILED: {"lease_expires_at": None, "preview": None},
    JobStatus.CANCELED: {"lease_expires_at": None, "preview": None},
}  # fmt: skip


class JobNotFound(InvalidInput):
    """No job has this ID (never existed, or purged)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"there is no job {job_id} (it may have been removed after the retention period)")
        self.job_id = job_id


class InvalidTransition(StoryloomError):
    """The job is not in a state that allows this change (most often: it already finished)."""


class LeaseLost(StoryloomError):
    """A worker tried to change a job it no longer holds (its lease expired and the job moved on)."""


def load_job(job_id: int) -> Steps[Job]:
    row = yield from one(sql.SELECT_JOB, (job_id,))
    if row is None:
        raise JobNotFound(job_id)
    return Job.from_row(row)


def check_transition(job: Job, new: JobStatus) -> None:
    if new in ALLOWED[job.status]:
        return
    if job.is_finished:
        raise InvalidTransition(f"job {job.id} has already finished ({job.status}); it cannot become {new}")
    raise InvalidTransition(f"job {job.id} is {job.status}; it cannot become {new}")


def transition(
    job: Job | int,
    new: JobStatus,
    *,
    now: float,
    holder: str | None = None,
    **changes: Any,
) -> Steps[Job]:
    """Move ``job`` to ``new``, setting ``changes`` (column values) too; returns the updated job.

    ``holder``, when given, must be the job's current lease holder: that is how a worker whose lease
    expired (and whose job another worker took over) is stopped from overwriting the newer run.
    """
    if isinstance(job, int):
        job = yield from load_job(job)
    if holder is not None and (job.status is not JobStatus.RUNNING or job.worker_id != holder):
        raise LeaseLost(f"job {job.id} is no longer held by worker {holder} (it is {job.status})")
    check_transition(job, new)
    values: dict[str, Any] = dict(_ENTERING[new])
    if new.is_finished:
        values["finished_at"] = now
    values.update(changes)
    columns = tuple(sorted(values))
    row = yield from one(
        sql.update_job_status(columns),
        {**values, "status": new.value, "id": job.id, "from_status": job.status.value},
    )
    if row is None:  # cannot happen inside the write transaction; kept as a guard against misuse
        raise InvalidTransition(f"job {job.id} changed while it was being updated")
    return Job.from_row(row)
