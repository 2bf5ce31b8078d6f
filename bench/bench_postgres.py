"""The job store on PostgreSQL, with real worker processes, each benchmark in a fresh database of its own.

- ``pg_scaling_efficiency``: eight worker processes (``python -m storyloom.worker`` with the test handlers, which
  never import torch) run 400 jobs that each hold a simulated GPU for 100 ms (the ``sleep:0.1`` job: ten 10 ms
  steps, with the progress write and cancellation checks a real job makes). The workers are started first and
  nothing is timed until all eight are registered and waiting on ``LISTEN``. The 400 jobs are then queued through
  ``JobStore.enqueue`` (four connections at once) while the workers are paused, so they all find a full queue;
  the clock starts as the workers are resumed and stops at the last job's ``finished_at``. Efficiency is the
  ideal time (400 × 0.1 s / 8 = 5 s) divided by that; the median of three runs. Target ≥ 0.90. Each run also
  reports the median time a job held its worker, the median gap between a worker's jobs, the CPU time per job
  of the workers and of their database connections, and the machine's load average: on a busy machine, a long
  run with unchanged CPU per job says the time went to waiting for a processor. ``bare_sleep_efficiency`` is the
  same sleeping in eight bare processes without a store or a worker, measured in the same run: the part of any
  shortfall that is the machine's.
- ``pg_dispatch_latency_ms``: the same eight workers, all idle and waiting; one ``noop`` job is queued at a time,
  and the latency is its ``started_at`` (stamped by the worker that claimed it) minus its ``created_at`` (stamped
  by the enqueuing store before its transaction), so it covers the enqueue's commit, the ``NOTIFY``, a worker
  waking and its claim. Median over 100 jobs, target ≤ 20 ms; ``pg_dispatch_latency_p99_ms`` reports the 99th
  percentile (informational: no target of its own).
- ``queue_idle_gap_postgresql`` and ``queue_overhead_ratio_postgresql``: ``queue_idle_gap`` and
  ``queue_overhead_ratio`` of ``bench_queue`` (see there) with the store on PostgreSQL; same targets.

Where no server answers, every record says so (``holds`` false, ``error`` naming the server) instead of crashing.
"""

from __future__ import annotations

import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

WORKERS = 8
SCALING_JOBS = 400
SCALING_RUNS = 3
GPU_SECONDS = 0.1
SCALING_TARGET = 0.90
ENQUEUE_CONNECTIONS = 4
USERS = 20
DISPATCH_JOBS = 100
DISPATCH_TARGET_MS = 20.0
START_TIMEOUT = 120.0
QUEUE_SETTINGS = {"max_waiting_per_user": 1000, "max_waiting_total": 10000}

# (name, unit, target) of every record, for the lines written when no server answers.
RECORDS = (
    ("pg_scaling_efficiency", "ratio", f">= {SCALING_TARGET}"),
    ("pg_dispatch_latency_ms", "ms", f"<= {DISPATCH_TARGET_MS:g}"),
    ("pg_dispatch_latency_p99_ms", "ms", "informational"),
    ("queue_idle_gap_postgresql", "ms", "<= 20"),
    ("queue_overhead_ratio_postgresql", "ratio", "<= 1.10"),
)


def run() -> list[dict]:
    from bench.bench_queue import idle_gap, overhead_ratio
    from bench.postgres import measured_in_fresh_database, not_measured, unavailable

    reason = unavailable()
    if reason:
        return [not_measured(name, unit, target, reason) for name, unit, target in RECORDS]
    pool, idle, overhead = RECORDS[:3], RECORDS[3:4], RECORDS[4:]
    with tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
        root = Path(tmp)
        return [
            *measured_in_fresh_database("workers", pool, lambda url: _worker_pool_benchmarks(root / "pool", url)),
            *measured_in_fresh_database("idle", idle, lambda url: [idle_gap(idle[0][0], root / "idle", url)]),
            *measured_in_fresh_database(
                "overhead", overhead, lambda url: [overhead_ratio(overhead[0][0], root / "overhead", url)]
            ),
        ]


# --- eight workers: scaling and dispatch -----------------------------------------------------------------


def _worker_pool_benchmarks(data_dir: Path, url: str) -> list[dict]:
    from storyloom.config import load_config
    from storyloom.queue import JobStore

    config = load_config(
        None, environ={}, overrides={"paths": {"data_dir": str(data_dir)}, "queue": {**QUEUE_SETTINGS, "database": url}}
    )
    started = time.monotonic()
    with JobStore.from_config(config) as store, _workers(config, WORKERS) as workers:
        _wait_until_listening(store, url, WORKERS)
        ready = time.monotonic() - started
        scaling = _scaling(config, store, url, workers)
        scaling["workers_ready_s"] = round(ready, 1)
        return [scaling, *_dispatch(store, url)]


def _scaling(config: Any, store: Any, url: str, workers: list[subprocess.Popen]) -> dict:
    """The median of three runs, with the figures of that run."""
    from bench.common import record

    runs = [_scaling_run(config, store, url, workers) for _ in range(SCALING_RUNS)]
    each = [round(run["efficiency"], 4) for run in runs]
    middle = dict(sorted(runs, key=lambda run: run["efficiency"])[len(runs) // 2])
    efficiency = middle.pop("efficiency")
    every_worker = all(run["workers_used"] == WORKERS for run in runs)
    bare = _bare_sleep_efficiency()
    return record(
        "pg_scaling_efficiency", efficiency, "ratio", f">= {SCALING_TARGET}",
        efficiency >= SCALING_TARGET and every_worker, plausible=[0.01, 1.05],
        workers=WORKERS, jobs=SCALING_JOBS, ideal_s=SCALING_JOBS * GPU_SECONDS / WORKERS,
        efficiency_of_each_run=each, bare_sleep_efficiency=round(bare, 4), **middle,
        job=f"sleep:{GPU_SECONDS:g} (ten 10 ms steps, with progress and cancellation checks)",
    )  # fmt: skip


def _scaling_run(config: Any, store: Any, url: str, workers: list[subprocess.Popen]) -> dict:
    """One run of the 400 jobs on the idle workers: its efficiency and where the time went.

    The jobs are queued while the workers are paused (SIGSTOP), and the clock starts as they are resumed: what is
    measured is how well eight workers share 400 jobs, not how fast one client can queue them (``enqueue_s``)."""
    from bench.bench_queue import wait_for_jobs
    from bench.common import median
    from storyloom.queue import JobStore

    _wait_until_listening(store, url, WORKERS)
    stores = [JobStore.from_config(config) for _ in range(ENQUEUE_CONNECTIONS)]
    try:
        with _paused(workers):
            enqueue_started = time.time()
            ids = _enqueue_concurrently(stores, [f"sleep:{GPU_SECONDS:g}"] * SCALING_JOBS)
            enqueued = time.time() - enqueue_started
            cpu = _CpuTime(url)
            load = os.getloadavg()[0]
            started = time.time()
    finally:
        for each in stores:
            each.close()
    jobs = wait_for_jobs(store, ids, timeout=SCALING_JOBS * GPU_SECONDS * 4 + 60)
    measured = max(job.finished_at for job in jobs) - started
    return {
        "efficiency": SCALING_JOBS * GPU_SECONDS / WORKERS / measured,
        "measured_s": round(measured, 3),
        "enqueue_s": round(enqueued, 3),
        "workers_used": len({job.worker_id for job in jobs}),
        "median_run_ms": round(median([job.finished_at - job.started_at for job in jobs]) * 1000, 2),
        "median_gap_ms": round(median(_gaps(jobs)) * 1000, 2),
        "cpu_ms_per_job": {name: round(seconds / SCALING_JOBS * 1000, 2) for name, seconds in cpu.spent().items()},
        "load_average": round(load, 2),
    }


def _bare_sleep_efficiency() -> float:
    """The same sleeping without a store: eight bare processes each sleep their share of the jobs' 10 ms steps. On
    a busy machine, sleeps overrun and this falls below 1 too; it shows how much of a shortfall is the machine's."""
    from storyloom.worker.testing import STEP_SECONDS

    steps = round(SCALING_JOBS / WORKERS * GPU_SECONDS / STEP_SECONDS)
    code = (
        "import time; start = time.monotonic()\n"
        f"for _ in range({steps}): time.sleep({STEP_SECONDS})\n"
        "print(time.monotonic() - start)"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(WORKERS)
    ]
    elapsed = [float(process.communicate(timeout=120)[0]) for process in processes]
    return SCALING_JOBS * GPU_SECONDS / WORKERS / max(elapsed)


class _CpuTime:
    """CPU seconds spent from now on by the worker processes (this process's children) and by the server's
    processes serving the benchmark's database; a busy machine shows up as a long run with unchanged CPU."""

    def __init__(self, url: str) -> None:
        import psutil

        from bench.postgres import database_name

        tag = f" {database_name(url)} "
        self._groups = {
            "workers": psutil.Process().children(),
            "database": [p for p in psutil.process_iter(["cmdline"]) if tag in " ".join(p.info["cmdline"] or ()) + " "],
        }
        self._start = {name: self._total(group) for name, group in self._groups.items()}

    @staticmethod
    def _total(processes: list) -> float:
        import psutil

        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:  # a connection that closed meanwhile
                continue
            total += times.user + times.system
        return total

    def spent(self) -> dict[str, float]:
        return {name: self._total(group) - self._start[name] for name, group in self._groups.items()}


def _dispatch(store: Any, url: str) -> list[dict]:
    from bench.bench_queue import wait_for_jobs
    from bench.common import median, record

    latencies = []
    pauses = random.Random(1)
    _wait_until_listening(store, url, WORKERS)
    for index in range(DISPATCH_JOBS):
        # Long enough for every worker to be back on LISTEN after the last job; irregular, so the enqueue does not
        # fall into step with the workers' 5 ms listen slices.
        time.sleep(pauses.uniform(0.02, 0.06))
        job = store.enqueue("imagine", {"prompt": "noop"}, user_id=index % USERS)
        (done,) = wait_for_jobs(store, [job.id], timeout=30, interval=0.005)
        latencies.append((done.started_at - done.created_at) * 1000)
    value = median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[-1]
    plausible = all(math.isfinite(x) and x >= 0 for x in latencies)
    return [
        record(
            "pg_dispatch_latency_ms", value, "ms", f"<= {DISPATCH_TARGET_MS:g}",
            plausible and value <= DISPATCH_TARGET_MS,
            jobs=DISPATCH_JOBS, idle_workers=WORKERS, p99_ms=round(p99, 3), max_ms=round(max(latencies), 3),
        ),
        record("pg_dispatch_latency_p99_ms", p99, "ms", "informational", plausible, jobs=DISPATCH_JOBS),
    ]  # fmt: skip


# --- helpers ---------------------------------------------------------------------------------------------


def _enqueue_concurrently(stores: list[Any], prompts: list[str]) -> list[int]:
    """Job IDs of ``prompts`` queued from one thread per store (each store is one connection)."""
    ids: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def enqueue(store: Any, share: list[tuple[int, str]]) -> None:
        try:
            for index, prompt in share:
                job = store.enqueue("imagine", {"prompt": prompt}, user_id=index % USERS)
                with lock:
                    ids.append(job.id)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    numbered = list(enumerate(prompts))
    threads = [
        threading.Thread(target=enqueue, args=(store, numbered[i :: len(stores)])) for i, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sorted(ids)


@contextmanager
def _workers(config: Any, count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` worker processes with the test handlers, stopped when the block ends."""
    from bench.bench_queue import stop_process
    from storyloom.worker.testing import start_worker_process

    with ExitStack() as stack:
        processes = []
        for _ in range(count):
            processes.append(start_worker_process(config, stderr=subprocess.DEVNULL))
            stack.callback(stop_process, processes[-1])
        yield processes


@contextmanager
def _paused(processes: list[subprocess.Popen]) -> Iterator[None]:
    """The processes stopped (SIGSTOP) for the block, and all resumed together when it ends."""
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)


def _wait_until_listening(store: Any, url: str, count: int) -> None:
    """Until ``count`` workers are registered and listening: with nothing queued, each is waiting on ``LISTEN``."""
    import psycopg

    from bench.postgres import database_name
    from storyloom.worker.testing import wait_until

    database = database_name(url)
    with psycopg.connect(url, autocommit=True) as connection:

        def ready() -> bool:
            (listening,) = connection.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND state = 'idle' "
                "AND query LIKE 'LISTEN %%'",
                (database,),
            ).fetchone() or (0,)
            workers = [w for w in store.list_workers() if w.stopped_at is None]
            return listening >= count and len(workers) >= count

        wait_until(ready, START_TIMEOUT, interval=0.05, what=f"{count} workers waiting for jobs")


def _gaps(jobs: list) -> list[float]:
    """Per worker, the time from one job's end to its next job's start."""
    by_worker: dict[str, list] = {}
    for job in jobs:
        by_worker.setdefault(job.worker_id, []).append(job)
    gaps = []
    for own in by_worker.values():
        own.sort(key=lambda job: job.started_at)
        gaps += [later.started_at - earlier.finished_at for earlier, later in zip(own, own[1:])]
    return gaps or [math.nan]
