"""``storyloom queue list|cancel|retry|purge|migrate-store``: look at and manage the job queue from a terminal."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storyloom.config import Config

if TYPE_CHECKING:
    from collections.abc import Callable

    from storyloom.queue.job import Job, QueuePosition
    from storyloom.queue.postgres.from_sqlite import TableProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser("queue", help="list, cancel, retry or purge jobs")
    actions = parser.add_subparsers(dest="queue_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="waiting and running jobs (with --all, finished ones too)")
    listing.add_argument("--all", action="store_true", help="include finished jobs")
    listing.add_argument("--user", type=int, default=None, help="only this user's jobs")
    listing.add_argument("--limit", type=int, default=50, help="at most this many jobs (newest first)")
    add_common_options(listing)
    listing.set_defaults(handler=list_command)

    cancel = actions.add_parser("cancel", help="cancel a waiting job, or stop a running one")
    cancel.add_argument("job_id", type=int, metavar="ID")
    add_common_options(cancel)
    cancel.set_defaults(handler=cancel_command)

    retry = actions.add_parser("retry", help="queue a failed or canceled job again (as a new job)")
    retry.add_argument("job_id", type=int, metavar="ID")
    add_common_options(retry)
    retry.set_defaults(handler=retry_command)

    purge = actions.add_parser(
        "purge", help="delete finished jobs and their results after a while, then training files nothing needs"
    )
    purge.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="default: queue.retention_days")
    purge.add_argument("--vacuum", action="store_true", help="also shrink the database file (slow on big files)")
    add_common_options(purge)
    purge.set_defaults(handler=purge_command)

    migrate = actions.add_parser(
        "migrate-store",
        help="copy this machine's job store (a SQLite file) into an empty PostgreSQL database, for several hosts",
        description="Copy every job, result, setting and character (with its LoRA file) into an empty PostgreSQL "
        "database in one transaction: all of it or, after a failure, nothing. Stop storyloom on this machine "
        "first. The password comes from PGPASSWORD or ~/.pgpass.",
    )
    migrate.add_argument("sqlite_path", type=Path, metavar="SQLITE_PATH", help="the store file, e.g. data/storyloom.db")
    migrate.add_argument("postgres_url", metavar="POSTGRES_URL", help="postgresql://user@host:port/database")
    add_common_options(migrate)
    migrate.set_defaults(handler=migrate_store_command)


def _store(config: Config):
    from storyloom.queue.store import JobStore

    return JobStore.from_config(config)


def list_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.queue.job import JobStatus

    statuses = tuple(JobStatus) if args.all else (JobStatus.QUEUED, JobStatus.RUNNING)
    with _store(config) as store:
        jobs = store.list_jobs(statuses, user_id=args.user, limit=args.limit)
        positions = store.positions()
    if not jobs:
        print("no jobs" if args.all else "no jobs waiting or running")
        return 0
    now = time.time()
    rows = [("ID", "STATUS", "USER", "KIND", "AGE", "POSITION")]
    for job in jobs:
        age = format_age(now - job.created_at)
        rows.append(
            (str(job.id), str(job.status), str(job.user_id), str(job.kind), age, describe(job, positions.get(job.id)))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def describe(job: Job, position: QueuePosition | None) -> str:
    """``#2, ~40s``; ``step 12/30``; or how it ended."""
    from storyloom.queue.job import JobStatus

    if job.status is JobStatus.QUEUED and position is not None and position.position:
        eta = f", ~{format_age(position.eta_seconds)}" if position.eta_seconds is not None else ""
        return f"#{position.position}{eta}"
    if job.status is JobStatus.RUNNING:
        step = f"step {job.progress.step}/{job.progress.total}" if job.progress.total else "starting"
        return step + (" (cancel requested)" if job.cancel_requested else "")
    if job.error is not None:
        return job.error.message[:60]
    return "-"


def format_age(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def cancel_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.queue.job import JobStatus

    with _store(config) as store:
        job = store.cancel(args.job_id)
    if job.status is JobStatus.RUNNING:
        print(f"job {job.id} is running; asked it to stop")
    else:
        print(f"job {job.id} is {job.status}")
    return 0


def retry_command(config: Config, args: argparse.Namespace) -> int:
    with _store(config) as store:
        job = store.retry(args.job_id)
    print(f"job {args.job_id} queued again as job {job.id}")
    return 0


def purge_command(config: Config, args: argparse.Namespace) -> int:
    """Deleting comes first, a few jobs per transaction: it needs next to no free space (a full disk is when
    this command is needed most; when there is none at all, the disk reserve the bot keeps beside a SQLite store
    is given up to make some) and never holds the write lock long. Shrinking the file comes last, only when
    asked and only while no job is running: VACUUM needs free space and holds the write lock throughout."""
    from storyloom.characters.cleanup import sweep
    from storyloom.errors import StoreFull

    data_dir = config.paths.data_dir
    days = config.queue.retention_days if args.older_than is None else args.older_than
    try:
        store, removed = purge_even_on_a_full_disk(config, days)
    except StoreFull:
        print(NOTHING_DELETED.format(where=config.database_path), file=sys.stderr)
        return 1
    with store:
        print(f"removed {removed} job(s) that finished more than {days:g} day(s) ago")
        stored = in_batches(lambda: store.purge_blobs(days))
        if stored:
            print(f"removed {stored} stored file(s) (LoRAs, photos) nothing refers to any more")
        # Purged jobs no longer keep their photos and outputs: remove what nothing needs now.
        files = sweep(store, data_dir, retention_days=config.queue.retention_days)
        if files:
            print(f"removed {len(files)} training folder(s) nothing needs any more:")
            for removal in files:
                print(f"  {removal.describe(data_dir)}")
        if args.vacuum:
            return vacuum(store, config)
    return 0


def purge_even_on_a_full_disk(config: Config, days: float):
    """The open store and how many jobs were purged. On a full disk (opening can need space too, to bring the
    schema up to date) the disk reserve is given up once and everything tried again; ``StoreFull`` when even
    that is not enough."""
    from storyloom.config import is_postgres_url
    from storyloom.errors import StoreFull
    from storyloom.queue.disk_reserve import release_reserve

    try:
        return _open_and_purge(config, days)
    except StoreFull:
        freed = 0 if is_postgres_url(config.database) else release_reserve(config.database_path)
        if not freed:
            raise
        print(f"the disk is full: removed the {freed / (1024 * 1024):.0f} MB kept in reserve to delete with")
    return _open_and_purge(config, days)


def _open_and_purge(config: Config, days: float):
    store = _store(config)
    try:
        return store, purge_in_batches(store, days)
    except BaseException:
        store.close()
        raise


PURGE_PAUSE_SECONDS = 0.05  # between batches, so that waiting heartbeats and claims take the write lock
NOTHING_DELETED = (
    "storyloom queue purge: nothing could be deleted because the disk holding {where} is completely full "
    "(even deleting needs a little free space for the database's journal). Free some space on that disk (for "
    "example move old files or the model cache elsewhere), then run `storyloom queue purge` again"
)


def purge_in_batches(store, days: float) -> int:
    return in_batches(lambda: store.purge(days))


def in_batches(step: Callable[[], int]) -> int:
    """Run ``step`` (one batch of deletions, giving how many it removed) until it removes nothing, pausing
    between batches so that workers get the write lock; the total removed."""
    removed = 0
    while batch := step():
        removed += batch
        time.sleep(PURGE_PAUSE_SECONDS)
    return removed


def vacuum(store, config: Config) -> int:
    from storyloom.errors import StoreFull

    running = store.running_count()
    if running:
        print(
            f"storyloom queue purge: the database file was not shrunk: {running} job(s) are running, and shrinking "
            "holds the write lock longer than their workers may wait to renew their leases. Run `storyloom queue "
            "purge --vacuum` again when no job is running (the freed space is reused by new jobs meanwhile)",
            file=sys.stderr,
        )
        return 1
    try:
        store.vacuum()
    except StoreFull:
        size = config.database_path.stat().st_size if config.database_path.exists() else 0
        print(
            "storyloom queue purge: the database file could not be shrunk because shrinking needs free disk space "
            f"about the size of the file ({size / (1024 * 1024):.0f} MB); the freed space is reused by new jobs "
            "meanwhile. Free some space and run `storyloom queue purge --vacuum` again",
            file=sys.stderr,
        )
        return 1
    print("shrank the database file")
    return 0


def migrate_store_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.paths import from_data_dir
    from storyloom.queue.postgres.errors import describe
    from storyloom.queue.postgres.from_sqlite import copy_sqlite_store

    print(f"copying {args.sqlite_path} into {describe(args.postgres_url)}", flush=True)
    copied = copy_sqlite_store(
        args.sqlite_path,
        args.postgres_url,
        config.queue,
        lora_file=lambda recorded: from_data_dir(recorded, config.paths.data_dir),
        progress=print_table_progress,
    )
    print(f"copied {copied.total_rows:,} rows of {len(copied.rows)} tables (schema version {copied.schema_version})")
    if copied.loras_stored:
        print(f"stored the LoRA files of {len(copied.loras_stored)} character(s) in the database: "
              + ", ".join(copied.loras_stored))  # fmt: skip
    if copied.loras_missing:
        print(f"no LoRA file found for {len(copied.loras_missing)} character(s); they can draw only where their "
              f"file is: {'; '.join(copied.loras_missing)}")  # fmt: skip
    print("Now point every host at it, in config.toml:")
    print(f'  [queue]\n  database = "{url_without_password(args.postgres_url)}"')
    print("or STORYLOOM_QUEUE__DATABASE in the environment; the password goes in PGPASSWORD or ~/.pgpass.")
    return 0


def print_table_progress(progress: TableProgress) -> None:
    if progress.done:
        print(f"  {progress.table:<16} {progress.copied:>12,} rows", flush=True)
    elif progress.copied:
        print(f"  {progress.table:<16} {progress.copied:>12,} of {progress.total:,} rows...", flush=True)


def url_without_password(url: str) -> str:
    """``url`` as it may be written into a config file: the password (if any) left out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    user_info, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return urlunsplit(parts._replace(netloc=f"{user_info.split(':', 1)[0]}@{host}"))
