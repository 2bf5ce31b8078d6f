"""Progress and cancellation for the one job a worker is running.

``progress()`` is called by the model code every step; it writes at most one update per
``worker.progress_interval`` (the bot edits a message at most every two seconds anyway), with a small JPEG
preview. ``should_cancel()`` is also called every step, so it must be cheap: it answers from flags set by
progress writes and heartbeats, and otherwise re-reads the job's cancel flag at most every
``CANCEL_POLL_SECONDS`` (one indexed point read, tens of microseconds; a denoising step is far longer).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable

from storyloom.errors import StoreError
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.queue.job import HeartbeatReply
from storyloom.queue.store import JobStore

logger = logging.getLogger(__name__)

# A cancel is seen within this long (plus one step); a shorter poll would cost every running job a store query
# per step on a database many workers share, for no difference a person can notice.
CANCEL_POLL_SECONDS = 0.1
PREVIEW_SIDE = 256
PREVIEW_QUALITY = 70


def preview_jpeg(image: object, side: int = PREVIEW_SIDE) -> bytes:
    """A small JPEG of a PIL image: a few KB, cheap to store on every progress write."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    small = image.convert("RGB")
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


class JobMonitor:
    def __init__(
        self,
        store: JobStore,
        job_id: int,
        worker_id: str,
        *,
        interval: float,
        shutdown: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.job_id = job_id
        self._worker_id = worker_id
        self._interval = interval
        self._shutdown = shutdown
        self._clock = clock
        self._last_write = float("-inf")
        self._last_check = clock()
        # The store's connection belongs to the worker's thread; model code that reports from a helper
        # thread (a text streamer, say) gets the flags only, which the heartbeat keeps current.
        self._owner = threading.get_ident()
        self.cancel_requested = threading.Event()  # someone asked to cancel this job
        self.lease_lost = threading.Event()  # the job was given to another worker

    def progress(self, update: StepProgress) -> None:
        now = self._clock()
        if now - self._last_write < self._interval or threading.get_ident() != self._owner:
            return
        self._last_write = now
        preview = preview_jpeg(update.preview) if update.preview is not None else None
        try:
            reply = self._store.report_progress(
                self.job_id, self._worker_id, update.step, update.total, stage=update.stage, preview=preview
            )
        except StoreError as exc:  # progress is best effort; the job itself must not fail for it
            logger.warning("job %s: could not record progress: %s", self.job_id, exc)
            return
        self.absorb(reply)

    def should_cancel(self) -> bool:
        if self._shutdown.is_set() or self.cancel_requested.is_set() or self.lease_lost.is_set():
            return True
        now = self._clock()
        if now - self._last_check >= CANCEL_POLL_SECONDS and threading.get_ident() == self._owner:
            self._last_check = now
            try:
                self.absorb(self._store.cancel_state(self.job_id, self._worker_id))
            except StoreError as exc:
                logger.warning("job %s: could not check for cancellation: %s", self.job_id, exc)
        return self.cancel_requested.is_set() or self.lease_lost.is_set()

    def absorb(self, reply: HeartbeatReply) -> None:
        """Take in what a progress write, a cancel check or a heartbeat learned (any thread)."""
        if not reply.lease_held:
            self.lease_lost.set()
        elif reply.cancel_requested:
            self.cancel_requested.set()
