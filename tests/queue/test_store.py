"""The job store on both backends (a SQLite file, a PostgreSQL schema): lifecycle, claiming, leases, fairness, caps, follow-ups, positions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput, QueueFull, StoreError
from storyloom.queue import (
    ArtifactKind,
    InvalidTransition,
    JobKind,
    JobNotFound,
    JobStatus,
    JobStore,
    LeaseLost,
    NewArtifact,
    NewJob,
)
from storyloom.queue.job import JobError
from tests.support.clock import Clock

KINDS = [kind.value for kind in JobKind]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_store(path: Path, clock: Clock | None = None, **settings) -> JobStore:
    return JobStore.open(path, QueueConfig(**settings), clock=clock or Clock())


@pytest.fixture
def store(database: str, clock: Clock) -> JobStore:
    with open_store(database, clock, max_waiting_per_user=50, max_waiting_total=500) as store:
        yield store


def imagine(store: JobStore, user: int = 1, prompt: str = "a cat", **kwargs):
    return store.enqueue("imagine", {"prompt": prompt}, user_id=user, **kwargs)


def png(index: int, kind: ArtifactKind = ArtifactKind.IMAGE) -> NewArtifact:
    return NewArtifact(kind, index, f"image_{index + 1}.png", "image/png", b"\x89PNG" + bytes([index]), {"seed": index})


# --- lifecycle -----------------------------------------------------------------------------------------


def test_a_job_goes_from_queued_to_succeeded_with_its_artifacts(store: JobStore, clock: Clock) -> None:
    job = imagine(store, user=7, guild_id=1, channel_id=2, thread_id=3, message_id=4)
    assert (job.status, job.user_id, job.channel_id, job.thread_id, job.message_id) == (JobStatus.QUEUED, 7, 2, 3, 4)
    assert job.params["prompt"] == "a cat"

    clock.now += 1
    running = store.claim("w1", KINDS)
    assert (running.id, running.status, running.worker_id, running.runs) == (job.id, JobStatus.RUNNING, "w1", 1)
    assert running.lease_expires_at == clock.now + store.settings.lease_seconds

    clock.now += 2.5
    done = store.complete(job.id, "w1", [png(0), png(1), png(0, ArtifactKind.GRID)])
    assert done.status is JobStatus.SUCCEEDED and done.duration == pytest.approx(2.5)
    assert done.lease_expires_at is None
    stored = store.artifacts(job.id)
    assert [(a.kind, a.index) for a in stored] == [
        (ArtifactKind.IMAGE, 0),
        (ArtifactKind.IMAGE, 1),
        (ArtifactKind.GRID, 0),
    ]
    assert store.artifact(job.id, 1).data == b"\x89PNG\x01" and store.artifact(job.id, 1).metadata == {"seed": 1}
    assert store.artifact(job.id, 5) is None


def test_a_finished_job_never_changes_again(store: JobStore) -> None:
    job = imagine(store)
    store.claim("w1", KINDS)
    store.fail(job.id, "w1", JobError("the model is missing", "ModelUnavailable", "Traceback ..."))
    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == JobError("the model is missing", "ModelUnavailable", "Traceback ...")
    with pytest.raises(LeaseLost):
        store.complete(job.id, "w1", [png(0)])
    with pytest.raises(InvalidTransition, match="already finished"):
        store.cancel(job.id)
    assert store.artifacts(job.id) == []


def test_only_the_lease_holder_can_finish_a_job(store: JobStore) -> None:
    job = imagine(store)
    store.claim("w1", KINDS)
    with pytest.raises(LeaseLost):
        store.complete(job.id, "w2", [png(0)])
    with pytest.raises(LeaseLost):
        store.release(job.id, "w2")
    assert store.report_progress(job.id, "w2", 1, 2).lease_held is False
    assert store.report_progress(job.id, "w1", 1, 2).lease_held is True
    assert store.get(job.id).status is JobStatus.RUNNING


def test_a_job_can_be_looked_up_only_if_it_exists(store: JobStore) -> None:
    with pytest.raises(JobNotFound, match="no job 42"):
        store.get(42)
    with pytest.raises(JobNotFound):
        store.cancel(42)


# --- validation at enqueue -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("paint", {"prompt": "x"}, "unknown job kind 'paint'"),
        ("imagine", {}, "prompt: required"),
        ("imagine", {"prompt": ""}, "prompt: String should have at least 1 character"),
        ("imagine", {"prompt": "x", "steps": 3}, "steps: unknown field"),
        ("imagine", {"prompt": "x", "num_inference_steps": "many"}, "num_inference_steps"),
        ("imagine", {"prompt": "x", "seed": -1}, "seed"),
        ("story", {"summary": "x", "pages": 99}, "pages"),
        ("train_subject", {"identifier": "Bad Name", "class_name": "cat", "images": ["a.png"]}, "identifier"),
        ("imagine", ["prompt"], "must be a mapping"),
    ],
)
def test_bad_requests_are_refused_at_enqueue_naming_the_field(store: JobStore, kind, params, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.enqueue(kind, params, user_id=1)
    assert store.list_jobs(tuple(JobStatus)) == []


def test_vary_and_upscale_need_a_finished_parent_with_that_image(store: JobStore) -> None:
    with pytest.raises(InvalidInput, match="needs the job it works on"):
        store.enqueue("vary", {"index": 0}, user_id=1)
    parent = imagine(store)
    with pytest.raises(InvalidInput, match="has no results"):
        store.enqueue("upscale", {"index": 0}, user_id=1, parent_id=parent.id)
    store.claim("w", KINDS)
    store.complete(parent.id, "w", [png(0), png(1)])
    with pytest.raises(InvalidInput, match="no image number 3"):
        store.enqueue("vary", {"index": 2}, user_id=1, parent_id=parent.id)
    vary = store.enqueue("vary", {"index": 1, "strength": "strong"}, user_id=2, parent_id=parent.id)
    assert vary.parent_id == parent.id and vary.params["strength"] == "strong"
    assert [child.id for child in store.children(parent.id)] == [vary.id]


# --- caps ------------------------------------------------------------------------------------------------


def test_per_user_and_global_caps_give_clear_errors(database: str) -> None:
    with open_store(database, max_waiting_per_user=2, max_waiting_total=3) as store:
        imagine(store, user=1)
        imagine(store, user=1)
        with pytest.raises(QueueFull, match="you already have 2 jobs waiting"):
            imagine(store, user=1)
        imagine(store, user=2)
        with pytest.raises(QueueFull, match="the queue is full"):
            imagine(store, user=3)
        store.claim("w", KINDS)  # a running job no longer waits
        imagine(store, user=1)
        assert imagine(store, user=4, enforce_caps=False).status is JobStatus.QUEUED
        assert len(store.list_jobs()) == 5


# --- claiming and fairness -------------------------------------------------------------------------------


def test_user_a_queues_ten_then_user_b_one_and_b_runs_second(store: JobStore) -> None:
    a_jobs = [imagine(store, user=1).id for _ in range(10)]
    b_job = imagine(store, user=2).id
    order = []
    while (job := store.claim("w", KINDS)) is not None:
        order.append(job.id)
        store.complete(job.id, "w")
    assert order[:2] == [a_jobs[0], b_job]
    assert order[2:] == a_jobs[1:]


def test_round_robin_across_users_fifo_within_each(store: JobStore) -> None:
    jobs = [(user, imagine(store, user=user).id) for user in (1, 1, 1, 2, 2, 3)]
    claimed = []
    while (job := store.claim("w", KINDS)) is not None:
        claimed.append((job.user_id, job.id))
        store.complete(job.id, "w")
    assert [user for user, _ in claimed] == [1, 2, 3, 1, 2, 1]
    for user in (1, 2, 3):
        assert [i for u, i in claimed if u == user] == [i for u, i in jobs if u == user]


def test_a_user_who_was_just_served_waits_behind_a_newcomer(store: JobStore) -> None:
    first = imagine(store, user=1)
    store.complete(store.claim("w", KINDS).id, "w")
    again = imagine(store, user=1)
    newcomer = imagine(store, user=2)
    assert store.claim("w", KINDS).id == newcomer.id
    assert store.claim("w", KINDS).id == again.id
    assert first.id < again.id < newcomer.id


def test_a_worker_claims_only_kinds_it_can_run(store: JobStore) -> None:
    story = store.enqueue("story", {"summary": "a cat"}, user_id=1)
    picture = imagine(store, user=2)
    assert store.claim("w", ["imagine"]).id == picture.id
    assert store.claim("w", ["imagine", "vary"]) is None
    assert store.has_work(["story"]) and not store.has_work(["upscale"])
    assert store.claim("w", ["story"]).id == story.id


# --- leases ----------------------------------------------------------------------------------------------


def test_an_expired_lease_returns_the_job_with_one_more_attempt(store: JobStore, clock: Clock) -> None:
    job = imagine(store)
    store.claim("w1", KINDS)
    clock.now += store.settings.lease_seconds - 1
    assert store.heartbeat("w1", job.id).lease_held  # renewed: expires a full lease from now
    clock.now += store.settings.lease_seconds - 1
    assert store.claim("w2", KINDS) is None
    clock.now += 2
    again = store.claim("w2", KINDS)
    assert (again.id, again.worker_id, again.attempts, again.runs) == (job.id, "w2", 1, 2)
    # The first worker comes back to life: its lease is gone, it cannot finish or record progress.
    assert store.heartbeat("w1", job.id).lease_held is False
    with pytest.raises(LeaseLost):
        store.complete(job.id, "w1", [png(0)])
    store.complete(job.id, "w2", [png(0)])
    assert store.get(job.id).status is JobStatus.SUCCEEDED and len(store.artifacts(job.id)) == 1


def test_a_job_that_keeps_losing_its_worker_fails_after_max_attempts(database: str, clock: Clock) -> None:
    with open_store(database, clock, max_attempts=3, lease_seconds=10) as store:
        doomed = imagine(store, user=1, prompt="crash")
        behind = imagine(store, user=1, prompt="fine")
        for attempt in range(3):
            assert store.claim(f"w{attempt}", KINDS).id == doomed.id
            clock.now += 11
            store.recover_expired()
        failed = store.get(doomed.id)
        assert failed.status is JobStatus.FAILED and failed.attempts == 3
        assert failed.error.message == "this job crashed the worker 3 times"
        assert store.claim("w9", KINDS).id == behind.id


def test_a_graceful_hand_back_costs_no_attempt(store: JobStore) -> None:
    job = imagine(store)
    store.claim("w1", KINDS)
    released = store.release(job.id, "w1")
    assert (released.status, released.attempts, released.worker_id, released.started_at) == (
        JobStatus.QUEUED,
        0,
        None,
        None,
    )
    assert store.claim("w2", KINDS).runs == 2


def test_releasing_a_dead_worker_returns_its_jobs_at_once(store: JobStore) -> None:
    job = imagine(store)
    store.register_worker("host/1/cpu", host="host", pid=1, device="cpu")
    store.claim("host/1/cpu", KINDS)
    assert [j.id for j in store.running_on_host("host/")] == [job.id]
    (released,) = store.release_worker("host/1/cpu", crashed=True)
    assert (released.status, released.attempts) == (JobStatus.QUEUED, 1)
    assert store.list_workers()[0].stopped_at is not None


# --- cancellation ----------------------------------------------------------------------------------------


def test_cancel_a_queued_job_at_once_and_a_running_one_by_request(store: JobStore) -> None:
    queued = imagine(store, user=1)
    running = imagine(store, user=2)
    assert store.claim("w", KINDS).id == queued.id
    store.cancel(running.id)  # still queued
    assert store.get(running.id).status is JobStatus.CANCELED
    asked = store.cancel(queued.id)
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested
    assert store.cancel_state(queued.id, "w").cancel_requested
    assert store.heartbeat("w", queued.id).cancel_requested
    assert store.mark_canceled(queued.id, "w").status is JobStatus.CANCELED
    assert store.cancel(queued.id).status is JobStatus.CANCELED  # idempotent


def test_a_running_job_canceled_while_its_worker_died_ends_canceled(store: JobStore, clock: Clock) -> None:
    job = imagine(store)
    store.claim("w", KINDS)
    store.cancel(job.id)
    clock.now += store.settings.lease_seconds + 1
    store.recover_expired()
    assert store.get(job.id).status is JobStatus.CANCELED


def test_retry_makes_a_new_job_and_purge_removes_old_ones(store: JobStore, clock: Clock) -> None:
    job = imagine(store, prompt="try again")
    store.claim("w", KINDS)
    store.fail(job.id, "w", JobError("boom"))
    again = store.retry(job.id)
    assert again.id != job.id and again.params == job.params and again.status is JobStatus.QUEUED
    with pytest.raises(InvalidTransition, match="only failed or canceled"):
        store.retry(again.id)
    clock.now += 31 * 86400
    assert store.purge(30) == 1
    with pytest.raises(JobNotFound):
        store.get(job.id)
    assert store.get(again.id).status is JobStatus.QUEUED  # waiting jobs are never purged
    assert imagine(store).id > again.id  # IDs are never reused, so old buttons never point at new jobs


# --- stories ---------------------------------------------------------------------------------------------


def page(index: int) -> NewJob:
    return NewJob(JobKind.STORY_PAGE, {"page": index, "text": f"page {index}", "prompt": "a page"}, page_index=index)


def test_a_story_enqueues_its_pages_in_the_same_transaction_as_its_success(store: JobStore) -> None:
    story = store.enqueue("story", {"summary": "a cat at sea"}, user_id=1, channel_id=9)
    other = imagine(store, user=2)
    store.claim("w", KINDS)
    text = NewArtifact(ArtifactKind.TEXT, 0, "story.json", "application/json", b"{}")
    done = store.complete(story.id, "w", [text], [page(0), page(1), page(2)])
    pages = store.children(story.id)
    assert [p.page_index for p in pages] == [0, 1, 2]
    assert all((p.user_id, p.channel_id, p.parent_id, p.status) == (1, 9, done.id, JobStatus.QUEUED) for p in pages)
    # Other users' jobs run between the pages.
    assert store.claim("w", KINDS).id == other.id
    assert store.claim("w", KINDS).id == pages[0].id


def test_pages_never_count_against_the_users_cap(database: str) -> None:
    with open_store(database, max_waiting_per_user=1) as store:
        story = store.enqueue("story", {"summary": "a cat"}, user_id=1)
        store.claim("w", KINDS)
        store.complete(story.id, "w", [], [page(0), page(1), page(2)])
        assert imagine(store, user=1).status is JobStatus.QUEUED


def test_if_storing_the_results_fails_no_page_is_enqueued_either(tmp_path: Path) -> None:
    with open_store(tmp_path / "jobs.db") as store:
        story = store.enqueue("story", {"summary": "a cat"}, user_id=1)
        store.claim("w", KINDS)
        pages_before = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count = {pages_before + 2}")
        huge = NewArtifact(ArtifactKind.TEXT, 0, "story.json", "application/json", b"x" * 1_000_000)
        with pytest.raises(StoreError, match="disk is full"):
            store.complete(story.id, "w", [huge], [page(0), page(1)])
        assert store.children(story.id) == []
        assert store.get(story.id).status is JobStatus.RUNNING
        assert store.artifacts(story.id) == []


def test_a_bad_follow_up_is_refused_before_anything_is_written(store: JobStore) -> None:
    story = store.enqueue("story", {"summary": "a cat"}, user_id=1)
    store.claim("w", KINDS)
    bad = NewJob(JobKind.STORY_PAGE, {"page": 0, "text": "x"}, page_index=0)
    with pytest.raises(InvalidInput, match="prompt: required"):
        store.complete(story.id, "w", [], [page(0), bad])
    with pytest.raises(InvalidInput, match="both image number 0"):
        store.complete(story.id, "w", [png(0), png(0)])
    assert store.children(story.id) == [] and store.get(story.id).status is JobStatus.RUNNING


def test_canceling_a_finished_story_cancels_its_waiting_pages(store: JobStore) -> None:
    story = store.enqueue("story", {"summary": "a cat"}, user_id=1)
    store.claim("w", KINDS)
    store.complete(story.id, "w", [], [page(0), page(1)])
    first = store.claim("w", KINDS)
    store.cancel(story.id)
    statuses = {p.page_index: (p.status, p.cancel_requested) for p in store.children(story.id)}
    assert statuses == {0: (JobStatus.RUNNING, True), 1: (JobStatus.CANCELED, False)}
    assert first.page_index == 0


# --- positions and ETAs ----------------------------------------------------------------------------------


def test_positions_follow_the_fair_order_and_etas_the_recent_durations(store: JobStore, clock: Clock) -> None:
    assert store.positions() == {}
    store.register_worker("w", host="h", pid=1, device="cpu")
    for seconds in (10.0, 20.0):  # history: imagine jobs take 15 s on average
        job = imagine(store, user=9)
        store.claim("w", KINDS)
        clock.now += seconds
        store.complete(job.id, "w")
    running = imagine(store, user=1)
    store.claim("w", KINDS)
    clock.now += 5  # 10 s left
    a2, a3 = imagine(store, user=1), imagine(store, user=1)
    b1 = imagine(store, user=2)
    positions = store.positions()
    assert positions[running.id].position == 0 and positions[running.id].eta_seconds == pytest.approx(10)
    assert [positions[j.id].position for j in (b1, a2, a3)] == [1, 2, 3]
    assert positions[b1.id].wait_seconds == pytest.approx(10) and positions[b1.id].eta_seconds == pytest.approx(25)
    assert positions[a3.id].wait_seconds == pytest.approx(40)
    only = store.positions([a2.id])
    assert list(only) == [a2.id] and only[a2.id].jobs_ahead == 1


def test_without_any_history_there_is_a_position_but_no_eta(store: JobStore) -> None:
    job = store.enqueue("story", {"summary": "a cat"}, user_id=1)
    (position,) = store.positions([job.id]).values()
    assert (position.position, position.wait_seconds, position.eta_seconds) == (1, 0.0, None)


# --- restarts --------------------------------------------------------------------------------------------


def test_closing_and_reopening_the_store_keeps_everything_waiting_in_order(database: str, clock: Clock) -> None:
    path = database
    with open_store(path, clock) as store:
        first = [imagine(store, user=user).id for user in (1, 1, 2)]
        store.complete(store.claim("w", KINDS).id, "w")  # user 1 served once
    with open_store(path, clock) as store:  # the bot restarts
        later = [imagine(store, user=user).id for user in (3, 2)]
        order = []
        while (job := store.claim("w", KINDS)) is not None:
            order.append(job.id)
            store.complete(job.id, "w")
    assert order == [first[2], later[0], first[1], later[1]]


def test_memory_databases_work_for_quick_checks() -> None:
    with JobStore.open(":memory:") as store:
        job = imagine(store)
        assert store.claim("w", KINDS).id == job.id


def test_the_database_directory_is_created(tmp_path: Path) -> None:
    with JobStore.open(tmp_path / "new" / "dir" / "jobs.db") as store:
        imagine(store)
    assert sqlite3.connect(tmp_path / "new" / "dir" / "jobs.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
