"""Moving a one-machine install's job store (a SQLite file) into PostgreSQL, so several hosts can share it.

Both stores are opened (and so migrated) by their store classes first and must then be at the same schema
version. Every table of the PostgreSQL schema is then filled from the SQLite file's table of the same name, in
foreign-key order, all in one PostgreSQL transaction: a failure anywhere leaves the target as empty as it was.
Tables and columns are read from the catalogs, so a table a later migration adds is copied without changing
this module, and a SQLite column with no home in PostgreSQL stops the copy instead of being dropped.

Rows stream from a read snapshot of the file into ``COPY ... (FORMAT BINARY)``, one row in memory at a time, so
big artifact tables need no more memory than their largest row. Afterwards every identity sequence continues
after the highest id ever given out (for jobs that is SQLite's AUTOINCREMENT counter, so the id of a purged job,
which an old button may still carry, is never given to a new one) and the fairness turns continue after the
highest turn served, so the next claim picks the job SQLite would have picked.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from storyloom.config import QueueConfig, is_postgres_url
from storyloom.errors import InvalidInput, StoreError
from storyloom.queue import sql
from storyloom.queue.blobs import MAX_BLOB_BYTES, blob_digest
from storyloom.queue.postgres import errors
from storyloom.queue.postgres.store import _SCHEMA_TABLE, APPLICATION, JOBS_CHANNEL
from storyloom.queue.store import JobStore

PROGRESS_EVERY_ROWS = 5000
_CONNECT_TIMEOUT_SECONDS = 10
# The fairness turns: nextval() gives the next turn, so it must continue after the highest one served.
_TURN_SEQUENCE, _TURN_TABLE, _TURN_COLUMN = "user_turns_order", "user_turns", "last_served"

# The Python values each PostgreSQL type takes from SQLite, to name the column of a row that cannot be copied.
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "int2": (int,),
    "int4": (int,),
    "int8": (int,),
    "float4": (int, float),
    "float8": (int, float),
    "numeric": (int, float),
    "text": (str,),
    "varchar": (str,),
    "bytea": (bytes,),
}

# --- the target's catalog ---------------------------------------------------------------------------------

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""
_COLUMNS = """
SELECT c.relname, a.attname, a.atttypid, t.typname, format_type(a.atttypid, a.atttypmod), a.attidentity <> ''
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_PRIMARY_KEYS = """
SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = current_schema() AND i.indisprimary ORDER BY c.relname, k.position
"""
_FOREIGN_KEYS = """
SELECT DISTINCT c.relname, r.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_class r ON r.oid = k.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND k.contype = 'f'
"""
_USER_TRIGGERS = """
SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT g.tgisinternal
"""
_TARGET_VERSION = f"SELECT version FROM {_SCHEMA_TABLE} WHERE application = %s"

# --- the source file ----------------------------------------------------------------------------------------

_SOURCE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
_SOURCE_VERSION = "PRAGMA user_version"
_SOURCE_COUNTERS = "SELECT name, seq FROM sqlite_sequence"
_HAS_COUNTERS = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_name: str  # PostgreSQL's internal name (int8), for the type checks
    type_shown: str  # what people call it (bigint), for messages
    identity: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class TableProgress:
    """``copied`` of ``total`` rows of ``table`` are in the target; ``done`` once the table is complete."""

    table: str
    copied: int
    total: int
    done: bool


@dataclass(frozen=True)
class CopiedStore:
    """What was copied: rows per table (in copy order), and characters whose LoRA files moved into the store or
    could not be found on this machine."""

    schema_version: int
    rows: dict[str, int]
    loras_stored: tuple[str, ...] = ()
    loras_missing: tuple[str, ...] = ()
    where: str = ""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class _Transfer:
    """One copy under way: both connections and what has been copied so far."""

    source: sqlite3.Connection
    target: psycopg.Connection[Any]
    where: str
    progress: Callable[[TableProgress], None]
    clock: Callable[[], float]
    rows: dict[str, int] = field(default_factory=dict)


def copy_sqlite_store(
    sqlite_path: Path | str,
    url: str,
    settings: QueueConfig | None = None,
    *,
    lora_file: Callable[[str], Path] | None = None,
    progress: Callable[[TableProgress], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
) -> CopiedStore:
    """Copy the job store in the SQLite file ``sqlite_path`` into the empty PostgreSQL store at ``url``.

    ``lora_file`` finds the file a character's ``lora_path`` names on this machine (relative paths are relative
    to the data directory); LoRAs not yet in the store are stored as blobs with the copy, so every host can use
    them. ``StoreError`` or ``InvalidInput`` with one line when the copy is refused or fails (nothing copied)."""
    settings = settings or QueueConfig()
    if is_postgres_url(sqlite_path):
        raise InvalidInput(f"{errors.redact(str(sqlite_path))} is a PostgreSQL URL; give the SQLite file to copy from")
    if not is_postgres_url(url):
        raise InvalidInput(f"{url!r} is not a PostgreSQL URL; use postgresql://user@host:port/database")
    path = Path(sqlite_path).expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"there is no job store at {path} (no such file)")
    where = errors.describe(url)
    # Opening migrates: both stores reach the newest schema this code knows, or refuse with their own message.
    JobStore.open(path, settings).close()
    JobStore.open(url, settings).close()

    source = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        target = psycopg.connect(url, **_connection_options(url))
    except psycopg.Error as exc:
        source.close()
        raise errors.connect_error(exc, where, _password(url)) from None
    try:
        source.execute("BEGIN")  # one snapshot of the file for the whole copy
        _refuse_running_install(source, path, settings, clock())
        return _copy(_Transfer(source, target, where, progress, clock), path, lora_file)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the job store {path}: {exc}") from None
    finally:
        source.close()
        target.close()


def _refuse_running_install(source: sqlite3.Connection, path: Path, settings: QueueConfig, now: float) -> None:
    live = source.execute(sql.COUNT_LIVE_WORKERS, (now - settings.lease_seconds,)).fetchone()[0]
    if live:
        raise InvalidInput(
            f"{live} worker(s) of {path} reported in the last {settings.lease_seconds:g} s: stop storyloom on this "
            "machine first, so no job is queued or finished after the copy"
        )


def _copy(transfer: _Transfer, path: Path, lora_file: Callable[[str], Path] | None) -> CopiedStore:
    try:
        return _copy_checked(transfer, path, lora_file)
    except psycopg.Error as exc:  # the transaction was rolled back (or the server did it, when the connection went)
        raise StoreError(f"the copy into {transfer.where} failed, so nothing was copied: {_reason(exc)}") from None


def _copy_checked(transfer: _Transfer, path: Path, lora_file: Callable[[str], Path] | None) -> CopiedStore:
    cursor = transfer.target.cursor()
    source_version = transfer.source.execute(_SOURCE_VERSION).fetchone()[0]
    cursor.execute(_TARGET_VERSION, (APPLICATION,))
    target_version = cursor.fetchone()[0]  # type: ignore[index]
    if source_version != target_version:
        raise StoreError(
            f"the job store {path} is at schema version {source_version} and {transfer.where} at {target_version}; "
            "both must be at the same version to copy"
        )
    tables = _target_tables(cursor)
    _check_source_fits(transfer.source, tables, path, transfer.where)
    with transfer.target.transaction():
        names = [pgsql.Identifier(table.name) for table in tables]
        # No store process may write while the copy checks the target is empty and fills it.
        cursor.execute(pgsql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(pgsql.SQL(", ").join(names)))
        _refuse_non_empty(cursor, tables, transfer.where)
        with _triggers_off(cursor):
            for table in tables:
                _copy_table(transfer, cursor, table)
            stored, missing = _store_loras(transfer, cursor, lora_file) if lora_file else ((), ())
            _continue_sequences(transfer.source, cursor, tables)
        if transfer.rows.get("jobs"):  # workers already waiting on this database look at once
            cursor.execute(pgsql.SQL("NOTIFY {}").format(pgsql.Identifier(JOBS_CHANNEL)))
    return CopiedStore(int(source_version), dict(transfer.rows), stored, missing, transfer.where)


def _target_tables(cursor: psycopg.Cursor[Any]) -> list[Table]:
    """The store's tables in the target, parents before the tables whose foreign keys name them."""
    names = [name for (name,) in cursor.execute(_TABLES) if name != _SCHEMA_TABLE]
    columns: dict[str, list[Column]] = {name: [] for name in names}
    for table, name, oid, type_name, type_shown, identity in cursor.execute(_COLUMNS):
        if table in columns:
            columns[table].append(Column(name, oid, type_name, type_shown, identity))
    keys: dict[str, list[str]] = {name: [] for name in names}
    for table, column in cursor.execute(_PRIMARY_KEYS):
        if table in keys:
            keys[table].append(column)
    parents: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in cursor.execute(_FOREIGN_KEYS):
        if child in parents and parent in parents and parent != child:  # a self-reference is kept by key order
            parents[child].add(parent)
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [name for name in names if name not in ordered and parents[name] <= set(ordered)]
        if not ready:
            raise StoreError(f"the tables {sorted(set(names) - set(ordered))} refer to each other in a cycle")
        ordered.append(ready[0])
    return [Table(name, tuple(columns[name]), tuple(keys[name])) for name in ordered]


def _source_columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({_quote(table)})")]


def _check_source_fits(source: sqlite3.Connection, tables: Sequence[Table], path: Path, where: str) -> None:
    """Every table and column of the file has a home in the target: nothing is dropped on the way."""
    target = {table.name: {column.name for column in table.columns} for table in tables}
    for (name,) in source.execute(_SOURCE_TABLES).fetchall():
        if name not in target:
            raise StoreError(f"the job store {path} has a table {name!r} that {where} lacks; nothing was copied")
        extra = [column for column in _source_columns(source, name) if column not in target[name]]
        if extra:
            raise StoreError(
                f"table {name} of {path} has column(s) {', '.join(extra)} that {where} lacks; nothing was copied"
            )


def _refuse_non_empty(cursor: psycopg.Cursor[Any], tables: Sequence[Table], where: str) -> None:
    filled = []
    for table in tables:
        cursor.execute(pgsql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(pgsql.Identifier(table.name)))
        if cursor.fetchone()[0]:  # type: ignore[index]
            filled.append(table.name)
    if filled:
        raise InvalidInput(
            f"{where} already holds a job store (rows in {', '.join(filled)}); copy only into an empty database "
            "or schema, so nothing there is overwritten"
        )


@contextmanager
def _triggers_off(cursor: psycopg.Cursor[Any]) -> Iterator[None]:
    """Copying rows is not an event: the jobs trigger would send one notification per copied job, and a trigger
    that derives rows would derive them twice (its table is copied too). Turned off inside the copy's
    transaction, so a failure turns them back on with the rest of it."""
    tables = [name for (name,) in cursor.execute(_USER_TRIGGERS).fetchall()]
    for name in tables:
        cursor.execute(pgsql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(pgsql.Identifier(name)))
    yield
    for name in tables:
        cursor.execute(pgsql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(pgsql.Identifier(name)))


def _copy_table(transfer: _Transfer, cursor: psycopg.Cursor[Any], table: Table) -> None:
    present = set(_source_columns(transfer.source, table.name))
    columns = [column for column in table.columns if column.name in present]
    total = transfer.source.execute(f"SELECT COUNT(*) FROM {_quote(table.name)}").fetchone()[0]
    transfer.progress(TableProgress(table.name, 0, total, done=False))
    order = f" ORDER BY {', '.join(map(_quote, table.primary_key))}" if table.primary_key else ""
    rows = transfer.source.execute(
        f"SELECT {', '.join(_quote(c.name) for c in columns)} FROM {_quote(table.name)}{order}"
    )
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        pgsql.Identifier(table.name), pgsql.SQL(", ").join(pgsql.Identifier(c.name) for c in columns)
    )
    copied = 0
    with cursor.copy(statement) as copy:
        copy.set_types([column.type_oid for column in columns])
        for row in rows:
            try:
                copy.write_row(row)
            except Exception as exc:  # a value PostgreSQL's column type cannot hold, found while encoding it
                raise StoreError(
                    f"the copy into {transfer.where} failed, so nothing was copied: {_bad_value(table, columns, row, exc)}"
                ) from None
            copied += 1
            if copied % PROGRESS_EVERY_ROWS == 0:
                transfer.progress(TableProgress(table.name, copied, total, done=False))
    transfer.rows[table.name] = copied
    transfer.progress(TableProgress(table.name, copied, total, done=True))


def _bad_value(table: Table, columns: Sequence[Column], row: Sequence[Any], exc: Exception) -> str:
    key = {column.name: value for column, value in zip(columns, row) if column.name in table.primary_key}
    where = f"row {', '.join(f'{k}={v!r}' for k, v in key.items())} of table {table.name}" if key else table.name
    for column, value in zip(columns, row):
        allowed = _PYTHON_TYPES.get(column.type_name)
        if value is not None and allowed and not isinstance(value, allowed):
            return (
                f"{where}: column {column.name} holds {_short(value)}, which a {column.type_shown} column cannot hold"
            )
    return f"{where} cannot be stored in PostgreSQL ({type(exc).__name__}: {_short(str(exc), from_message=True)})"


def _store_loras(
    transfer: _Transfer, cursor: psycopg.Cursor[Any], lora_file: Callable[[str], Path]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Characters registered before LoRAs travelled through the store name only a file on this machine: their
    LoRAs become blobs now, so a worker on any host can draw them (a character made from a picture has no LoRA;
    its picture is a blob already)."""
    stored, missing = [], []
    pending = cursor.execute(
        "SELECT id, name, lora_path FROM characters WHERE lora_digest IS NULL AND lora_path <> '' ORDER BY id"
    ).fetchall()
    for character_id, name, lora_path in pending:
        path = lora_file(lora_path)
        if not path.is_file():
            missing.append(f"{name} ({path})")
            continue
        data = path.read_bytes()
        if len(data) > MAX_BLOB_BYTES:
            raise StoreError(f"the LoRA of character {name!r} ({path}) is larger than a stored file may be")
        digest = blob_digest(data)
        cursor.execute(
            "INSERT INTO blobs (digest, size, data, created_at) VALUES (%s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING",
            (digest, len(data), data, transfer.clock()),
        )
        cursor.execute("UPDATE characters SET lora_digest = %s WHERE id = %s", (digest, character_id))
        stored.append(name)
    return tuple(stored), tuple(missing)


def _continue_sequences(source: sqlite3.Connection, cursor: psycopg.Cursor[Any], tables: Iterable[Table]) -> None:
    """New ids after every id the file ever gave out, and new turns after every turn served."""
    counters: dict[str, int] = {}
    if source.execute(_HAS_COUNTERS).fetchone()[0]:
        counters = {name: int(seq) for name, seq in source.execute(_SOURCE_COUNTERS)}
    for table in tables:
        for column in table.columns:
            if not column.identity:
                continue
            cursor.execute(
                pgsql.SQL("SELECT COALESCE(MAX({}), 0) FROM {}").format(
                    pgsql.Identifier(column.name), pgsql.Identifier(table.name)
                )
            )
            highest = max(int(cursor.fetchone()[0]), counters.get(table.name, 0))  # type: ignore[index]
            if highest > 0:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                    (pgsql.Identifier(table.name).as_string(cursor), column.name, highest),
                )
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_TURN_SEQUENCE,))
    if cursor.fetchone()[0]:  # type: ignore[index]
        cursor.execute(
            pgsql.SQL("SELECT COALESCE(MAX({}), 0) FROM {}").format(
                pgsql.Identifier(_TURN_COLUMN), pgsql.Identifier(_TURN_TABLE)
            )
        )
        last_turn = int(cursor.fetchone()[0])  # type: ignore[index]
        if last_turn > 0:
            cursor.execute("SELECT setval(%s, %s)", (_TURN_SEQUENCE, last_turn))


def _connection_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = {"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_SECONDS}
    if "application_name" not in conninfo_to_dict(url):  # the URL's own name wins, as in the store
        options["application_name"] = APPLICATION
    return options


def _password(url: str) -> str | None:
    """The password in ``url``, to keep it out of messages (the store refused a URL it cannot read already)."""
    password = conninfo_to_dict(url).get("password")
    return str(password) if password else None


def _quote(name: str) -> str:
    """A SQLite identifier, quoted (names come from the catalogs, but a quote must not end one)."""
    return '"' + name.replace('"', '""') + '"'


def _short(value: Any, *, from_message: bool = False) -> str:
    text = value if isinstance(value, str) and from_message else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(exc: psycopg.Error) -> str:
    """PostgreSQL's own words and where in the copy it failed (``COPY jobs, line 3``), without a password."""
    diag = exc.diag
    primary = diag.message_primary or str(exc).strip().splitlines()[0]
    context = (diag.context or "").splitlines()[0] if diag.context else ""
    detail = diag.message_detail or ""
    parts = [primary.rstrip(".")] + [part.rstrip(".") for part in (detail, context) if part]
    return errors.redact("; ".join(parts))
