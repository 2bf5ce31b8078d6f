"""Store logic written once, run by a blocking (sqlite3) or an async (aiosqlite) driver.

Every store operation is a generator that yields :class:`Query` objects and receives each query's rows
back; it returns its result. It never touches a connection, so the same code (and the same SQL) serves
the bot's event loop and the worker's thread, and the two stores cannot drift apart. A driver wraps the
whole generator in one transaction: ``WRITE`` operations in ``BEGIN IMMEDIATE`` (take the write lock up
front, so two workers can never read the same "next job"), ``READ`` ones in a deferred ``BEGIN`` (one
consistent snapshot under WAL), ``AUTOCOMMIT`` ones in none (pragmas).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


class Row(Protocol):
    """A result row, by column position or name (``sqlite3.Row``, and the PostgreSQL driver's rows)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


Rows = list[Row]


@dataclass(frozen=True)
class Query:
    sql: str
    params: Sequence[Any] | Mapping[str, Any] = ()


Steps = Generator[Query, Rows, T]


class Mode(enum.Enum):
    AUTOCOMMIT = None
    READ = "BEGIN"
    WRITE = "BEGIN IMMEDIATE"


@dataclass(frozen=True)
class Operation(Generic[T]):
    """``start()`` gives a fresh run of the steps, so a driver can run an operation again from the beginning
    (PostgreSQL after a lost connection or a deadlock; nothing of the failed try was committed).

    ``durable=False`` marks a write whose loss in a server crash the protocol survives (``lossy_writes``);
    PostgreSQL then commits it without waiting for the disk."""

    mode: Mode
    start: Callable[[], Steps[T]]
    durable: bool = True


def _operation(mode: Mode, *, durable: bool = True) -> Callable[[Callable[P, Steps[T]]], Callable[P, Operation[T]]]:
    def decorate(function: Callable[P, Steps[T]]) -> Callable[P, Operation[T]]:
        @functools.wraps(function)
        def make(*args: P.args, **kwargs: P.kwargs) -> Operation[T]:
            return Operation(mode, functools.partial(function, *args, **kwargs), durable)

        return make

    return decorate


reads = _operation(Mode.READ)
writes = _operation(Mode.WRITE)
# Writes whose loss in a database server crash costs nothing: a heartbeat or a progress step is superseded within
# seconds (a lost lease renewal at worst hands the job to another worker, whose results the lease check keeps).
lossy_writes = _operation(Mode.WRITE, durable=False)
autocommit = _operation(Mode.AUTOCOMMIT)  # a single statement (pragmas, one-line reads): no transaction around it


def query(sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Steps[Rows]:
    """``rows = yield from query(...)``: reads better than a bare ``yield Query(...)`` in operations."""
    return (yield Query(sql, params))


def one(sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Steps[Row | None]:
    rows = yield Query(sql, params)
    return rows[0] if rows else None


def scalar(sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Steps[Any]:
    rows = yield Query(sql, params)
    return rows[0][0] if rows else None
