"""The blocking job store on one sqlite3 connection: workers, the supervisor and the CLI use it.

One store per thread (sqlite3 connections are not shared across threads here); open another for a
heartbeat thread. ``":memory:"`` works too and is what quick unit tests use: the same SQL as production,
so there is no in-memory fake that could disagree with it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TypeVar

from storyloom.config import Config, QueueConfig
from storyloom.queue import driver
from storyloom.queue.api import Clock, StoreApi
from storyloom.queue.operation import Operation
from storyloom.queue.ops import setup
from storyloom.queue.schema import Migration, load_migrations

T = TypeVar("T")

MEMORY = ":memory:"


def prepare_path(path: Path | str) -> str:
    """The path as SQLite wants it, with its directory created (a missing ``data/`` is not an error)."""
    if str(path) == MEMORY:
        return MEMORY
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class JobStore(StoreApi):
    def __init__(
        self, connection: sqlite3.Connection, settings: QueueConfig, *, where: str, clock: Clock = time.time
    ) -> None:
        self._connection = connection
        self.settings = settings
        self.where = where
        self.clock = clock
        self._translate = driver.translator(where, settings.busy_timeout_ms)

    @classmethod
    def open(
        cls,
        path: Path | str,
        settings: QueueConfig | None = None,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> JobStore:
        """Open (creating if needed) and migrate; ``StoreError`` for a locked, corrupt, foreign or newer file."""
        settings = settings or QueueConfig()
        where = prepare_path(path)
        translate = driver.translator(where, settings.busy_timeout_ms)
        try:
            connection = sqlite3.connect(where, timeout=settings.busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise (translate(exc) or exc) from exc
        connection.row_factory = sqlite3.Row
        store = cls(connection, settings, where=where, clock=clock)
        try:
            store._run(setup.configure(settings.busy_timeout_ms))
            migrations = load_migrations() if migrations is None else migrations
            # Only take the write lock when there is something to migrate: opening a busy store must work.
            if store._run(setup.schema_version(migrations, where)) < len(migrations):
                store._run(setup.migrate(migrations, where))
        except BaseException:
            connection.close()
            raise
        return store

    @classmethod
    def from_config(cls, config: Config) -> JobStore:
        return cls.open(config.database_path, config.queue)

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for diagnostics (tests use it to simulate a full disk)."""
        return self._connection

    def _run(self, op: Operation[T]) -> T:
        return driver.run(self._connection, op, self._translate)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
