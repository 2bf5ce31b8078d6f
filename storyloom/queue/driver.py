"""Run an :class:`~storyloom.queue.operation.Operation` on a SQLite connection: blocking or async, same semantics.

One transaction per operation (see ``Mode``); any exception rolls it back, so a failed enqueue or a full
disk never leaves half a job behind. SQLite errors a user can act on become ``StoreError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from storyloom.queue.operation import Mode, Operation, Query, Rows, Steps
from storyloom.queue.sqlite_errors import store_error

T = TypeVar("T")

Translate = Callable[[sqlite3.Error], Exception | None]


@dataclass(frozen=True)
class _Finished(Generic[T]):
    value: T


def _advance(steps: Steps[T], rows: Rows | None) -> Query | _Finished[T]:
    """Feed ``rows`` to the operation; its next query, or its result once it finished."""
    try:
        return next(steps) if rows is None else steps.send(rows)
    except StopIteration as stop:
        return _Finished(stop.value)


def run(connection: sqlite3.Connection, op: Operation[T], translate: Translate) -> T:
    try:
        if op.mode is not Mode.AUTOCOMMIT:
            connection.execute(op.mode.value)
        steps = op.start()
        try:
            step = _advance(steps, None)
            while isinstance(step, Query):
                step = _advance(steps, connection.execute(step.sql, step.params).fetchall())
            if op.mode is not Mode.AUTOCOMMIT:
                connection.execute("COMMIT")
            return step.value
        except BaseException:
            _rollback(connection)
            raise
        finally:
            steps.close()
    except sqlite3.Error as exc:
        raise (translate(exc) or exc) from exc


async def run_async(connection: Any, op: Operation[T], translate: Translate) -> T:
    """``connection`` is an ``aiosqlite.Connection``; each query is one hop to its thread."""
    try:
        if op.mode is not Mode.AUTOCOMMIT:
            await connection.execute(op.mode.value)
        steps = op.start()
        try:
            step = _advance(steps, None)
            while isinstance(step, Query):
                rows = list(await connection.execute_fetchall(step.sql, step.params))
                step = _advance(steps, rows)
            if op.mode is not Mode.AUTOCOMMIT:
                await connection.execute("COMMIT")
            return step.value
        except BaseException:
            if connection.in_transaction:
                try:
                    await connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back (it does after some errors, e.g. a full disk)
            raise
        finally:
            steps.close()
    except sqlite3.Error as exc:
        raise (translate(exc) or exc) from exc


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (it does after some errors, e.g. a full disk)


def translator(where: str, busy_timeout_ms: int) -> Translate:
    return lambda exc: store_error(exc, where, busy_timeout_ms)
