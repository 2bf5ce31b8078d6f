"""Keeps one worker process per device alive.

- A worker that exits or is killed is restarted after a delay that doubles with each quick failure
  (``worker.restart_backoff_seconds`` up to ``worker.restart_backoff_max_seconds``; it resets once a worker
  has stayed up that long). Its jobs are handed back at once (a crash costs the job an attempt) instead of
  waiting for the lease to expire.
- On ``stop()`` (SIGTERM/SIGINT in the CLI) each worker gets SIGTERM, hands its running job back to the
  queue without losing an attempt, and exits. A worker that does not exit in time is killed and its jobs
  are handed back the same way. Nothing is lost.
- If the supervisor itself is killed, its workers notice that their parent changed and stop after their
  current job, so a restarted supervisor never ends up with twice the workers on one device.
- It is also the watchdog of its workers' jobs: a job running longer than its kind's limit (``[time_limits]``),
  or still running ``time_limits.cancel_grace`` seconds after someone canceled it, has hung (its heartbeat
  thread keeps renewing the lease whatever the job does), so its worker is killed, the job is failed (or
  canceled) with a message saying why, and the worker is started again. If ``run`` fails, its workers are
  stopped on the way out.

It runs in the foreground of whatever owns it (``storyloom worker --devices``, ``storyloom run``) and uses
no signals itself, so it can also run in a thread.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from storyloom.config import Config
from storyloom.errors import StoreError
from storyloom.queue.job import Job, JobError
from storyloom.queue.store import JobStore
from storyloom.queue.transitions import InvalidTransition, LeaseLost
from storyloom.worker.identity import WorkerIdentity, host_prefix
from storyloom.worker.spawn import worker_command, worker_environment

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
WATCHDOG_SECONDS = 0.5  # how often running jobs are compared with their time limits


@dataclass
class Slot:
    """One device's worker: the process running now (if any) and when to start the next one."""

    index: int
    device: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    quick_failures: int = 0
    restarts: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def worker_id(self) -> str | None:
        return None if self.process is None else WorkerIdentity.for_child(self.device, self.process.pid).id


class Supervisor:
    def __init__(
        self,
        config: Config,
        devices: Sequence[str],
        *,
        handler_specs: Sequence[str] = (),
        open_store: Callable[[], JobStore] | None = None,
        command: Callable[[str], list[str]] | None = None,
        environment: Mapping[str, str] | None = None,
        shutdown_timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if not devices:
            raise ValueError("a supervisor needs at least one device")
        self.config = config
        self.slots = [Slot(index, device) for index, device in enumerate(devices)]
        self._open_store = open_store or (lambda: JobStore.from_config(config))
        self._command = command or (lambda device: worker_command(device, handler_specs))
        self._environment = worker_environment(os.environ, config, environment)
        # Long enough for a worker to reach its next step and hand the job back.
        self._shutdown_timeout = (
            shutdown_timeout if shutdown_timeout is not None else max(10.0, config.queue.lease_seconds)
        )
        self.stop_event = stop or threading.Event()
        self._cancel_seen: dict[int, float] = {}  # job → when the watchdog first saw it canceled

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        """Supervise until ``stop()``; then shut the workers down and return."""
        store = self._open_store()  # refuses a corrupt/newer database before any worker is started
        try:
            try:
                next_watch = 0.0
                while not self.stop_event.is_set():
                    now = time.monotonic()
                    for slot in self.slots:
                        if slot.process is None:
                            if now >= slot.next_start:
                                self._start(slot)
                        elif slot.process.poll() is not None:
                            self._reap(store, slot, now)
                    if now >= next_watch:
                        next_watch = now + WATCHDOG_SECONDS
                        self._watch_jobs(store)
                    self.stop_event.wait(POLL_SECONDS)
            finally:
                self._shutdown(store)  # also when supervising failed: no worker is left without its supervisor
        finally:
            store.close()

    def _start(self, slot: Slot) -> None:
        slot.process = subprocess.Popen(self._command(slot.device), env=self._environment)
        slot.started_at = time.monotonic()
        slot.pids.append(slot.process.pid)
        logger.info("started worker %s (pid %d) on %s", slot.worker_id, slot.process.pid, slot.device)

    def _reap(self, store: JobStore, slot: Slot, now: float) -> None:
        assert slot.process is not None
        code = slot.process.returncode
        worker_id = slot.worker_id or ""
        crashed = code != 0
        self._hand_back(store, worker_id, crashed=crashed)
        backoff = self.config.worker
        if now - slot.started_at >= backoff.restart_backoff_max_seconds:
            slot.quick_failures = 0
        delay = min(backoff.restart_backoff_seconds * 2**slot.quick_failures, backoff.restart_backoff_max_seconds)
        slot.quick_failures += 1
        slot.restarts += 1
        slot.next_start = now + delay
        slot.process = None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        logger.warning("worker %s %s; restarting in %.1f s", worker_id, how, delay)

    def _watch_jobs(self, store: JobStore) -> None:
        """Stop the jobs of this supervisor's workers that ran past their time limit or ignored a cancel."""
        workers = {
            slot.worker_id: slot for slot in self.slots if slot.process is not None and slot.process.poll() is None
        }
        if not workers:
            return
        try:
            running = [job for job in store.running_on_host(host_prefix()) if job.worker_id in workers]
        except StoreError as exc:
            logger.warning("could not check the running jobs' time limits: %s", exc)
            return
        now = store.clock()
        limits = self.config.time_limits
        self._cancel_seen = {job.id: self._cancel_seen.get(job.id, now) for job in running if job.cancel_requested}
        for job in running:
            slot = workers[job.worker_id]
            limit = limits.for_kind(job.kind.value)
            if job.started_at is not None and now - job.started_at > limit:
                message = (
                    f"this job ran longer than the time limit for {job.kind} jobs ({_duration(limit)}) and was "
                    "stopped; try again, or ask the server owner to raise the limit"
                )
                self._kill_stuck(store, slot, job, JobError(message, "TimeLimitExceeded"))
            elif job.id in self._cancel_seen and now - self._cancel_seen[job.id] > limits.cancel_grace:
                self._kill_stuck(store, slot, job, None)

    def _kill_stuck(self, store: JobStore, slot: Slot, job: Job, error: JobError | None) -> None:
        """Kill ``slot``'s worker, then fail ``job`` with ``error`` (None: it was canceled and is now); the main
        loop reaps the worker and starts another."""
        assert slot.process is not None
        worker_id = slot.worker_id or ""
        why = "ignored its cancellation" if error is None else "ran past its time limit"
        logger.error("job %s (%s) %s; killing worker %s (pid %d)", job.id, job.kind, why, worker_id, slot.process.pid)
        slot.process.kill()
        slot.process.wait()
        self._cancel_seen.pop(job.id, None)
        try:
            if error is None:
                store.mark_canceled(job.id, worker_id)
            else:
                store.fail(job.id, worker_id, error)
        except (StoreError, LeaseLost, InvalidTransition) as exc:
            logger.error("could not record how job %s ended (%s); its lease will expire", job.id, exc)

    def _hand_back(self, store: JobStore, worker_id: str, *, crashed: bool) -> None:
        try:
            released = store.release_worker(worker_id, crashed=crashed)
        except StoreError as exc:
            logger.error("could not hand back the jobs of worker %s (%s); their leases will expire", worker_id, exc)
            return
        for job in released:
            logger.warning("job %s of worker %s is now %s", job.id, worker_id, job.status)

    def _shutdown(self, store: JobStore) -> None:
        running = [
            (slot, slot.process) for slot in self.slots if slot.process is not None and slot.process.poll() is None
        ]
        for _, process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._shutdown_timeout
        for slot, process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker %s did not stop in time; killing it", slot.worker_id)
                process.kill()
                process.wait()
        for slot in self.slots:
            if slot.process is not None:
                # Stopped on purpose: whatever it still held goes back without costing an attempt.
                self._hand_back(store, slot.worker_id or "", crashed=False)
                slot.process = None
        logger.info("all workers stopped")


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"
