"""The blocking job store: workers, the supervisor and the CLI use it.

``JobStore.open(target)`` picks the backend from ``queue.database``: a SQLite file (:class:`SqliteJobStore`, the
zero-setup default) or a ``postgresql://`` URL (``storyloom.queue.postgres.store.PostgresJobStore``, shared by
several hosts). Both run the same operations (``storyloom.queue.ops``).

One store per thread (connections are not shared across threads here); open another for a heartbeat thread.
``":memory:"`` works too and is what quick unit tests use: the same SQL as production, so there is no
in-memory fake that could disagree with it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import TypeVar

from storyloom.config import Config, QueueConfig, is_postgres_url
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
    """What every blocking store offers: the shared methods of :class:`StoreApi`, run by ``_run``, plus waiting."""

    @classmethod
    def open(
        cls,
        target: Path | str,
        settings: QueueConfig | None = None,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> JobStore:
        """Open (creating and migrating if needed) the store at ``target``; ``StoreError`` with one clear line
        when it cannot be used (locked, corrupt, foreign or newer; unreachable or refused for PostgreSQL)."""
        settings = settings or QueueConfig()
        if is_postgres_url(target):
            from storyloom.queue.postgres.store import PostgresJobStore

            return PostgresJobStore.connect(str(target), settings, clock=clock, migrations=migrations)
        sqlite_class = cls if issubclass(cls, SqliteJobStore) else SqliteJobStore
        return sqlite_class.open_file(target, settings, clock=clock, migrations=migrations)

    @classmethod
    def from_config(cls, config: Config) -> JobStore:
        return cls.open(config.database, config.queue)

    def _run(self, op: Operation[T]) -> T:
        raise NotImplementedError

    def changed(self) -> bool:
        """Whether jobs may have become claimable since the last call (cheap; never a query on the jobs)."""
        raise NotImplementedError

    def wait_for_change(self, timeout: float, stop: threading.Event) -> None:
        """Sleep up to ``timeout`` seconds, returning early when ``stop`` is set or (where the backend can tell)
        a job became claimable."""
        stop.wait(timeout)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SqliteJobStore(JobStore):
    """The store in one SQLite file in WAL mode, on one sqlite3 connection."""

    def __init__(
        self, connection: sqlite3.Connection, settings: QueueConfig, *, where: str, clock: Clock = time.time
    ) -> None:
        self._connection = connection
        self.settings = settings
        self.where = where
        self.clock = clock
        self._translate = driver.translator(where, settings.busy_timeout_ms)
        self._seen_version: int | None = None

    @classmethod
    def open_file(
        cls,
        path: Path | str,
        settings: QueueConfig,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> SqliteJobStore:
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

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for diagnostics (tests use it to simulate a full disk)."""
        return self._connection

    def _run(self, op: Operation[T]) -> T:
        return driver.run(self._connection, op, self._translate)

    def data_version(self) -> int:
        """Changes whenever another connection commits: a free way to notice new jobs without querying."""
        return self._run(setup.data_version())

    def changed(self) -> bool:
        version = self.data_version()
        changed, self._seen_version = version != self._seen_version, version
        return changed

    def close(self) -> None:
        self._connection.close()
