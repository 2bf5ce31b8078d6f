"""The job store for the bot's event loop: the same operations and SQL as ``JobStore``.

``AsyncJobStore.open(target)`` picks the backend like ``JobStore.open``: :class:`AsyncSqliteJobStore` (aiosqlite)
or ``storyloom.queue.postgres.store.AsyncPostgresJobStore`` (psycopg's async pool). Every method returns a
coroutine (see ``storyloom.queue.api.StoreMethod``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storyloom.config import Config, QueueConfig, is_postgres_url
from storyloom.queue import driver
from storyloom.queue.api import Clock, StoreApi
from storyloom.queue.operation import Operation
from storyloom.queue.ops import setup
from storyloom.queue.schema import Migration, load_migrations
from storyloom.queue.store import prepare_path

T = TypeVar("T")


class AsyncJobStore(StoreApi):
    """What every async store offers: the shared methods of :class:`StoreApi`, each returning a coroutine."""

    @classmethod
    async def open(
        cls,
        target: Path | str,
        settings: QueueConfig | None = None,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> AsyncJobStore:
        """Open (creating and migrating if needed) the store at ``target``; ``StoreError`` with one clear line
        when it cannot be used."""
        settings = settings or QueueConfig()
        if is_postgres_url(target):
            from storyloom.queue.postgres.store import AsyncPostgresJobStore

            return await AsyncPostgresJobStore.connect(str(target), settings, clock=clock, migrations=migrations)
        sqlite_class = cls if issubclass(cls, AsyncSqliteJobStore) else AsyncSqliteJobStore
        return await sqlite_class.open_file(target, settings, clock=clock, migrations=migrations)

    @classmethod
    async def from_config(cls, config: Config) -> AsyncJobStore:
        return await cls.open(config.database, config.queue)

    def _run(self, op: Operation[T]) -> Coroutine[Any, Any, T]:
        return self._to_the_end(op)

    async def _to_the_end(self, op: Operation[T]) -> T:
        # An operation is one transaction that must end (COMMIT or ROLLBACK) on its connection even when the
        # caller is cancelled: a driver keeps running a statement after its await is cancelled, so a cancel
        # mid-transaction would otherwise leave the connection inside it. The caller still sees the cancel.
        task = asyncio.ensure_future(self._run_transaction(op))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            raise

    async def _run_transaction(self, op: Operation[T]) -> T:
        """Run ``op`` as one transaction on this backend."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> AsyncJobStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncSqliteJobStore(AsyncJobStore):
    """The SQLite store on aiosqlite. Operations on one store are serialized by a lock, because a transaction
    spans several awaits and two coroutines must not interleave statements in it."""

    def __init__(
        self, connection: aiosqlite.Connection, settings: QueueConfig, *, where: str, clock: Clock = time.time
    ) -> None:
        self._connection = connection
        self.settings = settings
        self.where = where
        self.clock = clock
        self._translate = driver.translator(where, settings.busy_timeout_ms)
        self._lock = asyncio.Lock()

    @classmethod
    async def open_file(
        cls,
        path: Path | str,
        settings: QueueConfig,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> AsyncSqliteJobStore:
        where = prepare_path(path)
        translate = driver.translator(where, settings.busy_timeout_ms)
        try:
            connection = await aiosqlite.connect(where, timeout=settings.busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise (translate(exc) or exc) from exc
        connection.row_factory = sqlite3.Row
        store = cls(connection, settings, where=where, clock=clock)
        try:
            await store._run(setup.configure(settings.busy_timeout_ms))
            migrations = load_migrations() if migrations is None else migrations
            # Only take the write lock when there is something to migrate: opening a busy store must work.
            if await store._run(setup.schema_version(migrations, where)) < len(migrations):
                await store._run(setup.migrate(migrations, where))
        except BaseException:
            await connection.close()
            raise
        return store

    @property
    def connection(self) -> aiosqlite.Connection:
        """The underlying connection, for diagnostics (tests use it to simulate a full disk)."""
        return self._connection

    async def _run_transaction(self, op: Operation[T]) -> T:
        async with self._lock:
            return await driver.run_async(self._connection, op, self._translate)

    async def close(self) -> None:
        await self._connection.close()
