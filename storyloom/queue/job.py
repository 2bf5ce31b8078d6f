"""Plain, frozen values that cross the store boundary: jobs, artifacts, positions, delivery intents.

Nothing here holds a live connection or a Discord object; a ``Job`` is a snapshot of one row, so it
can be passed between threads, logged and compared freely.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from storyloom.queue.operation import Row


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class JobKind(enum.StrEnum):
    """Every kind of work a worker can be asked to do. Closed on purpose: the store refuses anything else."""

    IMAGINE = "imagine"
    VARY = "vary"
    UPSCALE = "upscale"
    STORY = "story"
    STORY_PAGE = "story_page"
    TRAIN_STORY = "train_story"
    TRAIN_SUBJECT = "train_subject"
    NARRATE = "narrate"
    DESCRIBE = "describe"
    BLEND = "blend"
    REGION = "region"  # find the part of a picture to redraw (from words or grid cells): a mask and a preview
    INPAINT = "inpaint"  # redraw a region job's masked part
    OUTPAINT = "outpaint"  # grow a picture outwards (Zoom Out, Pan)


class ArtifactKind(enum.StrEnum):
    IMAGE = "image"  # one picture of a result; ``index`` is what U1..U4/V1..V4 refer to
    GRID = "grid"  # the 2x2 composition shown to the user
    TEXT = "text"  # story text, plans, JSON
    FILE = "file"  # anything else (a PDF, an adapter archive)


@dataclass(frozen=True)
class Progress:
    step: int = 0
    total: int = 0
    stage: str = ""
    updated_at: float | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass(frozen=True)
class JobError:
    """``message`` is safe to show a user; ``type`` and ``traceback`` are for the log."""

    message: str
    type: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class Job:
    id: int
    kind: JobKind
    params: Mapping[str, Any]
    status: JobStatus
    user_id: int
    guild_id: int | None
    channel_id: int | None
    thread_id: int | None
    message_id: int | None
    parent_id: int | None
    page_index: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int  # runs that ended with the worker lost (crash, kill, expired lease)
    runs: int  # times the job was claimed
    worker_id: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    progress: Progress
    has_preview: bool
    error: JobError | None

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @classmethod
    def from_row(cls, row: Row) -> Job:
        error = None
        if row["error_message"] is not None:
            error = JobError(row["error_message"], row["error_type"] or "", row["error_traceback"] or "")
        return cls(
            id=row["id"],
            kind=JobKind(row["kind"]),
            params=MappingProxyType(json.loads(row["params"])),
            status=JobStatus(row["status"]),
            user_id=row["user_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            thread_id=row["thread_id"],
            message_id=row["message_id"],
            parent_id=row["parent_id"],
            page_index=row["page_index"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            runs=row["runs"],
            worker_id=row["worker_id"],
            lease_expires_at=row["lease_expires_at"],
            cancel_requested=bool(row["cancel_requested"]),
            progress=Progress(row["progress_step"], row["progress_total"], row["progress_stage"], row["progress_at"]),
            has_preview=bool(row["has_preview"]),
            error=error,
        )


@dataclass(frozen=True)
class Destination:
    """Where a job's results go in Discord, as plain IDs (never live objects)."""

    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    message_id: int | None = None


@dataclass(frozen=True)
class NewArtifact:
    """A result a handler produced, before the store has given it an ID."""

    kind: ArtifactKind
    index: int
    name: str
    mime: str
    data: bytes
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobInput:
    """A file given with a request (a picture for an image prompt, /blend or /describe), stored with its job so
    any worker on any host can read it."""

    index: int
    name: str
    mime: str
    data: bytes

    @classmethod
    def from_row(cls, row: Row) -> JobInput:
        return cls(index=row["idx"], name=row["name"], mime=row["mime"], data=bytes(row["data"]))


@dataclass(frozen=True)
class Artifact:
    id: int
    job_id: int
    kind: ArtifactKind
    index: int
    name: str
    mime: str
    data: bytes
    metadata: Mapping[str, Any]
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Artifact:
        return cls(
            id=row["id"],
            job_id=row["job_id"],
            kind=ArtifactKind(row["kind"]),
            index=row["idx"],
            name=row["name"],
            mime=row["mime"],
            data=bytes(row["data"]),
            metadata=MappingProxyType(json.loads(row["metadata"])),
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class NewJob:
    """A follow-up job a handler asks for (a story's pages); it inherits the parent's user and destination."""

    kind: JobKind
    params: Mapping[str, Any]
    page_index: int | None = None


@dataclass(frozen=True)
class QueuePosition:
    """Where a job stands. ``position`` is 1 for the next job to start, 0 once running, None when finished.

    ``wait_seconds``/``eta_seconds`` (until it starts / until it is done) are None when no job of the
    kinds involved has finished yet, so there is nothing to estimate from."""

    job_id: int
    status: JobStatus
    position: int | None
    jobs_ahead: int
    wait_seconds: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class HeartbeatReply:
    """What a worker learns when it renews its lease: whether the job still belongs to it, and whether
    someone asked to cancel it."""

    lease_held: bool
    cancel_requested: bool


@dataclass(frozen=True)
class DeliveryIntent:
    """Recorded before the bot posts a job's results. ``resumed`` means an earlier attempt recorded the same
    intent and may have posted already: look for messages carrying ``nonce`` before posting again."""

    job_id: int
    nonce: str
    started_at: float
    resumed: bool


class DeliveryOutcome(enum.StrEnum):
    """How a delivery ended: its results posted, refused by Discord for good, or given up after failures."""

    POSTED = "posted"
    REFUSED = "refused"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class DeliveryRecord:
    """Where a job's delivery stands. ``outcome`` is None while it is under way; ``next_try_at`` holds it
    back after a temporary failure; ``reason`` says, for people, why it ended or last failed."""

    job_id: int
    tries: int
    failures: int
    outcome: DeliveryOutcome | None
    reason: str | None
    next_try_at: float | None
    ended_at: float | None
    message_ids: tuple[int, ...]

    @classmethod
    def from_row(cls, row: Row) -> DeliveryRecord:
        return cls(
            job_id=row["job_id"],
            tries=row["tries"],
            failures=row["failures"],
            outcome=DeliveryOutcome(row["outcome"]) if row["outcome"] else None,
            reason=row["reason"],
            next_try_at=row["next_try_at"],
            ended_at=row["ended_at"],
            message_ids=tuple(json.loads(row["message_ids"] or "[]")),
        )


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    device: str
    started_at: float
    last_seen: float
    job_id: int | None
    models: tuple[str, ...]
    stopped_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> WorkerInfo:
        return cls(
            id=row["id"],
            host=row["host"],
            pid=row["pid"],
            device=row["device"],
            started_at=row["started_at"],
            last_seen=row["last_seen"],
            job_id=row["job_id"],
            models=tuple(json.loads(row["models"])),
            stopped_at=row["stopped_at"],
        )


@dataclass(frozen=True)
class TrainingReference:
    """What one ``train_subject`` job says about files on disk: its photos folder (``images_dir``, relative to
    the data directory), the class whose class images it uses, and the character it will register."""

    job_id: int
    status: JobStatus
    name: str
    class_name: str
    images_dir: str


@dataclass(frozen=True)
class TrainingReferences:
    """Every ``train_subject`` job in the store, read in one snapshot. ``last_job_id`` is the highest job ID
    given out so far (IDs are never reused): a job with a higher ID was created after this snapshot."""

    jobs: tuple[TrainingReference, ...]
    last_job_id: int
