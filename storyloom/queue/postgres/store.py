"""The job store on PostgreSQL, shared by every host: the same operations as the SQLite store.

Each operation is one transaction (``BEGIN`` for writes, a read-only repeatable-read snapshot for reads), its
statements translated by :mod:`storyloom.queue.postgres.dialect`. Connections use client-side parameter binding,
so a statement behaves as it does on SQLite (``:user_id IS NULL`` needs no type).

Faults: a lost connection (server restart, network, a killed backend) is reconnected with exponential back-off
for up to ``queue.reconnect_seconds`` and the operation runs again from its start (nothing of the failed try
was committed); a deadlock or serialization failure is retried at once. A connection that dies during
``COMMIT`` leaves the outcome unknown; running the operation again is safe for the store's operations, since
every job change is guarded by the status and lease it was read with.

Idle workers wait on ``LISTEN storyloom_jobs`` (a trigger notifies when a job becomes claimable), so a new job
is claimed within milliseconds without polling.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.numeric import FloatLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from storyloom.config import QueueConfig
from storyloom.errors import StoreError
from storyloom.queue.api import Clock
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.operation import Mode, Operation, Query, Steps
from storyloom.queue.postgres import errors
from storyloom.queue.postgres.dialect import translate
from storyloom.queue.schema import POSTGRES_MIGRATIONS, Migration, load_migrations
from storyloom.queue.store import JobStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

JOBS_CHANNEL = "storyloom_jobs"
APPLICATION = "storyloom"
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK = 1398033485
_CONNECT_TIMEOUT_SECONDS = 10
_MAX_CONFLICT_RETRIES = 20
_MAX_BACKOFF_SECONDS = 5.0
_LISTEN_SLICE_SECONDS = 0.25  # how often a waiting worker looks at its stop flag

_BEGIN = {
    Mode.AUTOCOMMIT: None,
    Mode.READ: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    Mode.WRITE: "BEGIN",
}

# Committed without waiting for the disk: a server crash may lose it, never half of it (a heartbeat, a progress step).
_NOT_DURABLE = "SET LOCAL synchronous_commit = off"

_CONFLICTS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class Row:
    """A result row by column position or name, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: Mapping[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key] if isinstance(key, int) else self._values[self._index[key]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


def _connection_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = {"autocommit": True, "row_factory": _rows, "connect_timeout": _CONNECT_TIMEOUT_SECONDS}
    try:
        named = "application_name" in conninfo_to_dict(url)
    except psycopg.Error:
        named = False
    if not named:  # the URL's own name wins: it tells one install's connections from another's
        options["application_name"] = APPLICATION
    return options


def _configure(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    # SUM over BIGINT is NUMERIC; the store's numbers are plain floats and ints, as SQLite gives them.
    connection.adapters.register_loader("numeric", FloatLoader)


def _secret(url: str) -> str | None:
    try:
        password = conninfo_to_dict(url).get("password")
        return str(password) if password else None
    except psycopg.Error:
        return None


# --- running one operation -----------------------------------------------------------------------------


def _advance(steps: Steps[T], rows: list[Row] | None) -> Query | tuple[T]:
    try:
        return next(steps) if rows is None else steps.send(rows)  # type: ignore[arg-type]
    except StopIteration as stop:
        return (stop.value,)


def _run_once(connection: psycopg.Connection[Any], op: Operation[T]) -> T:
    begin = _BEGIN[op.mode]
    cursor = psycopg.ClientCursor(connection)
    steps = op.start()
    try:
        if begin:
            cursor.execute(begin if op.durable else f"{begin}; {_NOT_DURABLE}")  # one round trip
        step = _advance(steps, None)
        while isinstance(step, Query):
            cursor.execute(translate(step.sql, op.mode), step.params)
            step = _advance(steps, cursor.fetchall() if cursor.description is not None else [])
        if begin:
            cursor.execute("COMMIT")
        return step[0]
    except BaseException:
        if begin and not connection.broken and not connection.closed:
            try:
                connection.execute("ROLLBACK")
            except psycopg.Error:
                pass  # the connection is going away; the server rolls back on its own
        raise
    finally:
        steps.close()
        cursor.close()


async def _run_once_async(connection: psycopg.AsyncConnection[Any], op: Operation[T]) -> T:
    begin = _BEGIN[op.mode]
    cursor = psycopg.AsyncClientCursor(connection)
    steps = op.start()
    try:
        if begin:
            await cursor.execute(begin if op.durable else f"{begin}; {_NOT_DURABLE}")
        step = _advance(steps, None)
        while isinstance(step, Query):
            await cursor.execute(translate(step.sql, op.mode), step.params)
            step = _advance(steps, await cursor.fetchall() if cursor.description is not None else [])
        if begin:
            await cursor.execute("COMMIT")
        return step[0]
    except BaseException:
        if begin and not connection.broken and not connection.closed:
            try:
                await connection.execute("ROLLBACK")
            except psycopg.Error:
                pass
        raise
    finally:
        steps.close()
        await cursor.close()


class _Retry:
    """When a failed try is worth another: conflicts at once, lost connections with back-off until a deadline."""

    def __init__(self, settings: QueueConfig, where: str, secret: str | None) -> None:
        self.settings = settings
        self.where = where
        self.secret = secret
        self.conflicts = 0
        self.deadline: float | None = None
        self.delay = 0.05

    def after(self, exc: psycopg.Error, lost: bool) -> float:
        """Seconds to wait before the next try; raises when there should be none."""
        if isinstance(exc, psycopg.errors.UniqueViolation) and not self.conflicts:
            # A concurrent transaction committed the same key after this one checked for it (SQLite's write lock
            # makes that impossible there): run the operation again once, and its own check sees the other row.
            self.conflicts += 1
            return 0.0
        if isinstance(exc, _CONFLICTS):
            self.conflicts += 1
            if self.conflicts > _MAX_CONFLICT_RETRIES:
                raise StoreError(f"the job database {self.where} kept aborting this change as a conflict") from exc
            return random.uniform(0, 0.01 * self.conflicts)
        if not lost:
            raise (errors.store_error(exc, self.where, self.secret) or exc) from exc
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.settings.reconnect_seconds
            logger.warning("lost the connection to the job database %s; reconnecting", self.where)
        if now >= self.deadline:
            raise StoreError(
                f"lost the connection to the job database {self.where} and could not reconnect within "
                f"{self.settings.reconnect_seconds:g} s"
            ) from None
        delay, self.delay = self.delay, min(self.delay * 2, _MAX_BACKOFF_SECONDS)
        return min(delay, self.deadline - now)


# --- schema ----------------------------------------------------------------------------------------------

_SCHEMA_TABLE = "storyloom_schema"
_VERSION = f"SELECT version FROM {_SCHEMA_TABLE} WHERE application = %s"
_TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
_OTHER_TABLES = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()"


def _schema_version(cursor: psycopg.ClientCursor[Any], latest: int, where: str) -> int:
    """The database's schema version, after checking it holds a storyloom store this code understands."""
    cursor.execute(_TABLE_EXISTS, (_SCHEMA_TABLE,))
    if not cursor.fetchone()[0]:  # type: ignore[index]
        cursor.execute(_OTHER_TABLES)
        if cursor.fetchone()[0]:  # type: ignore[index]
            raise StoreError(
                f"{where} already holds tables of another program; give storyloom its own database or schema"
            )
        return 0
    cursor.execute(_VERSION, (APPLICATION,))
    row = cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > latest:
        raise StoreError(
            f"the job database {where} was written by a newer storyloom (schema version {version}; this version "
            f"understands up to {latest}); upgrade storyloom"
        )
    return version


def _migrate(connection: psycopg.Connection[Any], migrations: tuple[Migration, ...], where: str) -> None:
    """Bring the database to the newest schema in one transaction, under an advisory lock so two hosts starting
    at once migrate it once."""
    cursor = psycopg.ClientCursor(connection)
    with connection.transaction():
        if _schema_version(cursor, len(migrations), where) == len(migrations):
            return  # the common case: read without taking the lock
    with connection.transaction():
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        version = _schema_version(cursor, len(migrations), where)
        if version == 0:
            cursor.execute(f"CREATE TABLE {_SCHEMA_TABLE} (application TEXT PRIMARY KEY, version BIGINT NOT NULL)")
            cursor.execute(f"INSERT INTO {_SCHEMA_TABLE} VALUES (%s, 0)", (APPLICATION,))
        for migration in migrations[version:]:
            cursor.execute(migration.sql.encode())  # a whole script: PostgreSQL runs it statement by statement
            cursor.execute(f"UPDATE {_SCHEMA_TABLE} SET version = %s WHERE application = %s",
                           (migration.version, APPLICATION))  # fmt: skip
    cursor.close()


def _connect(url: str, where: str, secret: str | None) -> psycopg.Connection[Any]:
    try:
        connection = psycopg.connect(url, **_connection_options(url))
    except psycopg.Error as exc:
        raise errors.connect_error(exc, where, secret) from None
    _configure(connection)
    return connection


# --- the stores ------------------------------------------------------------------------------------------


class PostgresJobStore(JobStore):
    """The blocking store on one psycopg connection (plus one for ``LISTEN`` once a worker waits)."""

    def __init__(self, url: str, settings: QueueConfig, *, clock: Clock = time.time) -> None:
        self._url = url
        self._secret = _secret(url)
        self.settings = settings
        self.where = errors.describe(url)
        self.clock = clock
        self._connection: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._notified = True  # the first look always checks

    @classmethod
    def connect(
        cls,
        url: str,
        settings: QueueConfig,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> PostgresJobStore:
        store = cls(url, settings, clock=clock)
        store._connection = _connect_and_migrate(url, store.where, store._secret, migrations)
        return store

    def _run(self, op: Operation[T]) -> T:
        retry = _Retry(self.settings, self.where, self._secret)
        while True:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = _connect(self._url, self.where, self._secret)
                return _run_once(self._connection, op)
            except StoreError:
                if self._connection is not None and not self._connection.closed:
                    raise
                wait = retry.after(psycopg.OperationalError("reconnect failed"), lost=True)
            except psycopg.Error as exc:
                lost = errors.is_connection_lost(exc, self._connection)
                if lost and self._connection is not None:
                    self._connection.close()
                wait = retry.after(exc, lost)
            time.sleep(wait)

    # --- waiting for work ------------------------------------------------------------------------------

    def _listening(self) -> psycopg.Connection[Any] | None:
        if self._listener is None or self._listener.closed:
            try:
                self._listener = psycopg.connect(self._url, **_connection_options(self._url))
                self._listener.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(JOBS_CHANNEL)))
            except psycopg.Error as exc:
                logger.warning("cannot listen for new jobs on %s: %s", self.where,
                               errors.redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
                self._listener = None
        return self._listener

    def _drain(self, timeout: float) -> bool:
        listener = self._listening()
        if listener is None:
            return True  # cannot tell: look at the store itself
        try:
            got = False
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                got = True
            if got:  # take whatever else arrived with it, without waiting
                for _ in listener.notifies(timeout=0):
                    pass
            return got
        except psycopg.Error:
            listener.close()
            return True

    def changed(self) -> bool:
        notified = self._notified or self._drain(0)
        self._notified = False
        return notified

    def wait_for_change(self, timeout: float, stop: threading.Event) -> None:
        # A NOTIFY ends the wait as soon as a job is queued, so a short poll interval only costs CPU here.
        deadline = time.monotonic() + max(timeout, _LISTEN_SLICE_SECONDS)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._drain(min(left, _LISTEN_SLICE_SECONDS)):
                self._notified = True
                return

    def close(self) -> None:
        for connection in (self._connection, self._listener):
            if connection is not None:
                connection.close()
        self._connection = self._listener = None


class AsyncPostgresJobStore(AsyncJobStore):
    """The async store on psycopg's connection pool: operations run concurrently, each on its own connection."""

    def __init__(self, url: str, pool: AsyncConnectionPool[Any], settings: QueueConfig, *, clock: Clock) -> None:
        self._url = url
        self._secret = _secret(url)
        self._pool = pool
        self.settings = settings
        self.where = errors.describe(url)
        self.clock = clock

    @classmethod
    async def connect(
        cls,
        url: str,
        settings: QueueConfig,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] | None = None,
    ) -> AsyncPostgresJobStore:
        where, secret = errors.describe(url), _secret(url)
        # One direct connection first: its failure says what is wrong; the pool would only time out.
        (await asyncio.to_thread(_connect_and_migrate, url, where, secret, migrations)).close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=4,
            open=False,
            kwargs=_connection_options(url),
            configure=_configure_async,
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=settings.reconnect_seconds or 1.0,
            name="storyloom",
        )
        await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_SECONDS)
        return cls(url, pool, settings, clock=clock)

    async def _run_transaction(self, op: Operation[T]) -> T:
        retry = _Retry(self.settings, self.where, self._secret)
        while True:
            connection = None
            try:
                async with self._pool.connection(timeout=self.settings.reconnect_seconds or None) as connection:
                    return await _run_once_async(connection, op)
            except psycopg.Error as exc:
                wait = retry.after(exc, errors.is_connection_lost(exc, connection))
            except PoolTimeout as exc:  # no connection could be made (or freed) in time
                wait = retry.after(psycopg.OperationalError(str(exc)), lost=True)
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self._pool.close()


async def _configure_async(connection: psycopg.AsyncConnection[Any]) -> None:
    _configure(connection)


def _connect_and_migrate(
    url: str, where: str, secret: str | None, migrations: tuple[Migration, ...] | None
) -> psycopg.Connection[Any]:
    """A connection to a database at the newest schema; ``StoreError`` naming the problem otherwise."""
    connection = _connect(url, where, secret)
    try:
        _migrate(connection, load_migrations(dialect=POSTGRES_MIGRATIONS) if migrations is None else migrations, where)
    except BaseException as exc:
        connection.close()
        if isinstance(exc, psycopg.Error):
            raise (errors.store_error(exc, where, secret) or exc) from exc
        raise
    return connection
