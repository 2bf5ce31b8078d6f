"""Queue and worker benchmarks, with real worker processes on a real SQLite file.

- ``queue_idle_gap``: a worker with instant jobs (the test handlers' ``noop``) drains 200 queued jobs; the
  gap is the next job's ``started_at`` minus the previous job's ``finished_at`` (both stamped by the
  worker), i.e. the time to commit one job's outcome and claim the next. Median, ms.
- ``queue_overhead_ratio``: a warm worker running the real ``imagine`` handler on the tiny models, from
  enqueue (``created_at``) to results committed (``finished_at``), against the bare ``Txt2Img`` call with
  the same request in this process (same model, steps, size and batch of four). Rounds alternate which
  goes first; median of per-round ratios. The worker's extra work: noticing the job, claiming it,
  progress writes with previews, PNG encoding of the grid and the images, one commit. Both sides use one
  torch thread (see ``_imagine_benchmarks``).
- ``worker_memory_growth``: resident memory of that same worker process after 200 small ``imagine`` jobs
  (1 step, 1 image, 32x32, no safety check) against after the first 20. A per-job leak would show as growth.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
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
        return [_idle_gap(Path(tmp) / "idle"), *_imagine_benchmarks(Path(tmp) / "imagine")]


# --- queue_idle_gap ----------------------------------------------------------------------------------


def _idle_gap(data_dir: Path) -> dict:
    from bench.common import median, record
    from storyloom.config import load_config
    from storyloom.queue import JobStore
    from storyloom.worker.testing import start_worker_process

    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(data_dir)}, "queue": QUEUE_SETTINGS})
    with JobStore.from_config(config) as store:
        ids = [store.enqueue("imagine", {"prompt": "noop"}, user_id=i % 5).id for i in range(IDLE_JOBS)]
        worker = start_worker_process(config, stderr=subprocess.DEVNULL)
        try:
            jobs = _wait_for(store, ids, timeout=120)
        finally:
            _stop(worker)
    ordered = sorted(jobs, key=lambda job: job.started_at)
    gaps = [(later.started_at - earlier.finished_at) * 1000 for earlier, later in zip(ordered, ordered[1:])]
    value = median(gaps)
    p90 = statistics.quantiles(gaps, n=10)[-1]
    return record("queue_idle_gap", value, "ms", "<= 20", value <= 20, jobs=len(jobs), p90_ms=round(p90, 3))


# --- queue_overhead_ratio and worker_memory_growth -----------------------------------------------------


def _imagine_benchmarks(data_dir: Path) -> list[dict]:

    import torch

    from storyloom.models.image.txt2img import Txt2Img
    from storyloom.models.runtime.tiny import make_tiny_config, shared_tiny_models
    from storyloom.queue import JobStore
    from storyloom.worker.testing import start_worker_process

    config = make_tiny_config(data_dir, shared_tiny_models(), queue=QUEUE_SETTINGS)
    # One torch thread on both sides: on a small shared machine, two-thread pools stall on each other and on
    # other processes, and that noise would swamp the few milliseconds being measured.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with JobStore.from_config(config) as store:
        worker = start_worker_process(config, handler_specs=(), environment=single, stderr=subprocess.DEVNULL)
        try:
            started = time.monotonic()
            overhead = _overhead(store, Txt2Img.from_config(config))
            overhead["seconds"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            memory = _memory_growth(store, worker.pid)
            memory["seconds"] = round(time.monotonic() - started, 1)
            return [overhead, memory]
        finally:
            _stop(worker)
            torch.set_num_threads(threads)


def _overhead(store: Any, pipeline: Any) -> dict:
    from bench.common import median, record

    def through_queue() -> float:
        (job,) = _wait_for(store, [store.enqueue("imagine", OVERHEAD_REQUEST, user_id=1).id], timeout=300)
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
        "queue_overhead_ratio", ratio, "ratio", "<= 1.10", ratio <= 1.10,
        rounds=OVERHEAD_ROUNDS, queued_s=round(median(queued), 4), bare_s=round(median(direct), 4),
        request=OVERHEAD_REQUEST,
    )  # fmt: skip


def _memory_growth(store: Any, pid: int) -> dict:
    import psutil

    from bench.common import record

    process = psutil.Process(pid)

    def run_jobs(count: int) -> None:
        ids = [store.enqueue("imagine", SMALL_REQUEST, user_id=2).id for _ in range(count)]
        _wait_for(store, ids, timeout=600)

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


def _wait_for(store: Any, ids: list[int], *, timeout: float, interval: float = POLL_SECONDS) -> list:
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


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
