"""A thread that renews the running job's lease and says the worker is alive.

It has its own store connection, so a long model call on the main thread (which releases the GIL in
torch) never delays the lease. If the lease turns out to be lost, or someone canceled the job, it tells
the job's monitor, and the model code stops at its next step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from storyloom.errors import StoreError
from storyloom.queue.store import JobStore
from storyloom.worker.monitor import JobMonitor

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        open_store: Callable[[], JobStore],
        worker_id: str,
        *,
        interval: float,
        models: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._open_store = open_store
        self._worker_id = worker_id
        self._interval = interval
        self._models = models
        self._monitor: JobMonitor | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():  # a worker that failed before starting it must still report that failure
            self._thread.join(timeout=max(5.0, self._interval * 2))

    def watch(self, monitor: JobMonitor | None) -> None:
        """Renew the lease of ``monitor``'s job from now on (None: the worker is idle)."""
        with self._lock:
            self._monitor = monitor

    def _run(self) -> None:
        try:
            store = self._open_store()
        except StoreError as exc:
            logger.error("heartbeat cannot open the job store: %s", exc)
            return
        try:
            while not self._stop.is_set():
                self._beat(store)
                self._wake.wait(self._interval)
                self._wake.clear()
        finally:
            store.close()

    def _beat(self, store: JobStore) -> None:
        with self._lock:
            monitor = self._monitor
        try:
            reply = store.heartbeat(self._worker_id, monitor.job_id if monitor else None, self._models())
        except StoreError as exc:
            logger.warning("heartbeat failed (will retry): %s", exc)
            return
        if monitor is not None:
            monitor.absorb(reply)
