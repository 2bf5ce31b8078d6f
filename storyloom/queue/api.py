"""Every store method, defined once for both stores.

Each method checks its input, builds an operation (``storyloom.queue.ops``) and hands it to ``_run``.
:class:`~storyloom.queue.store.JobStore` runs it on sqlite3 and returns the result;
:class:`~storyloom.queue.async_store.AsyncJobStore` runs it on aiosqlite and returns an awaitable of the
same result. The annotations name the result; on the async store, ``await`` the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue.character import CharacterRecord, NewCharacter
from storyloom.queue.job import (
    Artifact,
    ArtifactKind,
    DeliveryIntent,
    Destination,
    HeartbeatReply,
    Job,
    JobError,
    JobKind,
    JobStatus,
    NewArtifact,
    NewJob,
    QueuePosition,
    TrainingReferences,
    WorkerInfo,
)
from storyloom.queue.operation import Operation
from storyloom.queue.ops import characters, delivery, jobs, settings, setup, training, work
from storyloom.queue.params import JobParams, encode_params, parse_kind

T = TypeVar("T")

Clock = Callable[[], float]

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
DAY = 86400.0
MAX_SETTING_CHARS = 4000
MAX_SETTINGS = 20


class StoreApi:
    settings: QueueConfig
    where: str  # the file, for messages
    clock: Clock  # wall-clock seconds; shared by every process that uses the file

    def _run(self, op: Operation[T]) -> T:
        raise NotImplementedError

    # --- bot and CLI ---------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str | JobKind,
        params: Mapping[str, Any] | JobParams,
        *,
        user_id: int,
        guild_id: int | None = None,
        channel_id: int | None = None,
        thread_id: int | None = None,
        message_id: int | None = None,
        parent_id: int | None = None,
        enforce_caps: bool = True,
    ) -> Job:
        """Queue a job, or raise ``InvalidInput`` (unknown kind, bad parameters, missing source) or ``QueueFull``.

        ``vary``/``upscale`` take the job whose image they work on as ``parent_id``. A ``train_subject`` job
        reserves its character's name: ``CharacterExists`` if it is taken or already being trained there."""
        destination = Destination(user_id, guild_id, channel_id, thread_id, message_id)
        return self._run(
            jobs.enqueue(
                kind, params, destination, parent_id=parent_id, now=self.clock(), settings=self.settings,
                enforce_caps=enforce_caps,
            )
        )  # fmt: skip

    def get(self, job_id: int) -> Job:
        """The job, or ``JobNotFound`` (an ``InvalidInput``)."""
        return self._run(jobs.get_job(job_id))

    def list_jobs(
        self, statuses: Sequence[JobStatus] = ACTIVE, *, user_id: int | None = None, limit: int = 100
    ) -> list[Job]:
        """Newest first."""
        return self._run(jobs.list_jobs(tuple(statuses), user_id, limit))

    def children(self, job_id: int) -> list[Job]:
        """Jobs made from this one (a story's pages in page order, variations, upscales)."""
        return self._run(jobs.children(job_id))

    def set_destination(
        self, job_id: int, *, channel_id: int | None = None, thread_id: int | None = None, message_id: int | None = None
    ) -> Job:
        return self._run(jobs.set_destination(job_id, channel_id, thread_id, message_id))

    def cancel(self, job_id: int) -> Job:
        return self._run(jobs.cancel(job_id, self.clock()))

    def retry(self, job_id: int) -> Job:
        """A new job with the same request as a failed or canceled one (``CharacterExists`` for a training whose
        name was taken meanwhile)."""
        return self._run(jobs.retry(job_id, self.clock()))

    def purge(self, older_than_days: float | None = None) -> int:
        """Delete jobs that finished more than ``older_than_days`` ago (default: the retention setting)."""
        days = self.settings.retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise InvalidInput("the age to purge must not be negative")
        return self._run(jobs.purge(self.clock() - days * DAY))

    def vacuum(self) -> None:
        """Give the space of purged jobs back to the file system (rewrites the file; takes a while)."""
        return self._run(jobs.vacuum())

    def artifacts(self, job_id: int) -> list[Artifact]:
        return self._run(jobs.artifacts(job_id))

    def artifact(self, job_id: int, index: int, kind: ArtifactKind = ArtifactKind.IMAGE) -> Artifact | None:
        return self._run(jobs.artifact(job_id, kind, index))

    def preview(self, job_id: int) -> bytes | None:
        """The latest progress preview (JPEG) of a running job."""
        return self._run(jobs.preview(job_id))

    def positions(self, job_ids: Iterable[int] | None = None) -> dict[int, QueuePosition]:
        """Positions and ETAs of ``job_ids`` (every queued and running job when None)."""
        now = self.clock()
        ids = None if job_ids is None else tuple(job_ids)
        return self._run(jobs.positions(ids, now, now - self.settings.lease_seconds))

    # --- users' defaults (the bot's /settings) ------------------------------------------------------

    def user_settings(self, user_id: int) -> dict[str, str]:
        """The user's saved defaults (empty when there are none)."""
        return self._run(settings.user_settings(user_id))

    def save_user_settings(self, user_id: int, values: Mapping[str, str]) -> dict[str, str]:
        """Replace the user's defaults; empty values are dropped, and no values at all forgets the user."""
        cleaned = {}
        for key, value in values.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidInput("settings are names with text values")
            if len(value) > MAX_SETTING_CHARS:
                raise InvalidInput(f"the setting {key!r} is too long (more than {MAX_SETTING_CHARS:,} characters)")
            if value:
                cleaned[key] = value
        if len(cleaned) > MAX_SETTINGS:
            raise InvalidInput(f"at most {MAX_SETTINGS} settings can be saved per user")
        return self._run(settings.save_user_settings(user_id, cleaned, self.clock()))

    # --- the characters registry (trained DreamBooth LoRAs) -------------------------------------------

    def add_character(self, character: NewCharacter) -> CharacterRecord:
        """Register a character whose LoRA file already exists; ``CharacterExists`` if the name is taken there."""
        return self._run(characters.add_character(character.checked(), self.clock()))

    def character(self, name: str, *, guild_id: int | None = None) -> CharacterRecord:
        """The character ``name`` as seen from ``guild_id`` (its own first, then the command line's), or
        ``CharacterNotFound`` listing the known names."""
        return self._run(characters.get_character(name, guild_id))

    def find_character(self, name: str, *, guild_id: int | None = None) -> CharacterRecord | None:
        return self._run(characters.find_character(name, guild_id))

    def list_characters(self, *, guild_id: int | None = None, all_guilds: bool = False) -> list[CharacterRecord]:
        """By name: the guild's own and the command line's characters (every guild's with ``all_guilds``)."""
        return self._run(characters.list_characters(guild_id, all_guilds))

    def delete_character(self, name: str, *, guild_id: int | None = None) -> CharacterRecord:
        """Unregister the character of exactly this scope and return it (its files are the caller's to remove)."""
        return self._run(characters.delete_character(name, guild_id))

    def check_character_name(self, name: str, *, guild_id: int | None = None) -> None:
        """``CharacterExists`` when ``name`` is taken or already being trained where ``guild_id`` would see it
        (enqueueing the training checks again, atomically)."""
        return self._run(training.name_free(name, guild_id))

    def training_references(self) -> TrainingReferences:
        """Every ``train_subject`` job's status, photos folder, class and name: what decides which training files
        on disk are still needed."""
        return self._run(training.training_references())

    # --- workers -------------------------------------------------------------------------------------

    def data_version(self) -> int:
        return self._run(setup.data_version())

    def has_work(self, kinds: Sequence[str]) -> bool:
        return self._run(work.has_work(tuple(kinds), self.clock()))

    def claim(self, worker_id: str, kinds: Sequence[str]) -> Job | None:
        return self._run(work.claim(worker_id, tuple(kinds), self.clock(), self.settings))

    def heartbeat(self, worker_id: str, job_id: int | None, models: Iterable[str] = ()) -> HeartbeatReply:
        return self._run(work.heartbeat(worker_id, job_id, tuple(models), self.clock(), self.settings))

    def report_progress(
        self, job_id: int, worker_id: str, step: int, total: int, *, stage: str = "", preview: bytes | None = None
    ) -> HeartbeatReply:
        return self._run(work.report_progress(job_id, worker_id, step, total, stage, preview, self.clock()))

    def cancel_state(self, job_id: int, worker_id: str) -> HeartbeatReply:
        return self._run(work.cancel_state(job_id, worker_id))

    def complete(
        self,
        job_id: int,
        worker_id: str,
        artifacts: Sequence[NewArtifact] = (),
        followups: Sequence[NewJob] = (),
        characters: Sequence[NewCharacter] = (),
    ) -> Job:
        """Success with its results, follow-up jobs and trained characters, atomically; ``LeaseLost`` if the job
        moved on, ``CharacterExists`` (nothing recorded) if a character's name was taken meanwhile."""
        seen = set()
        for item in artifacts:
            key = (item.kind, item.index)
            if key in seen:
                raise InvalidInput(f"two results of job {job_id} are both {item.kind} number {item.index}")
            seen.add(key)
        encoded = []
        for followup in followups:
            kind = parse_kind(followup.kind)
            encoded.append((kind, encode_params(kind, followup.params), followup.page_index))
        checked = tuple(character.checked() for character in characters)
        return self._run(work.complete(job_id, worker_id, tuple(artifacts), encoded, self.clock(), checked))

    def fail(self, job_id: int, worker_id: str, error: JobError) -> Job:
        return self._run(work.fail(job_id, worker_id, error, self.clock()))

    def mark_canceled(self, job_id: int, worker_id: str) -> Job:
        return self._run(work.mark_canceled(job_id, worker_id, self.clock()))

    def release(self, job_id: int, worker_id: str) -> Job:
        """Hand a job back without counting an attempt (graceful shutdown)."""
        return self._run(work.release(job_id, worker_id, self.clock(), self.settings))

    def release_worker(self, worker_id: str, *, crashed: bool) -> list[Job]:
        """Hand back a dead or stopped worker's jobs at once instead of waiting for its lease to expire."""
        return self._run(work.release_worker(worker_id, self.clock(), self.settings, crashed=crashed))

    def recover_expired(self) -> list[Job]:
        return self._run(work.recover_expired(self.clock(), self.settings))

    def running_on_host(self, prefix: str) -> list[Job]:
        return self._run(work.running_on_host(prefix))

    def register_worker(self, worker_id: str, *, host: str, pid: int, device: str) -> None:
        return self._run(work.register_worker(worker_id, host, pid, device, self.clock()))

    def stop_worker(self, worker_id: str) -> None:
        return self._run(work.stop_worker(worker_id, self.clock()))

    def list_workers(self, *, stopped_within_seconds: float = 3600.0) -> list[WorkerInfo]:
        return self._run(work.list_workers(self.clock() - stopped_within_seconds))

    # --- delivery (protocol: storyloom/queue/ops/delivery.py) ----------------------------------------

    def list_undelivered(self, limit: int = 50) -> list[Job]:
        return self._run(delivery.list_undelivered(limit))

    def begin_delivery(self, job_id: int) -> DeliveryIntent | None:
        return self._run(delivery.begin_delivery(job_id, self.clock()))

    def record_delivery(self, job_id: int, message_ids: Sequence[int]) -> bool:
        return self._run(delivery.record_delivery(job_id, tuple(message_ids), self.clock()))

    def is_delivered(self, job_id: int) -> bool:
        return self._run(delivery.is_delivered(job_id))

    def delivered_messages(self, job_id: int) -> tuple[int, ...] | None:
        return self._run(delivery.delivered_messages(job_id))
