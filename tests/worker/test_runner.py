"""The worker loop in-process (a thread) with the test handlers: progress, cancel, shutdown, errors, leases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storyloom.config import Config, load_config
from storyloom.errors import ConfigError, StoreError
from storyloom.queue import JobKind, JobStatus, JobStore
from storyloom.queue.store import SqliteJobStore
from storyloom.worker.registry import build_handlers, load_handlers
from storyloom.worker.resources import ModelResources, ModelSpec
from storyloom.worker.spawn import config_environment
from storyloom.worker.testing import SPEC, wait_until, worker_in_thread
from tests.support.jobs import status_becomes


def make_config(tmp_path: Path, **sections) -> Config:
    overrides = {
        "paths": {"data_dir": str(tmp_path)},
        "queue": {"lease_seconds": 2.0, "heartbeat_seconds": 0.1, "max_waiting_per_user": 100},
        "worker": {"progress_interval": 0.2},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, environ={}, overrides=overrides)


class RecordingStore(SqliteJobStore):
    """A real store that also notes when progress was written (to check the throttle)."""

    writes: list[float]

    def report_progress(self, *args, **kwargs):
        self.writes.append(time.monotonic())
        return super().report_progress(*args, **kwargs)


def running_worker(config: Config, writes: list[float] | None = None):
    def open_store() -> JobStore:
        store = RecordingStore.open(config.database_path, config.queue)
        store.writes = writes if writes is not None else []
        return store

    return worker_in_thread(config, open_store=open_store)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


def test_progress_is_throttled_and_carries_a_small_jpeg_preview(config: Config, store: JobStore) -> None:
    writes: list[float] = []
    job = store.enqueue("imagine", {"prompt": "sleep:1.0"}, user_id=1)
    with running_worker(config, writes):
        running = status_becomes(store, job.id, JobStatus.RUNNING)
        wait_until(lambda: store.get(job.id).has_preview, 5, what="a preview")
        preview = store.preview(job.id)
        assert preview[:2] == b"\xff\xd8" and len(preview) < 10_000
        done = status_becomes(store, job.id, JobStatus.SUCCEEDED)
    assert running.runs == 1 and done.progress.stage == "sleeping" and 0 < done.progress.step <= 100
    # 100 steps of 10 ms, written at most every 0.2 s: a handful of writes, never two close together
    # (a write can land late after encoding its preview, so the next gap may look shorter; hence the margin).
    elapsed = done.finished_at - running.started_at
    gaps = [b - a for a, b in zip(writes, writes[1:])]
    assert 2 <= len(writes) <= elapsed / 0.2 + 2 and min(gaps) >= 0.1


def test_a_running_job_is_canceled_within_a_step(config: Config, store: JobStore) -> None:
    job = store.enqueue("imagine", {"prompt": "sleep:30"}, user_id=1)
    with running_worker(config):
        status_becomes(store, job.id, JobStatus.RUNNING)
        asked = time.monotonic()
        store.cancel(job.id)
        done = status_becomes(store, job.id, JobStatus.CANCELED)
        assert time.monotonic() - asked < 1.5  # steps are 10 ms; the rest is the test polling a busy machine
    assert done.attempts == 0 and store.artifacts(job.id) == []


def test_stopping_the_worker_hands_the_running_job_back_without_an_attempt(config: Config, store: JobStore) -> None:
    job = store.enqueue("imagine", {"prompt": "sleep:30"}, user_id=1)
    with running_worker(config):
        status_becomes(store, job.id, JobStatus.RUNNING)
    back = store.get(job.id)
    assert (back.status, back.attempts, back.runs, back.worker_id) == (JobStatus.QUEUED, 0, 1, None)
    (worker,) = store.list_workers()
    assert worker.stopped_at is not None


def test_errors_are_stored_as_a_safe_line_a_type_and_a_traceback(config: Config, store: JobStore) -> None:
    expected = store.enqueue("imagine", {"prompt": "fail"}, user_id=1)
    unexpected = store.enqueue("imagine", {"prompt": "error"}, user_id=2)
    after = store.enqueue("imagine", {"prompt": "noop"}, user_id=3)
    with running_worker(config):
        status_becomes(store, after.id, JobStatus.SUCCEEDED)
    first, second = store.get(expected.id), store.get(unexpected.id)
    assert first.status is JobStatus.FAILED and first.error.message == "this job fails on purpose"
    assert first.error.type == "InvalidInput"
    assert second.error.message == "something went wrong while running this job (RuntimeError); the details were logged"
    assert "RuntimeError: an unexpected error, on purpose" in second.error.traceback
    assert "Traceback" not in second.error.message


def test_a_worker_that_lost_its_lease_stops_and_stores_nothing(config: Config, store: JobStore) -> None:
    job = store.enqueue("imagine", {"prompt": "sleep:30"}, user_id=1)
    with running_worker(config) as worker:
        status_becomes(store, job.id, JobStatus.RUNNING)
        # The lease runs out (as if the worker had hung) and another worker takes the job over.
        store.connection.execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = ?", (job.id,))
        store.recover_expired()
        taken = store.claim("other", ["imagine"])
        assert taken.id == job.id and taken.attempts == 1
        wait_until(lambda: worker.jobs_done == 1, 5, what="the first worker to let go")
        store.complete(job.id, "other")
    final = store.get(job.id)
    assert (final.status, final.worker_id, final.runs) == (JobStatus.SUCCEEDED, "other", 2)
    assert store.artifacts(job.id) == []  # the first worker's results were never written


def test_an_idle_worker_notices_a_new_job_within_milliseconds(config: Config, store: JobStore) -> None:
    with running_worker(config):
        time.sleep(0.5)  # idle: waiting on PRAGMA data_version, not querying
        job = store.enqueue("imagine", {"prompt": "noop"}, user_id=1)
        done = status_becomes(store, job.id, JobStatus.SUCCEEDED)
    assert done.started_at - job.created_at < 0.25  # polls every 5 ms; the margin is for a loaded machine


def test_handler_overrides_replace_only_what_they_name() -> None:
    handlers = build_handlers([SPEC])
    defaults = build_handlers()
    assert handlers[JobKind.IMAGINE] is not defaults[JobKind.IMAGINE]
    assert handlers[JobKind.VARY] is defaults[JobKind.VARY]
    bad_specs = (
        "no.colon",
        "storyloom.worker.testing:missing",
        "nonexistent.module:handlers",
        "storyloom.worker.testing:RUN_LOG",
    )
    for bad in bad_specs:
        with pytest.raises(ConfigError):
            load_handlers(bad)


def test_models_are_swapped_when_both_groups_do_not_fit_the_budget(config: Config) -> None:
    loads: list[str] = []

    def spec(name: str, group: str) -> ModelSpec:
        return ModelSpec(name, group, lambda config, cache: loads.append(name) or object())

    specs = {
        s.name: s for s in (spec("txt2img", "image"), spec("variations", "image"), spec("story_writer", "language"))
    }
    estimates = {"image": 6, "language": 6}
    tight = ModelResources(config, specs=specs, budget_bytes=10, estimates=estimates, memory_probe=lambda: 0)
    tight.txt2img()
    tight.variations()
    assert tight.loaded() == ("txt2img", "variations")
    assert tight.txt2img() is tight.txt2img() and loads.count("txt2img") == 1  # kept warm
    tight.story_writer()
    assert tight.loaded() == ("story_writer",)
    tight.txt2img()
    assert tight.loaded() == ("txt2img",) and loads.count("txt2img") == 2

    roomy = ModelResources(config, specs=specs, budget_bytes=12, estimates=estimates, memory_probe=lambda: 0)
    roomy.txt2img()
    roomy.story_writer()
    assert roomy.loaded() == ("story_writer", "txt2img")


def test_measured_sizes_replace_estimates(config: Config) -> None:
    used = [0]

    def load(config, cache):
        used[0] += 9
        return object()

    specs = {
        "txt2img": ModelSpec("txt2img", "image", load),
        "story_writer": ModelSpec("story_writer", "language", load),
    }
    estimates = {"image": 1, "language": 1}
    resources = ModelResources(config, specs=specs, budget_bytes=20, estimates=estimates, memory_probe=lambda: used[0])
    resources.txt2img()
    assert resources.size("image") == 9
    resources.story_writer()  # 9 + estimate 1 fits in 20
    assert resources.loaded() == ("story_writer", "txt2img")


def test_children_get_exactly_the_parents_configuration(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        image={"steps": 7},
        worker={"devices": ["cpu", "cuda:1"]},
        bot={"banned_words": ['a "quoted" word', "ünï"]},
    )
    environment = config_environment(config)
    assert load_config(None, environ=environment) == config.model_copy(
        update={"queue": config.queue.model_copy(update={"database": str(config.database_path)}),
                "paths": config.paths.model_copy(update={"data_dir": config.paths.data_dir.resolve()})}
    )  # fmt: skip


class BusyOnceStore(SqliteJobStore):
    """A real store whose first claim finds the database locked past the busy timeout."""

    busy: list[bool]

    def claim(self, worker_id, kinds):
        if not self.busy:
            self.busy.append(True)
            raise StoreError("the job database is busy (another process kept it locked for more than 5 s)")
        return super().claim(worker_id, kinds)


def test_a_busy_database_makes_the_worker_wait_not_die(config: Config, store: JobStore) -> None:
    busy: list[bool] = []

    def open_store() -> JobStore:
        flaky = BusyOnceStore.open(config.database_path, config.queue)
        flaky.busy = busy
        return flaky

    job = store.enqueue("imagine", {"prompt": "noop"}, user_id=1)
    with worker_in_thread(config, open_store=open_store):
        done = status_becomes(store, job.id, JobStatus.SUCCEEDED)
    assert busy == [True] and done.runs == 1
