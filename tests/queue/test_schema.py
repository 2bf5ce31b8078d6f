"""Schema, migrations and faults: the store refuses what it does not understand and never half-writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import StoreError
from storyloom.queue import JobStatus, JobStore
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.schema import Migration, load_migrations, split_statements

ROOT = Path(__file__).resolve().parents[2]  # the repository


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


@pytest.mark.parametrize("start", ["no file", "empty file", "version-0 SQLite file"])
def test_a_new_or_version_0_file_is_migrated_to_the_latest_schema(tmp_path: Path, start: str) -> None:
    path = tmp_path / "jobs.db"
    if start == "empty file":
        path.touch()
    elif start == "version-0 SQLite file":
        with sqlite3.connect(path) as connection:  # a real SQLite file: header written, no tables
            connection.execute("PRAGMA user_version = 0")
            connection.execute("VACUUM")
        assert path.stat().st_size > 0
    with JobStore.open(path) as store:
        store.enqueue("imagine", {"prompt": "x"}, user_id=1)
    latest = len(load_migrations())
    assert latest >= 1 and user_version(path) == latest
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "artifacts", "deliveries", "user_turns", "durations", "workers"} <= tables


def test_migrations_are_numbered_without_gaps_and_split_into_statements(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x);\n-- comment\nCREATE TABLE b (y);\n")
    (tmp_path / "0003_c.sql").write_text("CREATE TABLE c (z);\n")
    with pytest.raises(RuntimeError, match="out of sequence"):
        load_migrations(tmp_path)
    trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\nEND;\nSELECT 1;"
    first, second = split_statements(trigger)
    assert (
        first == "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\nEND;" and second == "SELECT 1;"
    )


def test_a_file_from_the_previous_version_is_upgraded_with_its_jobs(tmp_path: Path) -> None:
    """Open at version N (the current schema), then again with a migration N+1: the jobs survive it."""
    path = tmp_path / "jobs.db"
    current = load_migrations()
    with JobStore.open(path, migrations=current) as store:
        waiting = store.enqueue("imagine", {"prompt": "still here"}, user_id=1)
    assert user_version(path) == len(current)
    upgrade = Migration(
        len(current) + 1, "next.sql", "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;\n"
    )
    with JobStore.open(path, migrations=(*current, upgrade)) as store:
        assert store.get(waiting.id).params["prompt"] == "still here"
        assert store.claim("w", ["imagine"]).id == waiting.id
    assert user_version(path) == len(current) + 1
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(jobs)")}
    assert "priority" in columns


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    current = load_migrations()
    JobStore.open(path).close()
    broken = Migration(len(current) + 1, "broken.sql", "CREATE TABLE extra (x);\nTHIS IS NOT SQL;\n")
    with pytest.raises(sqlite3.OperationalError):
        JobStore.open(path, migrations=(*current, broken))
    assert user_version(path) == len(current)
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "extra" not in tables


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore.open(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer storyloom .schema version 99"):
        JobStore.open(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"this is not a database at all" * 200, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupt_file_is_refused_and_never_recreated(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="damaged or is not a SQLite file"):
        JobStore.open(path)
    assert path.read_bytes() == content


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (name)")
    with pytest.raises(StoreError, match="another program"):
        JobStore.open(path)


async def test_the_async_store_refuses_the_same_files(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="damaged"):
        await AsyncJobStore.open(path)


def test_a_locked_database_gives_a_clear_busy_error_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with JobStore.open(path, QueueConfig(busy_timeout_ms=200)) as store:
            with pytest.raises(StoreError, match=r"the job database is busy .*more than 0.2 s"):
                store.enqueue("imagine", {"prompt": "x"}, user_id=1)
            assert store.list_jobs() == []  # reads still work under WAL
        # ... and the job is simply not there once the lock is gone.
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with JobStore.open(path) as store:
        assert store.list_jobs(tuple(JobStatus)) == []


def test_a_lock_released_within_the_timeout_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: blocker.execute("COMMIT")).start()
    with JobStore.open(path, QueueConfig(busy_timeout_ms=5000)) as store:
        assert store.enqueue("imagine", {"prompt": "x"}, user_id=1).status is JobStatus.QUEUED
    blocker.close()


def test_a_full_disk_is_a_clear_error_and_leaves_no_half_written_job(tmp_path: Path) -> None:
    with JobStore.open(tmp_path / "jobs.db") as store:
        store.enqueue("imagine", {"prompt": "small"}, user_id=1)
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="disk is full; nothing was saved"):
            store.enqueue("imagine", {"prompt": "x" * 20000, "negative_prompt": "y" * 20000}, user_id=2)
        assert [job.user_id for job in store.list_jobs()] == [1]
        assert store.connection.in_transaction is False


async def test_a_full_disk_on_the_bot_side_too(tmp_path: Path) -> None:
    async with await AsyncJobStore.open(tmp_path / "jobs.db") as store:
        pages = (await (await store.connection.execute("PRAGMA page_count")).fetchone())[0]
        await store.connection.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="disk is full"):
            await store.enqueue("imagine", {"prompt": "x" * 20000, "negative_prompt": "y" * 20000}, user_id=2)
        assert await store.list_jobs() == []
        await store.connection.execute(f"PRAGMA max_page_count = {pages * 100}")
        assert (await store.enqueue("imagine", {"prompt": "fits now"}, user_id=2)).id >= 1


def test_the_queue_package_imports_neither_discord_nor_torch() -> None:
    code = (
        "import sys, storyloom.queue, storyloom.queue.async_store, storyloom.cli.queue;"
        "bad = sorted(m for m in ('torch', 'discord', 'diffusers', 'transformers') if m in sys.modules);"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_worker_with_light_handlers_does_not_import_torch_until_a_model_loads() -> None:
    code = (
        "import sys, storyloom.worker.runner, storyloom.worker.supervisor, storyloom.worker.testing, storyloom.cli.worker;"
        "from storyloom.worker.registry import build_handlers; build_handlers(['storyloom.worker.testing:handlers']);"
        "print('torch' in sys.modules, 'discord' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"
