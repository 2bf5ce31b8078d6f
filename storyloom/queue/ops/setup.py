"""Connection settings and schema migrations, run every time a store opens."""

from __future__ import annotations

from storyloom.errors import StoreError
from storyloom.queue import sql
from storyloom.queue.operation import Steps, autocommit, query, reads, scalar, writes
from storyloom.queue.schema import Migration

APPLICATION_ID = 1398033485  # 'STLM', written by migration 0001


@autocommit
def configure(busy_timeout_ms: int) -> Steps[None]:
    yield from query(sql.set_busy_timeout(busy_timeout_ms))
    yield from query(sql.FOREIGN_KEYS_ON)
    yield from query(sql.JOURNAL_WAL)  # answers "memory" for ":memory:", which is fine
    yield from query(sql.SYNCHRONOUS_NORMAL)


@reads
def schema_version(migrations: tuple[Migration, ...], where: str) -> Steps[int]:
    """The file's schema version, after checking it is a storyloom file this code understands."""
    return (yield from _checked_version(migrations, where))


@writes
def migrate(migrations: tuple[Migration, ...], where: str) -> Steps[int]:
    """Bring the file to the newest schema in one transaction (checked again under the write lock, since
    another process may have migrated it meanwhile)."""
    version = yield from _checked_version(migrations, where)
    for migration in migrations[version:]:
        for statement in migration.statements():
            yield from query(statement)
        yield from query(sql.set_user_version(migration.version))
    return len(migrations)


def _checked_version(migrations: tuple[Migration, ...], where: str) -> Steps[int]:
    """Refuse files this code does not understand. Never recreates anything: a newer or foreign file is
    reported, and the user decides what to do with it."""
    version = yield from scalar(sql.USER_VERSION)
    latest = len(migrations)
    if version > latest:
        raise StoreError(
            f"the job database {where} was written by a newer storyloom (schema version {version}; this version "
            f"understands up to {latest}); upgrade storyloom or set queue.database to another file"
        )
    if version == 0:
        if (yield from scalar(sql.TABLE_COUNT)):
            raise StoreError(f"{where} is a SQLite database of another program, not a storyloom job database; "
                             "set queue.database to another file")  # fmt: skip
    elif (yield from scalar(sql.APPLICATION_ID)) != APPLICATION_ID:
        raise StoreError(f"{where} is not a storyloom job database; set queue.database to another file")
    return version


@autocommit
def data_version() -> Steps[int]:
    """Changes whenever another connection commits: a free way to notice new jobs without querying."""
    return (yield from scalar(sql.DATA_VERSION))
