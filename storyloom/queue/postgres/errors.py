"""PostgreSQL failures a server owner can act on, as one line that names the server and never its password."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from storyloom.errors import StoreError, StoreFull

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_CONNECTION_LOST_CLASSES = ("08", "57P")  # connection exception; operator intervention (shutdown, restart)
_INVALID_PASSWORD = "28P01"
_INVALID_AUTHORIZATION = "28000"
_UNKNOWN_DATABASE = "3D000"
_DISK_FULL = "53100"
_OUT_OF_MEMORY = "53200"
_TOO_MANY_CONNECTIONS = "53300"
_READ_ONLY = "25006"

_PASSWORD_IN_URL = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@")


def describe(url: str) -> str:
    """``PostgreSQL user@host:port/database``: enough to find the server, nothing secret."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return f"PostgreSQL at {redact(url)}"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = parts.get("user")
    database = parts.get("dbname") or user or "postgres"
    return f"PostgreSQL {f'{user}@' if user else ''}{host}:{port}/{database}"


def redact(text: str) -> str:
    """``text`` with the password of any PostgreSQL URL in it replaced by ``***``."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def is_connection_lost(exc: BaseException, connection: psycopg.Connection | psycopg.AsyncConnection | None) -> bool:
    """Whether ``exc`` means the connection is gone (server restart, network, killed backend): worth reconnecting."""
    if connection is not None and (connection.closed or connection.broken):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.OperationalError) and (not state or state.startswith(_CONNECTION_LOST_CLASSES))


def connect_error(exc: psycopg.Error, where: str, secret: str | None) -> StoreError:
    """The one line for a failed connection attempt at start-up."""
    state = exc.sqlstate or ""
    if state == _INVALID_PASSWORD or "password authentication failed" in str(exc):
        reason = "the server refused the user name or password (set the password in PGPASSWORD or ~/.pgpass)"
    elif state == _INVALID_AUTHORIZATION:
        reason = "the server does not allow this user to connect (check pg_hba.conf and the user name)"
    elif state == _UNKNOWN_DATABASE or "does not exist" in str(exc):
        reason = "the database does not exist (create it with `createdb`, or fix the name in the URL)"
    elif state == _TOO_MANY_CONNECTIONS:
        reason = "the server has no free connections (raise max_connections or run fewer processes)"
    else:
        reason = _first_reason(str(exc))
    return StoreError(_scrub(f"cannot use the job database {where}: {reason}", secret))


def store_error(exc: psycopg.Error, where: str, secret: str | None) -> StoreError | None:
    """The ``StoreError`` for a failure during an operation, or None when it is a bug (re-raised as is)."""
    state = exc.sqlstate or ""
    if state == _DISK_FULL:
        return StoreFull(
            f"the job database {where} could not be written because the server's disk is full; nothing was saved. "
            "Free space on the database server (for example with `storyloom queue purge`) and try again"
        )
    if state == _OUT_OF_MEMORY:
        return StoreError(f"the job database {where} ran out of memory; try again in a moment")
    if state == _READ_ONLY:
        return StoreError(
            f"the job database {where} is read-only (a standby server?); point queue.database at the primary"
        )
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(_scrub(f"the job database {where} failed: {_first_reason(str(exc))}", secret))
    return None


def _first_reason(message: str) -> str:
    """libpq's message without its multi-line hints: the part after the last ``FATAL:`` or ``failed:``."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    for marker in ("FATAL:", "ERROR:", "failed:"):
        if marker in line:
            line = line.rsplit(marker, 1)[1].strip()
    line = line.split(" Is the server running")[0].strip()
    return line.rstrip(".") or "the server could not be reached"


def _scrub(text: str, secret: str | None) -> str:
    text = redact(text)
    return text.replace(secret, "***") if secret else text
