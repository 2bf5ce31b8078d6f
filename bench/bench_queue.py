"""Queue and worker benchmarks, with real worker processes on a real SQLite file.

- ``queue_idle_gap``: a worker with instant jobs (the test handlers' ``noop``) drains 200 queued jobs; the
  gap is the next job's ``started_at`` minus the previous job's ``finished_at`` (both stamped by the
  worker), i.e. the time to commit one job's outcome and claim the next. Median, ms.
- ``queue_overhead_ratio``: a warm worker running the real ``imagine`` handler on the tiny models, from
  enqueue (``created_at``) to results committed (``finished_at``), against the bare ``Txt2Img`` call with
  the same request in this process (same model, steps, size and batch of four). Rounds alternate which
  goes first; median of per-round ratios. The worker's extra work: noticing the job, claiming it,
  progress writes with previews, PNG encoding of the grid and the images, one commit. Both sides use one
  torch thread (see ``_imagine_worker``).
- ``worker_memory_growth``: resident memory of that same worker process after 200 small ``imagine`` jobs
  (1 step, 1 image, 32x32, no safety check) against after the first 20. A per-job leak would show as growth.

``bench_postgres`` measures the first two with the store on PostgreSQL, through ``idle_gap`` and ``overhead_ratio``.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

IDLE_JOBS = 200
OVERHEAD_ROUNDS = 7
# The benchmark looks at the store this often; finished_at is stamped by the worker, so a slower look does
# not change the measurement, while a fast one would take CPU from the torch threads being measured.
POLL_SECONDS = 0.05
MEMORY_EARLY, MEMORY_LATE = 20, 200
OVERHEAD_REQUEST = {"prompt": "a red fox in the snow", "seed": 1234, "num_inference_steps": 4, "num_images": 2}
SMALL_REQUEST = {
    "prompt": "a red fox", "num_inference_steps": 1, "num_images": 1, "width": 32, "height": 32, "safety_checker": False,
}  # fmt: skip
QUEUE_SETTINGS = {"max_waiting_per_user": 1000, "max_waiting_total": 1000, "heartbeat_seconds": 1.0}


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        return [idle_gap("queue_idle_gap", Path(tmp) / "idle"), *_imagine_benchmarks(Path(tmp) / "imagine")]


# --- queue_idle_gap ----------------------------------------------------------------------------------


def idle_gap(name: str, data_dir: Path, database: str | None = None) -> dict:
    """``queue_idle_gap`` on the store at ``database`` (default: a SQLite file in ``data_dir``)."""
    from bench.common import median, record
    from storyloom.config import load_config
    from storyloom.queue import JobStore
    from storyloom.worker.testing import start_worker_process

    queue = {**QUEUE_SETTINGS, "database": database} if database else QUEUE_SETTINGS
    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(data_dir)}, "queue": queue})
    with JobStore.from_config(config) as store:
        ids = [store.enqueue("imagine", {"prompt": "noop"}, user_id=i % 5).id for i in range(IDLE_JOBS)]
        worker = start_worker_process(config, stderr=subprocess.DEVNULL)
        try:
            jobs = wait_for_jobs(store, ids, timeout=120)
        finally:
            stop_process(worker)
    ordered = sorted(jobs, key=lambda job: job.started_at)
    gaps = [(later.started_at - earlier.finished_at) * 1000 for earlier, later in zip(ordered, ordered[1:])]
    value = median(gaps)
    p90 = statistics.quantiles(gaps, n=10)[-1]
    return record(name, value, "ms", "<= 20", value <= 20, jobs=len(jobs), p90_ms=round(p90, 3))


# --- queue_overhead_ratio and worker_memory_growth -----------------------------------------------------


def _imagine_benchmarks(data_dir: Path) -> list[dict]:
    with _imagine_worker(data_dir) as (store, worker, pipeline):
        started = time.monotonic()
        overhead = _overhead("queue_overhead_ratio", store, pipeline)
        overhead["seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        memory = _memory_growth(store, worker.pid)
        memory["seconds"] = round(time.monotonic() - started, 1)
        return [overhead, memory]


def overhead_ratio(name: str, data_dir: Path, database: str) -> dict:
    """``queue_overhead_ratio`` with the store at ``database``."""
    with _imagine_worker(data_dir, database) as (store, _, pipeline):
        started = time.monotonic()
        overhead = _overhead(name, store, pipeline)
        overhead["seconds"] = round(time.monotonic() - started, 1)
        return overhead


@contextmanager
def _imagine_worker(data_dir: Path, database: str | None = None) -> Iterator[tuple[Any, subprocess.Popen, Any]]:
    """The store, a worker process with the real handlers on the tiny models, and the bare ``Txt2Img``."""
    import torch

    from storyloom.models.image.txt2img import Txt2Img
    from storyloom.models.runtime.tiny import make_tiny_config, shared_tiny_models
    from storyloom.queue import JobStore
    from storyloom.worker.testing import start_worker_process

    queue = {**QUEUE_SETTINGS, "database": database} if database else QUEUE_SETTINGS
    config = make_tiny_config(data_dir, shared_tiny_models(), queue=queue)
    # One torch thread on both sides: on a small shared machine, two-thread pools stall on each other and on
    # other processes, and that noise would swamp the few milliseconds being measured.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with JobStore.from_config(config) as store:
        worker = start_worker_process(config, handler_specs=(), environment=single, stderr=subprocess.DEVNULL)
        try:
            yield store, worker, Txt2Img.from_config(config)
        finally:
            stop_process(worker)
            torch.set_num_threads(threads)


def _overhead(name: str, store: Any, pipeline: Any) -> dict:
    from bench.common import median, record

    def through_queue() -> float:
        (job,) = wait_for_jobs(store, [store.enqueue("imagine", OVERHEAD_REQUEST, user_id=1).id], timeout=300)
        return job.finished_at - job.created_at

    def bare() -> float:
        start = time.perf_counter()
        pipeline(**OVERHEAD_REQUEST)
        return time.perf_counter() - start

    through_queue()  # warm: the worker loads the models on its first job
    bare()
    queued, direct = [], []
    for index in range(OVERHEAD_ROUNDS):
        if index % 2 == 0:
            queued.append(through_queue())
            direct.append(bare())
        else:
            direct.append(bare())
            queued.append(through_queue())
    ratio = median([q / d for q, d in zip(queued, direct)])
    return record(
        name, ratio, "ratio", "<= 1.10", ratio <= 1.10,
        rounds=OVERHEAD_ROUNDS, queued_s=round(median(queued), 4), bare_s=round(median(direct), 4),
        request=OVERHEAD_REQUEST,
    )  # fmt: skip


def _memory_growth(store: Any, pid: int) -> dict:
    import psutil

    from bench.common import record

    process = psutil.Process(pid)

    def run_jobs(count: int) -> None:
        ids = [store.enqueue("imagine", SMALL_REQUEST, user_id=2).id for _ in range(count)]
        wait_for_jobs(store, ids, timeout=600)

    run_jobs(MEMORY_EARLY)
    early = process.memory_info().rss
    run_jobs(MEMORY_LATE - MEMORY_EARLY)
    late = process.memory_info().rss
    ratio = late / early
    return record(
        "worker_memory_growth", ratio, "ratio", "<= 1.10", ratio <= 1.10,
        rss_mb={str(MEMORY_EARLY): round(early / 2**20, 1), str(MEMORY_LATE): round(late / 2**20, 1)},
        handler="imagine on the tiny models (1 step, 1 image, 32x32, no safety check)",
    )  # fmt: skip


# --- helpers ---------------------------------------------------------------------------------------------


def wait_for_jobs(store: Any, ids: list[int], *, timeout: float, interval: float = POLL_SECONDS) -> list:
    """The jobs once all have finished; all must have succeeded for a measurement to mean anything."""
    from storyloom.queue import JobStatus
    from storyloom.worker.testing import wait_until

    def all_finished() -> bool:
        return store.get(ids[-1]).is_finished and all(store.get(i).is_finished for i in ids)

    wait_until(all_finished, timeout, interval=interval, what="the jobs")
    jobs = [store.get(i) for i in ids]
    failed = [job for job in jobs if job.status is not JobStatus.SUCCEEDED]
    if failed:
        raise RuntimeError(f"job {failed[0].id} ended {failed[0].status}: {failed[0].error}")
    return jobs


def stop_process(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
