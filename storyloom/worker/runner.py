"""The worker loop: claim a job, run its handler with warm models, record the outcome; one job at a time.

Outcomes:
- the handler returns → results, follow-ups and success in one transaction;
- ``JobCanceled`` because the worker is shutting down → the job goes back to the queue (no attempt lost);
  because a user canceled → ``canceled``; because the lease was lost → nothing (another worker has it);
- a ``StoryloomError`` → ``failed`` with its message (safe to show);
- anything else → ``failed`` with a short generic line; the traceback goes to the log and the job row.

Idle waiting costs almost nothing: the store says whether jobs may have become claimable since the last look
(SQLite: ``PRAGMA data_version`` changed; PostgreSQL: a ``NOTIFY`` arrived, which also wakes the waiting
worker at once), and only then does the worker query for work.

A worker that trains characters also removes the training files nobody needs any more
(``storyloom.characters.cleanup``): when it starts, after each ``train_subject`` job, and otherwise at most hourly,
always between jobs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace

from storyloom.characters.cleanup import sweep
from storyloom.config import Config
from storyloom.domain.paths import from_data_dir
from storyloom.errors import InvalidInput, JobCanceled, StoreError, StoryloomError
from storyloom.queue.blobs import BlobCache
from storyloom.queue.character import CharacterRecord, NewCharacter
from storyloom.queue.job import Job, JobError, JobKind
from storyloom.queue.params import validate_params
from storyloom.queue.store import JobStore
from storyloom.queue.transitions import InvalidTransition, LeaseLost
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.heartbeat import Heartbeat
from storyloom.worker.identity import WorkerIdentity, host_prefix
from storyloom.worker.monitor import JobMonitor
from storyloom.worker.resources import ModelResources

logger = logging.getLogger(__name__)

# After this long without work the poll interval grows (up to MAX_IDLE_POLL) to keep an idle worker quiet.
IDLE_RAMP_SECONDS = 10.0
MAX_IDLE_POLL = 0.25
STORE_RETRY_SECONDS = 1.0
CLEANUP_INTERVAL = 3600.0


class Worker:
    def __init__(
        self,
        config: Config,
        open_store: Callable[[], JobStore],
        handlers: Mapping[JobKind, Handler],
        resources: ModelResources,
        *,
        device: str,
        stop: threading.Event | None = None,
        max_jobs: int | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.config = config
        self.identity = WorkerIdentity.current(device)
        self.id = self.identity.id
        self._open_store = open_store
        self._handlers = dict(handlers)
        self._kinds = tuple(kind.value for kind in self._handlers)
        self.resources = resources
        # LoRAs, reference pictures and photos other hosts stored, kept on this host's disk while they are used.
        self.files = BlobCache(config.blob_cache_dir, config.queue.blob_cache_mb * 1024 * 1024)
        self.stop = stop or threading.Event()
        self._max_jobs = max_jobs
        self._parent_pid = parent_pid  # a supervised worker stops when its supervisor is gone
        self.jobs_done = 0
        self._next_sweep = 0.0
        self._idle_since: float | None = None
        self._maybe_more = True
        self._cleans_up = JobKind.TRAIN_SUBJECT in self._handlers
        self._next_cleanup = 0.0
        if config.queue.heartbeat_seconds * 2 > config.queue.lease_seconds:
            logger.warning(
                "queue.heartbeat_seconds (%g) should be well under half of queue.lease_seconds (%g), "
                "or a busy worker may lose its job to another",
                config.queue.heartbeat_seconds, config.queue.lease_seconds,
            )  # fmt: skip

    def run(self) -> None:
        store = self._open_store()
        heartbeat = Heartbeat(
            self._open_store, self.id, interval=self.config.queue.heartbeat_seconds, models=self.resources.loaded
        )
        try:
            store.register_worker(self.id, host=self.identity.host, pid=self.identity.pid, device=self.identity.device)
            self._recover_dead_neighbours(store)
            heartbeat.start()
            logger.info("worker %s ready for: %s", self.id, ", ".join(self._kinds))
            self._clean_up(store, at_once=True)
            while not self.stop.is_set():
                try:
                    job = self._next_job(store)
                except StoreError as exc:  # busy or briefly unwritable: wait and look again, don't die
                    logger.warning("worker %s cannot look for work: %s", self.id, exc)
                    self.stop.wait(STORE_RETRY_SECONDS)
                    continue
                if job is None:
                    self._clean_up(store)
                    continue
                self.run_job(store, heartbeat, job)
                self._clean_up(store, at_once=job.kind is JobKind.TRAIN_SUBJECT)
                self.jobs_done += 1
                if self._max_jobs is not None and self.jobs_done >= self._max_jobs:
                    break
        finally:
            heartbeat.stop()
            try:
                store.stop_worker(self.id)
            except StoreError as exc:
                logger.warning("could not record that worker %s stopped: %s", self.id, exc)
            store.close()
            logger.info("worker %s stopped after %d jobs", self.id, self.jobs_done)

    # --- waiting -------------------------------------------------------------------------------------

    def _next_job(self, store: JobStore) -> Job | None:
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            logger.warning("worker %s: its supervisor is gone; stopping", self.id)
            self.stop.set()
            return None
        now = time.monotonic()
        changed = store.changed()
        if self._maybe_more or changed or now >= self._next_sweep:
            # Leases expire with time, not with a commit: look at least this often even if nothing changed.
            self._next_sweep = now + min(1.0, self.config.queue.lease_seconds / 4)
            if self._maybe_more or store.has_work(self._kinds):
                job = store.claim(self.id, self._kinds)
                if job is not None:
                    self._maybe_more = True
                    self._idle_since = None
                    return job
            self._maybe_more = False
        self._idle_since = self._idle_since or now
        store.wait_for_change(self._poll_interval(now - self._idle_since), self.stop)
        return None

    def _poll_interval(self, idle: float) -> float:
        base = self.config.worker.poll_interval
        if idle < IDLE_RAMP_SECONDS:
            return base
        return min(max(base, MAX_IDLE_POLL), base * 2 ** ((idle - IDLE_RAMP_SECONDS) / IDLE_RAMP_SECONDS))

    def _recover_dead_neighbours(self, store: JobStore) -> None:
        """Leases held by processes of this host that no longer exist are returned now, not at expiry."""
        import psutil

        dead: set[str] = set()
        for job in store.running_on_host(host_prefix()):
            if job.worker_id is None:
                continue
            holder = WorkerIdentity.parse(job.worker_id)
            if holder is not None and holder.pid != self.identity.pid and not psutil.pid_exists(holder.pid):
                dead.add(job.worker_id)
        for worker_id in sorted(dead):
            released = store.release_worker(worker_id, crashed=True)
            logger.warning("recovered %d job(s) of worker %s, which is gone", len(released), worker_id)

    def _clean_up(self, store: JobStore, *, at_once: bool = False) -> None:
        """Remove training files nobody needs, if this worker trains characters, ``at_once`` or hourly."""
        if not self._cleans_up or (not at_once and time.monotonic() < self._next_cleanup):
            return
        self._next_cleanup = time.monotonic() + CLEANUP_INTERVAL
        try:
            sweep(store, self.config.paths.data_dir, retention_days=self.config.queue.retention_days)
        except Exception:
            logger.exception("worker %s could not clean up training files; trying again later", self.id)

    # --- running -------------------------------------------------------------------------------------

    def run_job(self, store: JobStore, heartbeat: Heartbeat, job: Job) -> None:
        monitor = JobMonitor(store, job.id, self.id, interval=self.config.worker.progress_interval, shutdown=self.stop)
        heartbeat.watch(monitor)
        logger.info("job %s (%s) started, run %d", job.id, job.kind, job.runs)
        try:
            result = self._call_handler(store, job, monitor)
        except JobCanceled:
            self._canceled(store, job, monitor)
        except StoryloomError as exc:
            logger.info("job %s failed: %s", job.id, exc)
            self._fail(store, job, JobError(str(exc), type(exc).__name__, traceback.format_exc()))
        except Exception as exc:
            logger.exception("job %s (%s) raised an unexpected error", job.id, job.kind)
            message = f"something went wrong while running this job ({type(exc).__name__}); the details were logged"
            self._fail(store, job, JobError(message, type(exc).__name__, traceback.format_exc()))
        except BaseException:
            self._release(store, job)  # interrupted: hand it back untouched, then let the interruption through
            raise
        else:
            self._complete(store, job, result)
        finally:
            heartbeat.watch(None)

    def _call_handler(self, store: JobStore, job: Job, monitor: JobMonitor) -> HandlerResult:
        handler = self._handlers[job.kind]
        context = JobContext(
            job=job,
            params=validate_params(job.kind, dict(job.params)),
            config=self.config,
            resources=self.resources,
            progress=monitor.progress,
            should_cancel=monitor.should_cancel,
            lookup_artifact=lambda job_id, index, kind: store.artifact(job_id, index, kind),
            lookup_character=lambda name: self._with_local_lora(store, store.character(name, guild_id=job.guild_id)),
            lookup_inputs=lambda: store.job_inputs(job.id),
            lookup_folder=lambda digest, what: self.files.folder(digest, lambda: store.blob(digest), what=what),
            lookup_story=lambda story_id: store.story_versions(story_id),
            lookup_file=lambda digest, suffix, what: self.files.file(
                digest, lambda: store.blob(digest), suffix=suffix, what=what
            ),
        )
        result = handler(context)
        if not isinstance(result, HandlerResult):
            raise TypeError(f"the {job.kind} handler returned {type(result).__name__}, not a HandlerResult")
        return result

    def _with_local_lora(self, store: JobStore, record: CharacterRecord) -> CharacterRecord:
        """``record`` with ``lora_path`` naming this host's copy of its LoRA (fetched from the store if needed)."""
        digest = record.lora_digest
        if digest is None:
            return record  # registered before LoRAs travelled through the store: only its file on disk
        path = self.files.file(
            digest, lambda: store.blob(digest), suffix=".safetensors", what=f"LoRA of character {record.name!r}"
        )
        return replace(record, lora_path=str(path))

    def _stored_characters(self, store: JobStore, characters: tuple[NewCharacter, ...]) -> tuple[NewCharacter, ...]:
        """New characters with their LoRA files copied into the store, so every host can draw them."""
        stored = []
        for character in characters:
            lora = from_data_dir(character.lora_path, self.config.paths.data_dir)
            stored.append(replace(character, lora_digest=store.put_blob(lora.read_bytes())))
        return tuple(stored)

    def _complete(self, store: JobStore, job: Job, result: HandlerResult) -> None:
        try:
            characters = self._stored_characters(store, result.characters)
            done = store.complete(job.id, self.id, result.artifacts, result.followups, characters)
        except LeaseLost as exc:
            logger.warning("job %s finished here but its results were dropped: %s", job.id, exc)
        except (InvalidInput, StoreError) as exc:
            logger.error("job %s: its results could not be saved: %s", job.id, exc)
            self._fail(
                store,
                job,
                JobError(f"the results could not be saved: {exc}", type(exc).__name__, traceback.format_exc()),
            )
        else:
            logger.info("job %s succeeded in %.2f s", job.id, done.duration or 0.0)

    def _canceled(self, store: JobStore, job: Job, monitor: JobMonitor) -> None:
        if monitor.lease_lost.is_set():
            logger.warning("job %s stopped: another worker took it over", job.id)
        elif self.stop.is_set() and not monitor.cancel_requested.is_set():
            self._release(store, job)  # shutting down: someone else runs it later
        else:
            self._guarded(lambda: store.mark_canceled(job.id, self.id), job)
            logger.info("job %s canceled", job.id)

    def _release(self, store: JobStore, job: Job) -> None:
        self._guarded(lambda: store.release(job.id, self.id), job)
        logger.info("job %s handed back to the queue", job.id)

    def _fail(self, store: JobStore, job: Job, error: JobError) -> None:
        self._guarded(lambda: store.fail(job.id, self.id, error), job)

    def _guarded(self, action: Callable[[], object], job: Job) -> None:
        """Record an outcome; if that is impossible the lease runs out and the job is retried."""
        try:
            action()
        except (LeaseLost, InvalidTransition) as exc:
            logger.warning("job %s: %s", job.id, exc)
        except StoreError as exc:
            logger.error(
                "job %s: could not record its outcome (%s); it will be retried when its lease expires", job.id, exc
            )
