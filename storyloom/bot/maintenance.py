"""Keeping the job store's size in hand while the bot runs, so a server's disk does not fill up unattended.

The bot is the one process every deployment runs (``storyloom run``, ``--bot-only`` beside workers elsewhere),
so it applies the retention rules, every ``queue.maintenance_interval_seconds`` and once at start:

- finished jobs (with their results, inputs and delivery records) are removed ``queue.retention_days`` after
  they finished;
- a user whose finished jobs store more than ``queue.max_user_storage_mb`` loses their oldest results first,
  down to the bound. Only results already posted (or never meant to be) whose job nothing waiting or running
  works on are removed: new requests are never refused for it, and a button on a removed result says that the
  job no longer exists.

Each step deletes a few jobs in one short transaction and pauses before the next, so workers' heartbeats and
claims get the write lock in between. Shrinking the file (VACUUM) is never done here: ``storyloom queue purge
--vacuum`` does it, when asked and no job is running. Beside a SQLite store the loop also keeps the disk reserve
(``storyloom.queue.disk_reserve``) in place, which lets that purge work on a full disk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from storyloom.bot.loops import PeriodicLoop
from storyloom.config import QueueConfig
from storyloom.errors import StoreError
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.disk_reserve import ensure_reserve

logger = logging.getLogger(__name__)

BATCH_PAUSE_SECONDS = 0.05
MB = 1024 * 1024


@dataclass(frozen=True)
class Removed:
    """What one maintenance pass removed."""

    expired: int = 0  # jobs past the retention age
    over_storage: int = 0  # jobs of users above the storage bound


class MaintenanceLoop(PeriodicLoop):
    expected = (StoreError,)
    skipped = "store maintenance paused"
    failed = "store maintenance failed; trying again later"

    def __init__(
        self,
        store: AsyncJobStore,
        settings: QueueConfig,
        *,
        database_file: Path | None = None,
        pause: float = BATCH_PAUSE_SECONDS,
    ) -> None:
        """``database_file``: the SQLite store's file, beside which the disk reserve is kept (None: no reserve)."""
        super().__init__(settings.maintenance_interval_seconds)
        self._store = store
        self._settings = settings
        self._database_file = database_file
        self._pause = pause

    async def run_once(self) -> Removed:
        """Apply the retention age, then the per-user storage bound."""
        expired = 0
        while not self._stop.is_set() and (batch := await self._store.purge()):
            expired += batch
            await asyncio.sleep(self._pause)
        over = await self._bound_users()
        # Stored files (LoRAs, photos) nothing refers to any more once their jobs and characters are gone.
        files = 0
        while not self._stop.is_set() and (batch := await self._store.purge_blobs()):
            files += batch
            await asyncio.sleep(self._pause)
        if self._database_file is not None and self._settings.disk_reserve_mb:
            await asyncio.to_thread(ensure_reserve, self._database_file, self._settings.disk_reserve_mb * MB)
        if expired or over or files:
            logger.info(
                "store maintenance removed %d job(s) older than %d day(s), %d job(s) of users above %d MB "
                "and %d stored file(s) nothing refers to",
                expired, self._settings.retention_days, over, self._settings.max_user_storage_mb, files,
            )  # fmt: skip
        return Removed(expired, over)

    async def _bound_users(self) -> int:
        if not self._settings.max_user_storage_mb:
            return 0
        limit = self._settings.max_user_storage_mb * MB
        removed = 0
        for user_id, used in await self._store.users_over_storage(limit):
            while used > limit and not self._stop.is_set():
                chosen = []
                for job_id, size in await self._store.removable_results(user_id):
                    if used <= limit:
                        break
                    chosen.append(job_id)
                    used -= size
                deleted = await self._store.delete_finished(chosen) if chosen else 0
                if not deleted:  # the rest is still to be posted or in use: it stays, above the bound for now
                    break
                removed += deleted
                await asyncio.sleep(self._pause)
        return removed
