"""The schema as numbered SQL files in ``migrations/``, ``NNNN_name.sql``; migration N takes the schema version
(``PRAGMA user_version`` in SQLite, the ``storyloom_schema`` table in PostgreSQL) from N-1 to N.

Files are read when a store opens (no import-time work). Each file is split into statements so the
whole upgrade runs inside one transaction: ``executescript`` would commit half-way.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


POSTGRES_MIGRATIONS = "postgresql"  # the PostgreSQL twin of each migration, in a folder of ``migrations/``


def load_migrations(directory: Path | None = None, *, dialect: str = "sqlite") -> tuple[Migration, ...]:
    """Migrations in order, checked to be numbered 1..N without gaps (a gap would skip schema).

    ``dialect="postgresql"`` reads the PostgreSQL twins: the same versions, the same tables, its own types."""
    root = resources.files(__package__).joinpath("migrations") if directory is None else directory
    if dialect == POSTGRES_MIGRATIONS:
        root = root.joinpath(POSTGRES_MIGRATIONS)
    found = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.name} is out of sequence (expected number {expected:04d})")
    return tuple(found)


def split_statements(script: str) -> list[str]:
    """Complete SQL statements of ``script``, comments and blank lines dropped."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]!r}")
    return statements
