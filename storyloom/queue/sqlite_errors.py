"""SQLite failures a user can act on, turned into one clear ``StoreError`` line.

Anything not listed here (a constraint violation, a syntax error) is a bug and is re-raised unchanged so
it is logged with its traceback.
"""

from __future__ import annotations

import sqlite3

from storyloom.errors import StoreError, StoreFull

# Primary result codes (https://sqlite.org/rescode.html); extended codes carry them in the low byte.
SQLITE_READONLY = 8
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


def store_error(exc: sqlite3.Error, where: str, busy_timeout_ms: int) -> StoreError | None:
    """The ``StoreError`` for ``exc``, or None when it is not an operational problem."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc).lower()
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in text:
        return StoreError(
            f"the job database is busy (another process kept it locked for more than {busy_timeout_ms / 1000:g} s); "
            "try again in a moment"
        )
    if code == SQLITE_FULL or "database or disk is full" in text:
        return StoreFull(
            "the job database could not be written because the disk is full; nothing was saved. "
            "Free some space (for example with `storyloom queue purge`) and try again"
        )
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT) or "not a database" in text or "malformed" in text:
        return StoreError(
            f"the job database {where} is damaged or is not a SQLite file; storyloom will not touch it. "
            "Restore it from a backup, or move it away to start with an empty queue"
        )
    if code == SQLITE_READONLY:
        return StoreError(f"the job database {where} is read-only; check the file's permissions")
    if code == SQLITE_CANTOPEN:
        return StoreError(f"the job database {where} cannot be opened; check that its directory exists and is writable")
    if code == SQLITE_IOERR:
        return StoreError(f"a disk error occurred while using the job database {where}; check the disk")
    return None
