"""``storyloom queue list|cancel|retry|purge`` through the real command-line entry point."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from storyloom.cli.main import main
from storyloom.config import QueueConfig
from storyloom.queue import JobKind, JobStatus, JobStore
from storyloom.queue.job import JobError

KINDS = [kind.value for kind in JobKind]


@pytest.fixture
def setup(tmp_path: Path):
    database = tmp_path / "jobs.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[queue]\ndatabase = "{database}"\n', encoding="utf-8")
    return config, database


def run(config: Path, *args: str) -> int:
    return main(["queue", *args, "--config", str(config)])


def test_list_shows_status_user_kind_age_and_position(setup, capsys) -> None:
    config, database = setup
    with JobStore.open(database, QueueConfig(max_waiting_per_user=10)) as store:
        running = store.enqueue("imagine", {"prompt": "x"}, user_id=11)
        waiting = [
            store.enqueue("story", {"summary": "y"}, user_id=22),
            store.enqueue("imagine", {"prompt": "z"}, user_id=11),
        ]
        store.claim("w", KINDS)
        store.report_progress(running.id, "w", 3, 30)
    assert run(config, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "USER", "KIND", "AGE", "POSITION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[str(running.id)][1:4] == ["running", "11", "imagine"] and rows[str(running.id)][5:] == ["step", "3/30"]
    assert rows[str(waiting[0].id)][1:4] == ["queued", "22", "story"] and rows[str(waiting[0].id)][5] == "#1"
    assert rows[str(waiting[1].id)][5] == "#2"


def test_cancel_retry_and_purge(setup, capsys) -> None:
    config, database = setup
    with JobStore.open(database) as store:
        queued = store.enqueue("imagine", {"prompt": "x"}, user_id=1)
        failed = store.enqueue("imagine", {"prompt": "y"}, user_id=2)
        store.claim("w", ["imagine"])
    assert run(config, "cancel", str(queued.id)) == 0  # it was claimed first, so it is running: asked to stop
    assert "asked it to stop" in capsys.readouterr().out
    assert run(config, "cancel", str(failed.id)) == 0
    assert "canceled" in capsys.readouterr().out
    assert run(config, "retry", str(failed.id)) == 0
    assert f"job {failed.id} queued again as job {failed.id + 1}" in capsys.readouterr().out

    with JobStore.open(database) as store:
        store.fail(queued.id, "w", JobError("boom"))
    old = time.time() - 40 * 86400
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (old, queued.id))
    assert run(config, "purge", "--older-than", "30", "--vacuum") == 0
    assert "removed 1 job(s)" in capsys.readouterr().out
    with JobStore.open(database) as store:
        assert {job.id for job in store.list_jobs(tuple(JobStatus))} == {failed.id, failed.id + 1}


def test_errors_are_one_line_not_a_traceback(setup, capsys) -> None:
    config, database = setup
    JobStore.open(database).close()
    assert run(config, "cancel", "999") == 2
    error = capsys.readouterr().err.strip()
    assert error == "storyloom: there is no job 999 (it may have been removed after the retention period)"
    database.write_bytes(b"not a database" * 100)
    assert run(config, "list") == 2
    assert "damaged or is not a SQLite file" in capsys.readouterr().err


def old_finished_jobs(database: Path, count: int) -> list[int]:
    """``count`` succeeded jobs that finished 40 days ago."""
    with JobStore.open(database, QueueConfig(max_waiting_per_user=1000, max_waiting_total=1000)) as store:
        ids = []
        for _ in range(count):
            job = store.enqueue("imagine", {"prompt": "x"}, user_id=1)
            store.claim("w", ["imagine"])
            ids.append(store.complete(job.id, "w").id)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE jobs SET finished_at = ?", (time.time() - 40 * 86400,))
    return ids


def test_purge_removes_many_jobs_in_batches_and_shrinks_the_file_only_when_no_job_runs(setup, capsys) -> None:
    config, database = setup
    old_finished_jobs(database, 25)
    with JobStore.open(database) as store:
        running = store.enqueue("imagine", {"prompt": "still drawing"}, user_id=2)
        store.claim("w", ["imagine"])
    assert run(config, "purge", "--older-than", "30", "--vacuum") == 1
    captured = capsys.readouterr()
    assert "removed 25 job(s)" in captured.out
    assert (
        "not shrunk: 1 job(s) are running" in captured.err and "--vacuum` again when no job is running" in captured.err
    )
    with JobStore.open(database) as store:
        assert [job.id for job in store.list_jobs(tuple(JobStatus))] == [running.id]


def test_purge_on_a_full_disk_deletes_first_and_says_what_to_do_when_even_that_fails(
    setup, capsys, monkeypatch
) -> None:
    from storyloom.errors import StoreFull

    config, database = setup
    old_finished_jobs(database, 3)

    def disk_full(*args, **kwargs):
        raise StoreFull("the job database could not be written because the disk is full; nothing was saved")

    # Shrinking needs free space; deleting went through first and is kept.
    monkeypatch.setattr(JobStore, "vacuum", disk_full)
    assert run(config, "purge", "--older-than", "30", "--vacuum") == 1
    captured = capsys.readouterr()
    assert "removed 3 job(s)" in captured.out
    assert "could not be shrunk because shrinking needs free disk space about the size of the file" in captured.err
    # Not even a delete fits: the message says what to free, instead of suggesting this same command.
    old_finished_jobs(database, 1)
    monkeypatch.setattr(JobStore, "purge", disk_full)
    assert run(config, "purge", "--older-than", "30") == 1
    error = capsys.readouterr().err
    assert "nothing could be deleted because the disk holding" in error and "Free some space on that disk" in error


@pytest.mark.parametrize("what_needs_space", ["deleting", "opening"])
def test_purge_on_a_completely_full_disk_deletes_with_the_space_kept_in_reserve(
    setup, capsys, monkeypatch, what_needs_space: str
) -> None:
    """What SQLite does on a disk with no room at all: even a delete cannot grow the write-ahead log, and opening
    cannot bring the schema up to date. The reserve is given up, and then both work."""
    from storyloom.errors import StoreFull
    from storyloom.queue.disk_reserve import ensure_reserve, reserve_path

    config, database = setup
    old_finished_jobs(database, 12)
    assert ensure_reserve(database, 1024 * 1024)

    def disk_full() -> StoreFull:
        return StoreFull("the job database could not be written because the disk is full; nothing was saved")

    if what_needs_space == "deleting":
        real_purge = JobStore.purge

        def purge(store: JobStore, *args, **kwargs) -> int:
            if reserve_path(database).exists():
                raise disk_full()
            return real_purge.__get__(store)(*args, **kwargs)

        monkeypatch.setattr(JobStore, "purge", purge)
    else:
        real_open = JobStore.from_config

        def from_config(settings) -> JobStore:
            if reserve_path(database).exists():
                raise disk_full()
            return real_open(settings)

        monkeypatch.setattr(JobStore, "from_config", staticmethod(from_config))
    assert run(config, "purge", "--older-than", "30") == 0
    out = capsys.readouterr().out
    assert "the disk is full: removed the 1 MB kept in reserve to delete with" in out
    assert "removed 12 job(s)" in out
    with JobStore.open(database) as store:
        assert store.list_jobs(tuple(JobStatus)) == []


def test_heartbeats_get_the_write_lock_between_purge_batches(setup) -> None:
    """A worker's heartbeat that will not wait at all (busy timeout 0) still renews its lease while a long purge
    runs: the purge commits a few jobs at a time and pauses, instead of holding the write lock throughout."""
    import threading

    from storyloom.cli.queue import purge_in_batches
    from storyloom.errors import StoreError

    _, database = setup
    old_finished_jobs(database, 45)
    with JobStore.open(database) as store:
        running = store.enqueue("imagine", {"prompt": "drawing"}, user_id=2)
        store.claim("w", ["imagine"])
    started, removed = threading.Event(), []

    def purge() -> None:
        with JobStore.open(database) as purger:
            started.set()
            removed.append(purge_in_batches(purger, 30))

    renewed_mid_purge = 0  # renewals made while some of the old jobs were gone and some not yet
    with JobStore.open(database, QueueConfig(busy_timeout_ms=0)) as worker:
        thread = threading.Thread(target=purge)
        thread.start()
        started.wait(10)
        while thread.is_alive():
            try:
                renewed = worker.heartbeat("w", running.id).lease_held
            except StoreError:
                renewed = False  # the purge held the lock at that moment; the next beat tries again
            left = len(worker.list_jobs((JobStatus.SUCCEEDED,), limit=100))
            renewed_mid_purge += renewed and 0 < left < 45
            time.sleep(0.005)
        thread.join()
    assert removed == [45]
    assert renewed_mid_purge >= 1  # one transaction for all 45 would leave no moment in between
