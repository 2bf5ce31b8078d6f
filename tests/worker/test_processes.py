"""Real worker processes and a real supervisor on one SQLite file: crashes, kills, shutdown, contention."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from storyloom.config import Config, load_config
from storyloom.queue import JobStatus, JobStore
from storyloom.worker.identity import WorkerIdentity
from storyloom.worker.testing import RUN_LOG, start_worker_process, wait_until
from tests.support.jobs import status_becomes


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(
        None,
        environ={},
        overrides={
            "paths": {"data_dir": str(tmp_path)},
            "queue": {
                "lease_seconds": 1.0,
                "heartbeat_seconds": 0.1,
                "max_attempts": 3,
                "max_waiting_per_user": 1000,
                "max_waiting_total": 1000,
            },  # fmt: skip
            "worker": {"restart_backoff_seconds": 0.05, "restart_backoff_max_seconds": 1.0, "progress_interval": 0.1},
        },
    )


class Processes:
    """Starts worker processes for one test, with their logs in files, and kills what is left at the end."""

    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.run_log = tmp_path / "runs.log"
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, **kwargs) -> subprocess.Popen:
        with open(self.tmp_path / f"{name}.log", "wb") as log:  # the child keeps its own copy of the descriptor
            process = start_worker_process(
                self.config, environment={RUN_LOG: str(self.run_log)}, stdout=log, stderr=log, **kwargs
            )
        self.started.append(process)
        return process

    def runs(self) -> Counter:
        lines = self.run_log.read_text().splitlines() if self.run_log.exists() else []
        return Counter(int(line.split()[0]) for line in lines)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.tmp_path.glob("*.log"))
        )

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def processes(config: Config, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(config, tmp_path)
    try:
        yield procs
    finally:
        procs.close()
        print(procs.logs())  # shown by pytest only when the test failed


status_becomes = partial(status_becomes, timeout=20.0)  # worker processes take longer than in-process ones


def live_workers(store: JobStore) -> list:
    return [w for w in store.list_workers() if w.stopped_at is None]


def test_kill_9_mid_job_then_sigterm(store: JobStore, processes: Processes) -> None:
    supervisor = processes.start("supervisor", devices=["cpu"])
    job = store.enqueue("imagine", {"prompt": "sleep:1.5"}, user_id=1)
    behind = store.enqueue("imagine", {"prompt": "noop"}, user_id=1)
    wait_until(lambda: store.get(job.id).progress.step > 5, 20, what="the job to be half-way")
    victim = WorkerIdentity.parse(store.get(job.id).worker_id).pid
    os.kill(victim, signal.SIGKILL)

    done = status_becomes(store, job.id, JobStatus.SUCCEEDED)
    assert (done.attempts, done.runs) == (1, 2), processes.logs()
    assert WorkerIdentity.parse(done.worker_id).pid != victim  # the restarted worker finished it
    assert [a.name for a in store.artifacts(job.id)] == ["run.txt"]  # exactly one set of results
    assert status_becomes(store, behind.id, JobStatus.SUCCEEDED).attempts == 0
    assert processes.runs()[job.id] == 2

    # SIGTERM: the supervisor tells its worker to stop; the running job goes back without losing an attempt.
    last = store.enqueue("imagine", {"prompt": "sleep:30"}, user_id=2)
    status_becomes(store, last.id, JobStatus.RUNNING)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=20) == 0
    back = store.get(last.id)
    assert (back.status, back.attempts, back.runs) == (JobStatus.QUEUED, 0, 1)
    assert live_workers(store) == []


def test_a_job_that_kills_its_worker_every_time_fails_and_the_queue_moves_on(
    store: JobStore, processes: Processes
) -> None:
    doomed = store.enqueue("imagine", {"prompt": "crash"}, user_id=1)
    behind = [store.enqueue("imagine", {"prompt": "noop"}, user_id=user) for user in (1, 2, 3)]
    processes.start("supervisor", devices=["cpu"])
    failed = status_becomes(store, doomed.id, JobStatus.FAILED, timeout=40)
    assert failed.error.message == "this job crashed the worker 3 times"
    assert failed.attempts == 3 and processes.runs()[doomed.id] == 3
    for job in behind:
        assert status_becomes(store, job.id, JobStatus.SUCCEEDED).attempts == 0


def test_two_workers_500_jobs_none_claimed_twice_none_lost(store: JobStore, processes: Processes) -> None:
    processes.start("supervisor", devices=["cpu", "cpu"])
    wait_until(lambda: len(live_workers(store)) == 2, 20, what="two workers")
    ids = [store.enqueue("imagine", {"prompt": "sleep:0.01"}, user_id=i % 13).id for i in range(500)]
    wait_until(lambda: store.list_jobs() == [], 60, interval=0.1, what="the queue to drain")
    jobs = store.list_jobs(tuple(JobStatus), limit=1000)
    assert sorted(job.id for job in jobs) == ids
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    assert {job.runs for job in jobs} == {1}
    runs = processes.runs()
    assert set(runs) == set(ids) and set(runs.values()) == {1}  # every job ran exactly once
    pids = {int(line.split()[1]) for line in processes.run_log.read_text().splitlines()}
    assert len(pids) == 2  # both workers took part


def hang_between_transactions(process: subprocess.Popen, database: Path) -> None:
    """SIGSTOP ``process`` at a moment it holds no write lock on ``database``.

    A worker hangs in model code, not inside its millisecond-long store transactions; stopped in one, it would
    keep every other process from writing until it runs again."""
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(database, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # stopped mid-write: let it finish and try again
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the worker never let go of the database's write lock")


def test_a_hung_worker_loses_its_lease_and_another_one_finishes_the_job(
    store: JobStore, processes: Processes, config: Config
) -> None:
    job = store.enqueue("imagine", {"prompt": "sleep:1.0"}, user_id=1)
    first = processes.start("first", device="cpu")
    status_becomes(store, job.id, JobStatus.RUNNING)
    hang_between_transactions(first, config.database_path)  # hangs: no heartbeat, no progress
    try:
        second = processes.start("second", device="cpu")
        done = status_becomes(store, job.id, JobStatus.SUCCEEDED)
        assert WorkerIdentity.parse(done.worker_id).pid == second.pid
        assert (done.attempts, done.runs) == (1, 2)
    finally:
        first.send_signal(signal.SIGCONT)
    # The first worker wakes up, finds its lease gone, and drops its run without writing anything.
    first_log = processes.tmp_path / "first.log"
    wait_until(lambda: "another worker took it over" in first_log.read_text(), 20, what="the first worker to give up")
    assert store.get(job.id).status is JobStatus.SUCCEEDED
    (artifact,) = store.artifacts(job.id)
    assert artifact.data.decode() == f"{job.id} {second.pid}"
    assert first.poll() is None  # still alive and ready for more work


def test_workers_do_not_outlive_a_killed_supervisor(store: JobStore, processes: Processes) -> None:
    import psutil

    supervisor = processes.start("supervisor", devices=["cpu"])
    (worker,) = wait_until(lambda: live_workers(store), 20, what="a worker")
    supervisor.kill()
    supervisor.wait()

    def gone() -> bool:
        return not psutil.pid_exists(worker.pid) or psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE

    wait_until(gone, 20, what="the orphaned worker to stop")
    assert live_workers(store) == []


def with_time_limits(config: Config, **limits: float) -> Config:
    return config.model_copy(update={"time_limits": config.time_limits.model_copy(update=limits)})


def test_hung_job_is_killed_after_its_time_limit(store: JobStore, processes: Processes, config: Config) -> None:
    processes.config = with_time_limits(config, imagine=1.5)
    hung = store.enqueue("imagine", {"prompt": "hang"}, user_id=1)
    processes.start("supervisor", devices=["cpu"])
    running = status_becomes(store, hung.id, JobStatus.RUNNING)
    failed = status_becomes(store, hung.id, JobStatus.FAILED)
    assert failed.error is not None
    assert failed.error.message.startswith("this job ran longer than the time limit for imagine jobs (1.5 seconds)")
    assert failed.finished_at - running.started_at < 10  # not left hanging until some lease or restart
    # The worker was killed and a new one took its place: the queue moves on.
    after = store.enqueue("imagine", {"prompt": "noop"}, user_id=1)
    done = status_becomes(store, after.id, JobStatus.SUCCEEDED)
    assert WorkerIdentity.parse(done.worker_id).pid != WorkerIdentity.parse(running.worker_id).pid


def test_cancel_of_a_hung_job_ends_it(store: JobStore, processes: Processes, config: Config) -> None:
    processes.config = with_time_limits(config, cancel_grace=0.5)
    hung = store.enqueue("imagine", {"prompt": "hang"}, user_id=1)
    processes.start("supervisor", devices=["cpu"])
    status_becomes(store, hung.id, JobStatus.RUNNING)
    time.sleep(0.5)  # well inside its time limit: only the cancel can end it
    assert store.cancel(hung.id).cancel_requested
    canceled = status_becomes(store, hung.id, JobStatus.CANCELED)
    assert canceled.error is None
    after = store.enqueue("imagine", {"prompt": "noop"}, user_id=1)
    assert status_becomes(store, after.id, JobStatus.SUCCEEDED).status is JobStatus.SUCCEEDED
