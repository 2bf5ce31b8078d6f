"""Run an :class:`~storyloom.queue.operation.Operation` on a connection: blocking or async, same semantics.

One transaction per operation (see ``Mode``); any exception rolls it back, so a failed enqueue or a full
disk never leaves half a job behind. SQLite errors a user can act on become ``StoreError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from storyloom.queue.operation import Mode, Operation, Query, Rows, Steps
from storyloom.queue.sqlite_errors import store_error

T = TypeVar("T")

Translate = Callable[[sqlite3.Error], Exception | None]


def _advance(steps: Steps[T], rows: Rows | None) -> tuple[bool, Query | T]:
    """Feed ``rows`` to the operation; (True, result) when it finished, else (False, next query)."""
    try:
        return False, (next(steps) if rows is None else steps.send(rows))
    except StopIteration as stop:
        return True, stop.value


def run(connection: sqlite3.Connection, op: Operation[T], translate: Translate) -> T:
    try:
        if op.mode is not Mode.AUTOCOMMIT:
            connection.execute(op.mode.value)
        try:
            done, value = _advance(op.steps, None)
            while not done:
                done, value = _advance(op.steps, connection.execute(value.sql, value.params).fetchall())
            if op.mode is not Mode.AUTOCOMMIT:
                connection.execute("COMMIT")
            return value
        except BaseException:
            _rollback(connection)
            raise
        finally:
            op.steps.close()
    except sqlite3.Error as exc:
        raise (translate(exc) or exc) from exc


async def run_async(connection: Any, op: Operation[T], translate: Translate) -> T:
    """``connection`` is an ``aiosqlite.Connection``; each query is one hop to its thread."""
    try:
        if op.mode is not Mode.AUTOCOMMIT:
            await connection.execute(op.mode.value)
        try:
            done, value = _advance(op.steps, None)
            while not done:
                rows = list(await connection.execute_fetchall(value.sql, value.params))
                done, value = _advance(op.steps, rows)
            if op.mode is not Mode.AUTOCOMMIT:
                await connection.execute("COMMIT")
            return value
        except BaseException:
            if connection.in_transaction:
                try:
                    await connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back (it does after some errors, e.g. a full disk)
            raise
        finally:
            op.steps.close()
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
