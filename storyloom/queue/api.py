"""Every store method, defined once for both stores.

Each method checks its input and builds an operation (``storyloom.queue.ops``); :class:`StoreMethod` hands
that operation to the store's ``_run``. :class:`~storyloom.queue.store.JobStore` runs it on sqlite3 and
returns the result; :class:`~storyloom.queue.async_store.AsyncJobStore` runs it on aiosqlite and returns a
coroutine of the same result. The methods are annotated as returning ``Operation[T]``; through a store they
are typed as returning ``T`` (``JobStore``) or ``Coroutine[..., T]`` (``AsyncJobStore``: ``await`` the call).
Checks and the clock run when the method is called, before anything is awaited.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue.blobs import MAX_BLOB_BYTES, blob_digest, check_digest
from storyloom.queue.character import MAX_PREVIEW_BYTES, CharacterRecord, NewCharacter, check_reference_weight
from storyloom.queue.job import (
    Artifact,
    ArtifactKind,
    DeliveryIntent,
    DeliveryOutcome,
    DeliveryRecord,
    Destination,
    HeartbeatReply,
    Job,
    JobError,
    JobInput,
    JobKind,
    JobStatus,
    NewArtifact,
    NewJob,
    QueuePosition,
    TrainingReferences,
    WorkerInfo,
)
from storyloom.queue.operation import Operation
from storyloom.queue.ops import blobs, characters, delivery, jobs, settings, stories, training, work
from storyloom.queue.params import JobParams, encode_params, parse_kind
from storyloom.queue.stories import StoryVersions

T = TypeVar("T")
P = ParamSpec("P")

Clock = Callable[[], float]

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
DAY = 86400.0
PURGE_BATCH = 10  # jobs deleted per transaction by purges and the storage bound
MAX_INPUTS = 8
MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_SETTING_CHARS = 4000
MAX_SETTINGS = 20
MAX_STORY_TITLE_CHARS = 100
MAX_PAGE_INDEX = 999


class BlockingRunner(Protocol):
    """A store whose ``_run`` returns the operation's result (``JobStore``)."""

    def _run(self, op: Operation[T], /) -> T: ...


class AsyncRunner(Protocol):
    """A store whose ``_run`` returns a coroutine of the operation's result (``AsyncJobStore``)."""

    def _run(self, op: Operation[T], /) -> Coroutine[Any, Any, T]: ...


class StoreMethod(Generic[P, T]):
    """A store method written once as ``(store, *args) -> Operation[T]``.

    Looked up on a store, it is the method that builds the operation and runs it with the store's ``_run``:
    ``Callable[P, T]`` on a blocking store, ``Callable[P, Coroutine[Any, Any, T]]`` on the async one. Being a
    non-data descriptor, subclasses and tests can still override or patch a method as usual.
    """

    def __init__(self, build: Callable[Concatenate[Any, P], Operation[T]]) -> None:
        self.build = build
        self.__name__ = build.__name__
        self.__qualname__ = build.__qualname__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, store: None, owner: type | None = None) -> StoreMethod[P, T]: ...
    @overload
    def __get__(self, store: BlockingRunner, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, store: AsyncRunner, owner: type | None = None) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, store: Any, owner: type | None = None) -> Any:
        if store is None:
            return self
        build = self.build

        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return store._run(build(store, *args, **kwargs))

        method.__name__ = build.__name__
        method.__qualname__ = build.__qualname__
        method.__doc__ = build.__doc__
        return method


def store_method(build: Callable[Concatenate[Any, P], Operation[T]]) -> StoreMethod[P, T]:
    return StoreMethod(build)


class StoreApi:
    """The methods both stores share; each store class adds ``_run`` (see :class:`StoreMethod`)."""

    settings: QueueConfig
    where: str  # the file, for messages
    clock: Clock  # wall-clock seconds; shared by every process that uses the file

    # --- bot and CLI ---------------------------------------------------------------------------------

    @store_method
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
        inputs: Sequence[JobInput] = (),
    ) -> Operation[Job]:
        """Queue a job, or raise ``InvalidInput`` (unknown kind, bad parameters, missing source) or ``QueueFull``.

        ``vary``/``upscale`` take the job whose image they work on as ``parent_id``. A ``train_subject`` job
        reserves its character's name: ``CharacterExists`` if it is taken or already being trained there.
        ``inputs`` (pictures given with the request) are stored with the job in the same transaction."""
        _check_inputs(inputs)
        destination = Destination(user_id, guild_id, channel_id, thread_id, message_id)
        return jobs.enqueue(
            kind, params, destination, parent_id=parent_id, now=self.clock(), settings=self.settings,
            enforce_caps=enforce_caps, inputs=inputs,
        )  # fmt: skip

    @store_method
    def job_inputs(self, job_id: int) -> Operation[list[JobInput]]:
        """The files given with the job's request, in order (empty when there were none)."""
        return jobs.job_inputs(job_id)

    @store_method
    def delete_results(self, job_id: int) -> Operation[int]:
        """Delete the job's artifacts and inputs (a user removed the result); returns how many files went."""
        return jobs.delete_results(job_id)

    @store_method
    def get(self, job_id: int) -> Operation[Job]:
        """The job, or ``JobNotFound`` (an ``InvalidInput``)."""
        return jobs.get_job(job_id)

    @store_method
    def list_jobs(
        self, statuses: Sequence[JobStatus] = ACTIVE, *, user_id: int | None = None, limit: int = 100
    ) -> Operation[list[Job]]:
        """Newest first."""
        return jobs.list_jobs(tuple(statuses), user_id, limit)

    @store_method
    def children(self, job_id: int) -> Operation[list[Job]]:
        """Jobs made from this one (a story's pages in page order, variations, upscales)."""
        return jobs.children(job_id)

    @store_method
    def set_destination(
        self, job_id: int, *, channel_id: int | None = None, thread_id: int | None = None, message_id: int | None = None
    ) -> Operation[Job]:
        return jobs.set_destination(job_id, channel_id, thread_id, message_id)

    @store_method
    def cancel(self, job_id: int) -> Operation[Job]:
        return jobs.cancel(job_id, self.clock())

    @store_method
    def retry(self, job_id: int) -> Operation[Job]:
        """A new job with the same request as a failed or canceled one (``CharacterExists`` for a training whose
        name was taken meanwhile)."""
        return jobs.retry(job_id, self.clock())

    @store_method
    def purge(self, older_than_days: float | None = None, *, limit: int = PURGE_BATCH) -> Operation[int]:
        """Delete at most ``limit`` jobs that finished more than ``older_than_days`` ago (default: the retention
        setting), oldest first, in one short transaction; call again until it returns 0."""
        days = self.settings.retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise InvalidInput("the age to purge must not be negative")
        if limit < 1:
            raise InvalidInput("a purge removes at least one job at a time")
        return jobs.purge(self.clock() - days * DAY, limit)

    @store_method
    def users_over_storage(self, limit_bytes: int) -> Operation[list[tuple[int, int]]]:
        """(user, bytes) of every user whose finished jobs store more than ``limit_bytes``."""
        return jobs.users_over_storage(limit_bytes)

    @store_method
    def removable_results(self, user_id: int, *, limit: int = PURGE_BATCH) -> Operation[list[tuple[int, int]]]:
        """(job, bytes) of the user's oldest finished, delivered jobs that nothing waiting or running needs."""
        return jobs.removable_results(user_id, limit)

    @store_method
    def delete_finished(self, job_ids: Sequence[int]) -> Operation[int]:
        """Delete these finished jobs with their results (at most ``PURGE_BATCH``: one short transaction)."""
        if len(job_ids) > PURGE_BATCH:
            raise InvalidInput(f"at most {PURGE_BATCH} jobs are deleted at a time")
        return jobs.delete_finished(tuple(job_ids))

    @store_method
    def running_count(self) -> Operation[int]:
        return jobs.running_count()

    @store_method
    def put_blob(self, data: bytes) -> Operation[str]:
        """Store ``data`` once, by content; returns its digest (hex SHA-256), the name every host reads it by."""
        if len(data) > MAX_BLOB_BYTES:
            raise InvalidInput(
                f"a stored file may be at most {MAX_BLOB_BYTES // 1024 // 1024} MiB (got {len(data)} bytes)"
            )
        return blobs.put_blob(blob_digest(data), data, self.clock())

    @store_method
    def blob(self, digest: str) -> Operation[bytes | None]:
        """The stored file with this digest, or None; callers check the bytes against the digest
        (``storyloom.queue.blobs.BlobCache`` does)."""
        return blobs.blob(digest)

    @store_method
    def has_blob(self, digest: str) -> Operation[bool]:
        return blobs.has_blob(digest)

    @store_method
    def purge_blobs(self, older_than_days: float | None = None, *, limit: int = 20) -> Operation[int]:
        """Delete up to ``limit`` stored files older than ``older_than_days`` (default: the retention setting) that
        no character and no waiting or running training refers to; returns how many (call again until 0)."""
        days = self.settings.retention_days if older_than_days is None else older_than_days
        if days < 0 or limit < 1:
            raise InvalidInput("the age to purge must not be negative, and the batch at least 1")
        return blobs.purge_unreferenced_blobs(self.clock() - days * DAY, limit)

    @store_method
    def vacuum(self) -> Operation[None]:
        """Give the space of purged jobs back to the file system (rewrites the file; takes a while, holding the
        write lock: only when no job is running, see ``storyloom queue purge --vacuum``)."""
        return jobs.vacuum()

    @store_method
    def artifacts(self, job_id: int) -> Operation[list[Artifact]]:
        return jobs.artifacts(job_id)

    @store_method
    def artifact(self, job_id: int, index: int, kind: ArtifactKind = ArtifactKind.IMAGE) -> Operation[Artifact | None]:
        return jobs.artifact(job_id, kind, index)

    @store_method
    def preview(self, job_id: int) -> Operation[bytes | None]:
        """The latest progress preview (JPEG) of a running job."""
        return jobs.preview(job_id)

    @store_method
    def positions(self, job_ids: Iterable[int] | None = None) -> Operation[dict[int, QueuePosition]]:
        """Positions and ETAs of ``job_ids`` (every queued and running job when None)."""
        now = self.clock()
        ids = None if job_ids is None else tuple(job_ids)
        return jobs.positions(ids, now, now - self.settings.lease_seconds)

    # --- stories as edited ------------------------------------------------------------------------

    @store_method
    def story_versions(self, story_id: int) -> Operation[StoryVersions]:
        """The newest drawing of each page of a story (following its earlier chapters) and its edited title."""
        return stories.story_versions(story_id)

    @store_method
    def choose_page_picture(self, story_id: int, page: int, job_id: int) -> Operation[None]:
        """Give page ``page`` of story job ``story_id`` the picture of finished job ``job_id`` (a fixed page); the
        story's versions show it until the page is drawn again or another picture is chosen."""
        if not 0 <= page <= MAX_PAGE_INDEX:
            raise InvalidInput(f"a story's pages are numbered 0 to {MAX_PAGE_INDEX}")
        return stories.choose_page_picture(story_id, page, job_id, self.clock())

    @store_method
    def set_story_title(self, story_id: int, title: str) -> Operation[None]:
        """Give a story a new title (the book and the next chapter use it)."""
        cleaned = " ".join(str(title).split())
        if not cleaned or len(cleaned) > MAX_STORY_TITLE_CHARS:
            raise InvalidInput(f"a story's title has 1 to {MAX_STORY_TITLE_CHARS} characters")
        return stories.set_story_title(story_id, cleaned, self.clock())

    # --- users' defaults (the bot's /settings) ------------------------------------------------------

    @store_method
    def user_settings(self, user_id: int) -> Operation[dict[str, str]]:
        """The user's saved defaults (empty when there are none)."""
        return settings.user_settings(user_id)

    @store_method
    def save_user_settings(self, user_id: int, values: Mapping[str, str]) -> Operation[dict[str, str]]:
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
        return settings.save_user_settings(user_id, cleaned, self.clock())

    # --- the characters registry (trained DreamBooth LoRAs and reference pictures) ---------------------------

    @store_method
    def add_character(self, character: NewCharacter) -> Operation[CharacterRecord]:
        """Register a character whose LoRA file already exists; ``CharacterExists`` if the name is taken there."""
        return characters.add_character(character.checked(), self.clock())

    @store_method
    def character(self, name: str, *, guild_id: int | None = None) -> Operation[CharacterRecord]:
        """The character ``name`` as seen from ``guild_id`` (its own first, then the command line's), or
        ``CharacterNotFound`` listing the known names."""
        return characters.get_character(name, guild_id)

    @store_method
    def find_character(self, name: str, *, guild_id: int | None = None) -> Operation[CharacterRecord | None]:
        return characters.find_character(name, guild_id)

    @store_method
    def list_characters(
        self, *, guild_id: int | None = None, all_guilds: bool = False
    ) -> Operation[list[CharacterRecord]]:
        """By name: the guild's own and the command line's characters (every guild's with ``all_guilds``)."""
        return characters.list_characters(guild_id, all_guilds)

    @store_method
    def delete_character(self, name: str, *, guild_id: int | None = None) -> Operation[CharacterRecord]:
        """Unregister the character of exactly this scope and return it (its files are the caller's to remove)."""
        return characters.delete_character(name, guild_id)

    @store_method
    def set_character_reference(
        self,
        name: str,
        digest: str,
        *,
        guild_id: int | None = None,
        weight: float | None = None,
        preview: bytes | None = None,
    ) -> Operation[CharacterRecord]:
        """Give the character of exactly this scope a reference picture (blob ``digest``, stored with ``put_blob``)
        and its weight (None: the configured default); ``preview`` replaces its preview when given."""
        check_digest(digest)
        checked_weight = None if weight is None else check_reference_weight(weight)
        if preview is not None and len(preview) > MAX_PREVIEW_BYTES:
            raise InvalidInput(f"the preview image is larger than {MAX_PREVIEW_BYTES // 1024 // 1024} MiB")
        return characters.set_character_reference(name, guild_id, digest, checked_weight, preview)

    @store_method
    def check_character_name(self, name: str, *, guild_id: int | None = None) -> Operation[None]:
        """``CharacterExists`` when ``name`` is taken or already being trained where ``guild_id`` would see it
        (enqueueing the training checks again, atomically)."""
        return training.name_free(name, guild_id)

    @store_method
    def training_references(self) -> Operation[TrainingReferences]:
        """Every ``train_subject`` job's status, photos folder, class and name: what decides which training files
        on disk are still needed."""
        return training.training_references()

    # --- workers -------------------------------------------------------------------------------------

    @store_method
    def has_work(self, kinds: Sequence[str]) -> Operation[bool]:
        return work.has_work(tuple(kinds), self.clock())

    @store_method
    def claim(self, worker_id: str, kinds: Sequence[str]) -> Operation[Job | None]:
        return work.claim(worker_id, tuple(kinds), self.clock(), self.settings)

    @store_method
    def heartbeat(self, worker_id: str, job_id: int | None, models: Iterable[str] = ()) -> Operation[HeartbeatReply]:
        return work.heartbeat(worker_id, job_id, tuple(models), self.clock(), self.settings)

    @store_method
    def report_progress(
        self, job_id: int, worker_id: str, step: int, total: int, *, stage: str = "", preview: bytes | None = None
    ) -> Operation[HeartbeatReply]:
        return work.report_progress(job_id, worker_id, step, total, stage, preview, self.clock())

    @store_method
    def cancel_state(self, job_id: int, worker_id: str) -> Operation[HeartbeatReply]:
        return work.cancel_state(job_id, worker_id)

    @store_method
    def complete(
        self,
        job_id: int,
        worker_id: str,
        artifacts: Sequence[NewArtifact] = (),
        followups: Sequence[NewJob] = (),
        characters: Sequence[NewCharacter] = (),
    ) -> Operation[Job]:
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
        return work.complete(job_id, worker_id, tuple(artifacts), encoded, self.clock(), checked)

    @store_method
    def fail(self, job_id: int, worker_id: str, error: JobError) -> Operation[Job]:
        return work.fail(job_id, worker_id, error, self.clock())

    @store_method
    def mark_canceled(self, job_id: int, worker_id: str) -> Operation[Job]:
        return work.mark_canceled(job_id, worker_id, self.clock())

    @store_method
    def release(self, job_id: int, worker_id: str) -> Operation[Job]:
        """Hand a job back without counting an attempt (graceful shutdown)."""
        return work.release(job_id, worker_id, self.clock(), self.settings)

    @store_method
    def release_worker(self, worker_id: str, *, crashed: bool) -> Operation[list[Job]]:
        """Hand back a dead or stopped worker's jobs at once instead of waiting for its lease to expire."""
        return work.release_worker(worker_id, self.clock(), self.settings, crashed=crashed)

    @store_method
    def recover_expired(self) -> Operation[list[Job]]:
        return work.recover_expired(self.clock(), self.settings)

    @store_method
    def running_on_host(self, prefix: str) -> Operation[list[Job]]:
        return work.running_on_host(prefix)

    @store_method
    def register_worker(self, worker_id: str, *, host: str, pid: int, device: str) -> Operation[None]:
        return work.register_worker(worker_id, host, pid, device, self.clock())

    @store_method
    def stop_worker(self, worker_id: str) -> Operation[None]:
        return work.stop_worker(worker_id, self.clock())

    @store_method
    def list_workers(self, *, stopped_within_seconds: float = 3600.0) -> Operation[list[WorkerInfo]]:
        return work.list_workers(self.clock() - stopped_within_seconds)

    # --- delivery (protocol: storyloom/queue/ops/delivery.py) ----------------------------------------

    @store_method
    def list_undelivered(
        self, limit: int = 50, *, per_destination: int = 5, shard_count: int = 0, shards: Sequence[int] = ()
    ) -> Operation[list[Job]]:
        """Jobs ready to be delivered: oldest first, at most ``per_destination`` per channel or thread, none
        held back by a failure's back-off; with ``shard_count``, only those of guilds on ``shards``."""
        if limit < 1 or per_destination < 1:
            raise InvalidInput("limit and per_destination must be at least 1")
        if shard_count and not shards:
            raise InvalidInput("a sharded bot delivers for at least one shard")
        return delivery.list_undelivered(limit, per_destination, self.clock(), shard_count, tuple(shards))

    @store_method
    def begin_delivery(self, job_id: int) -> Operation[DeliveryIntent | None]:
        return delivery.begin_delivery(job_id, self.clock())

    @store_method
    def record_delivery(self, job_id: int, message_ids: Sequence[int]) -> Operation[bool]:
        return delivery.record_delivery(job_id, tuple(message_ids), self.clock())

    @store_method
    def postpone_delivery(
        self, job_id: int, reason: str, *, first_delay: float, max_delay: float, not_before: float = 0.0
    ) -> Operation[DeliveryRecord]:
        """A temporary failure (429, 5xx, the network): counted, and the job held back for a delay that doubles
        with each failure, from ``first_delay`` up to ``max_delay`` (never less than ``not_before``)."""
        if first_delay <= 0 or max_delay < first_delay or not_before < 0:
            raise InvalidInput("a delivery back-off needs 0 < first_delay <= max_delay and not_before >= 0")
        return delivery.postpone_delivery(
            job_id, reason, self.clock(), first_delay=first_delay, max_delay=max_delay, not_before=not_before
        )

    @store_method
    def end_delivery(
        self, job_id: int, outcome: DeliveryOutcome, reason: str, message_ids: Sequence[int] = ()
    ) -> Operation[DeliveryRecord]:
        """End a delivery that posted none of its results (refused for good, or given up), with the reason and
        the IDs of any notice posted in their place."""
        return delivery.end_delivery(job_id, DeliveryOutcome(outcome), reason, tuple(message_ids), self.clock())

    @store_method
    def delivery_record(self, job_id: int) -> Operation[DeliveryRecord | None]:
        return delivery.delivery_record(job_id)

    @store_method
    def is_delivered(self, job_id: int) -> Operation[bool]:
        return delivery.is_delivered(job_id)

    @store_method
    def delivered_messages(self, job_id: int) -> Operation[tuple[int, ...] | None]:
        return delivery.delivered_messages(job_id)


def _check_inputs(inputs: Sequence[JobInput]) -> None:
    if len(inputs) > MAX_INPUTS:
        raise InvalidInput(f"a job takes at most {MAX_INPUTS} files (got {len(inputs)})")
    if sorted(item.index for item in inputs) != list(range(len(inputs))):
        raise InvalidInput("the files of a job must be numbered 0, 1, 2, … without gaps")
    for item in inputs:
        if not item.data or len(item.data) > MAX_INPUT_BYTES:
            raise InvalidInput(f"file {item.name!r} must hold between 1 byte and {MAX_INPUT_BYTES // (1024 * 1024)} MB")
