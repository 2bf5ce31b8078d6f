"""The store's cost as history grows, on both backends.

- ``store_history_ratio_sqlite`` and ``store_history_ratio_postgresql``: the time of one claim plus one listing of
  undelivered results (what a worker and the bot's delivery loop do all day) in a store holding 1,000,000 finished
  jobs, divided by the same in a store holding 1,000. Target ≤ 1.5 for each backend.

History is written with bulk SQL in one transaction, shaped like a real one: finished jobs (mostly succeeded, some
failed or canceled) of 5,000 users in 50 guilds and 500 channels, every tenth a story with four pages in a
thread of its own, one in twenty without a channel (the command line); every job with a channel has a delivery
record that ended with its post. The users have turns, as claims leave them. PostgreSQL's tables are then
vacuumed and analysed, as autovacuum would have done long before a table reached that size; SQLite never runs
ANALYZE (the store does not), so it plans without statistics, as it does in production.

Both stores then see the same live work: a few queued jobs from several users and a few finished results waiting
for delivery. Each round queues one job (untimed), times ``claim`` + ``list_undelivered`` (the bot's batch and
per-destination limits), then completes and delivers the claimed job (untimed), so the live work stays the same
size. Rounds alternate between the small and the large store; the ratio is of the medians. Up to 200 rounds,
fewer (never under 3) when a slow query would make the run take longer than 20 s. The median of
``positions`` (queue positions, shown while a job waits) is reported alongside, not part of the ratio.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SMALL_HISTORY = 1_000
LARGE_HISTORY = 1_000_000
WARM_ROUNDS = 2
ROUNDS = 200
# A slow query must not hold the whole benchmark run up: measuring stops after this long, but never before
# MIN_ROUNDS rounds.
MEASURE_SECONDS = 20.0
MIN_ROUNDS = 3
LIVE_QUEUED = 20
LIVE_UNDELIVERED = 10
TARGET = 1.5
USERS, GUILDS, CHANNELS = 5_000, 50, 500
WORKER_ID = "bench-history:1:cpu"
KINDS = ("imagine",)
UNIT = "ratio"
SETTINGS = {"max_waiting_per_user": 1000, "max_waiting_total": 100000}

# One history row per ``i`` (its job ID). Every tenth job is a story (i % 10 == 1) whose four pages follow it; the
# rest are single pictures. Times count up one second per job, ending a day before the benchmark runs.
_HISTORY_COLUMNS = (
    "id, kind, params, status, user_id, guild_id, channel_id, thread_id, message_id, parent_id, page_index, "
    "created_at, started_at, finished_at, attempts, runs, worker_id, error_message, error_type"
)
_HISTORY_VALUES = """
    i,
    CASE WHEN i % 10 = 1 THEN 'story' WHEN i % 10 BETWEEN 2 AND 5 THEN 'story_page' ELSE 'imagine' END,
    CASE WHEN i % 10 = 1 THEN '{{"summary": "an old story"}}' ELSE '{{"prompt": "an old picture"}}' END,
    CASE WHEN i % 50 = 0 THEN 'failed' WHEN i % 97 = 0 THEN 'canceled' ELSE 'succeeded' END,
    1000 + (i / 10) % {users},
    1 + (i / 10) % {guilds},
    CASE WHEN i % 20 = 7 THEN NULL ELSE 100000 + (i / 10) % {channels} END,
    CASE WHEN i % 10 BETWEEN 1 AND 5 THEN 200000 + i / 10 END,
    CASE WHEN i % 20 = 7 THEN NULL ELSE 300000 + i END,
    CASE WHEN i % 10 BETWEEN 2 AND 5 THEN i - i % 10 + 1 END,
    CASE WHEN i % 10 BETWEEN 2 AND 5 THEN i % 10 - 2 END,
    {start} + i, {start} + i + 1, {start} + i + 3,
    0, 1, 'bench-history:1:cpu',
    CASE WHEN i % 50 = 0 THEN 'an old failure' END,
    CASE WHEN i % 50 = 0 THEN 'InvalidInput' END
"""
_DELIVERIES = """
INSERT INTO deliveries (job_id, nonce, started_at, tries, delivered_at, message_ids, outcome, ended_at)
SELECT id, 'sl' || id, finished_at + 0.1, 1, finished_at + 0.5, '[' || (900000000 + id) || ']', 'posted',
       finished_at + 0.5
FROM jobs WHERE channel_id IS NOT NULL
"""
_TURNS = "INSERT INTO user_turns (user_id, last_served) SELECT 1000 + i, i + 1 FROM {source}"


def run() -> list[dict]:
    from bench.postgres import measured_in_fresh_database, not_measured, unavailable

    results = [_sqlite_ratio()]
    postgres = [("store_history_ratio_postgresql", UNIT, f"<= {TARGET}")]
    reason = unavailable()
    if reason:
        return [*results, not_measured(*postgres[0], reason)]
    return [*results, *measured_in_fresh_database("history", postgres, lambda url: [_postgres_ratio(url)])]


# --- filling the history ---------------------------------------------------------------------------------


def _history_select(source: str, count: int, start: int) -> str:
    values = _HISTORY_VALUES.format(users=USERS, guilds=GUILDS, channels=CHANNELS, start=start)
    return f"INSERT INTO jobs ({_HISTORY_COLUMNS}) SELECT {values} FROM {source.format(count=count)}"


def _history_start(count: int) -> int:
    return int(time.time()) - count - 86400


def _fill_sqlite(path: str, count: int) -> None:
    import sqlite3

    rows = "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) SELECT i FROM n)"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(_history_select(rows, count, _history_start(count)))
        connection.execute(_DELIVERIES)
        connection.execute(_TURNS.format(source=rows.format(count=USERS - 1)))
        connection.execute("COMMIT")
    finally:
        connection.close()


def _fill_postgres(url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        # No trigger or foreign-key checks while loading rows that are consistent by construction: the notify
        # trigger would queue a million notifications nobody listens to, and history whose every delivery has
        # ended needs none of the delivery bookkeeping the other triggers keep.
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute(_history_select("generate_series(1, {count}) AS n(i)", count, _history_start(count)))
        connection.execute(_DELIVERIES)
        connection.execute(_TURNS.format(source=f"generate_series(0, {USERS - 1}) AS n(i)"))
        connection.execute("SELECT setval('jobs_id_seq', %s)", (count,))
        connection.execute("SELECT setval('user_turns_order', %s)", (USERS,))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


# --- the live work and the measurement -------------------------------------------------------------------


def _live_work(store: Any) -> None:
    """A few queued jobs and a few results waiting for delivery, as a busy bot has at any moment."""
    for index in range(LIVE_UNDELIVERED):
        job = _enqueue(store, index)
        store.claim(WORKER_ID, KINDS)
        store.complete(job.id, WORKER_ID)
    for index in range(LIVE_QUEUED):
        _enqueue(store, index)


def _enqueue(store: Any, index: int) -> Any:
    user = 10 + index % 7
    return store.enqueue("imagine", {"prompt": "a live picture"}, user_id=user, guild_id=1, channel_id=700 + index % 3)


def _round(store: Any, index: int) -> tuple[float, float, float]:
    """Seconds of one claim, one listing of undelivered results and one look at queue positions."""
    _enqueue(store, index)
    started = time.perf_counter()
    job = store.claim(WORKER_ID, KINDS)
    claimed = time.perf_counter()
    store.list_undelivered(50, per_destination=5)
    listed = time.perf_counter()
    store.positions(None)
    positioned = time.perf_counter()
    if job is None:
        raise RuntimeError("the claim found no job although one was queued")
    store.complete(job.id, WORKER_ID)
    if store.begin_delivery(job.id) is not None:
        store.record_delivery(job.id, [1])
    return claimed - started, listed - claimed, positioned - listed


def _compare(name: str, small: Any, large: Any, backend: str, fill_seconds: float) -> dict:
    from bench.common import median, record

    times: dict[str, list[tuple[float, float, float]]] = {"small": [], "large": []}
    stores = {"small": small, "large": large}
    for store in (small, large):
        _live_work(store)
    deadline = time.monotonic() + MEASURE_SECONDS
    index = 0
    while len(times["large"]) < ROUNDS and (len(times["large"]) < MIN_ROUNDS or time.monotonic() < deadline):
        order = ("small", "large") if index % 2 == 0 else ("large", "small")
        for size in order:
            measured = _round(stores[size], index)
            if index >= WARM_ROUNDS:
                times[size].append(measured)
        index += 1

    def ms(size: str, part: int | None) -> float:
        values = [sum(t[:2]) if part is None else t[part] for t in times[size]]
        return round(median(values) * 1000, 3)

    ratio = ms("large", None) / ms("small", None)
    return record(
        name, ratio, UNIT, f"<= {TARGET}", ratio <= TARGET, plausible=[0.2, 1e5],
        backend=backend, history={"small": SMALL_HISTORY, "large": LARGE_HISTORY}, rounds=len(times["large"]),
        claim_and_list_ms={"small": ms("small", None), "large": ms("large", None)},
        claim_ms={"small": ms("small", 0), "large": ms("large", 0)},
        list_undelivered_ms={"small": ms("small", 1), "large": ms("large", 1)},
        positions_ms={"small": ms("small", 2), "large": ms("large", 2)},
        fill_seconds=round(fill_seconds, 1),
    )  # fmt: skip


def _sqlite_ratio() -> dict:
    from storyloom.config import QueueConfig
    from storyloom.queue import JobStore

    settings = QueueConfig(**SETTINGS)
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp, ExitStack() as stack:
        stores = {}
        started = time.monotonic()
        for count in (SMALL_HISTORY, LARGE_HISTORY):
            path = str(Path(tmp) / f"history-{count}.db")
            JobStore.open(path, settings).close()  # the schema, as the store creates it
            _fill_sqlite(path, count)
            stores[count] = stack.enter_context(JobStore.open(path, settings))
        filled = time.monotonic() - started
        return _compare("store_history_ratio_sqlite", stores[SMALL_HISTORY], stores[LARGE_HISTORY], "sqlite", filled)


def _postgres_ratio(url: str) -> dict:
    """Both stores in one fresh database, each in a schema of its own."""
    import psycopg

    from bench.postgres import with_schema
    from storyloom.config import QueueConfig
    from storyloom.queue import JobStore

    settings = QueueConfig(**SETTINGS)
    with ExitStack() as stack:
        stores = {}
        started = time.monotonic()
        for count in (SMALL_HISTORY, LARGE_HISTORY):
            schema = f"history_{count}"
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {schema}")
            schema_url = with_schema(url, schema)
            JobStore.open(schema_url, settings).close()
            _fill_postgres(schema_url, count)
            stores[count] = stack.enter_context(JobStore.open(schema_url, settings))
        filled = time.monotonic() - started
        return _compare(
            "store_history_ratio_postgresql", stores[SMALL_HISTORY], stores[LARGE_HISTORY], "postgresql", filled
        )
