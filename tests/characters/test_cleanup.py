"""Training files nobody needs any more: which photos, outputs and class images go and which stay, decided
from a real store; the removal never leaves the three training folders; the worker, ``queue purge`` and
``character delete`` run it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyloom.characters.cleanup import Removal, plan_cleanup, read_facts, remove, sweep, sweep_async
from storyloom.characters.registry import job_output_dir
from storyloom.cli.main import main
from storyloom.config import QueueConfig, load_config
from storyloom.errors import InvalidInput
from storyloom.queue import AsyncJobStore, JobKind, JobStatus, JobStore, NewCharacter
from storyloom.queue.job import Job, JobError
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.testing import wait_until, worker_in_thread
from tests.support.clock import Clock

HOUR = 3600.0
DAY = 86400.0
KEY = "0123456789ab"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def store(data_dir: Path, clock: Clock):
    with JobStore.open(data_dir / "storyloom.db", QueueConfig(max_waiting_per_user=100), clock=clock) as opened:
        yield opened


def folder(path: Path, *, age: float = 0.0) -> Path:
    """A folder with a file in it, last modified ``age`` seconds ago."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "photo_01.png").write_bytes(b"png")
    stamp = time.time() - age
    for item in (path / "photo_01.png", path):
        os.utime(item, (stamp, stamp))
    return path


def photos(data_dir: Path, name: str, *, age: float = 0.0) -> str:
    folder(data_dir / "uploads" / "characters" / name, age=age)
    return f"uploads/characters/{name}"


def train(
    store: JobStore, status: JobStatus, name: str, *, images_dir: str = "uploads/characters/none",
    class_name: str = "cat", register: bool = False,
) -> Job:  # fmt: skip
    """A train_subject job of guild 5 taken to ``status`` (the only job moving at a time, so claim takes it)."""
    params = {"name": name, "identifier": "bhna", "class_name": class_name, "images_dir": images_dir}
    job = store.enqueue("train_subject", params, user_id=1, guild_id=5)
    if status is JobStatus.QUEUED:
        return job
    assert store.claim("w", [JobKind.TRAIN_SUBJECT.value]).id == job.id
    if status is JobStatus.SUCCEEDED:
        lora = job_output_dir(Path("."), name, job.id) / "pytorch_lora_weights.safetensors"
        characters = [character(name, class_name, lora.as_posix(), job_id=job.id)] if register else []
        store.complete(job.id, "w", characters=characters)
    elif status is JobStatus.FAILED:
        store.fail(job.id, "w", JobError("it went wrong", "InvalidInput", ""))
    elif status is JobStatus.CANCELED:
        store.cancel(job.id)
        store.mark_canceled(job.id, "w")
    return store.get(job.id)


def character(name: str, class_name: str, lora_path: str, **changes) -> NewCharacter:
    values = {"name": name, "identifier": "bhna", "class_name": class_name, "lora_path": lora_path, "guild_id": 5}
    return NewCharacter(**{**values, **changes})


def planned(store: JobStore, data_dir: Path, *, now: float | None = None, retention_days: float = 30) -> set[str]:
    now = time.time() if now is None else now
    removals = plan_cleanup(data_dir, read_facts(store), now=now, retention_days=retention_days)
    root = data_dir.resolve()
    return {removal.path.relative_to(root).as_posix() for removal in removals}


# --- photos ------------------------------------------------------------------------------------------------


def test_photos_stay_while_a_job_may_still_need_them_and_go_once_trained(
    store: JobStore, data_dir: Path, clock: Clock
) -> None:
    fresh = photos(data_dir, "fresh")  # saved by the bot a moment ago, its job not queued yet
    orphan = photos(data_dir, "orphan", age=2 * HOUR)
    queued = photos(data_dir, "queued", age=2 * HOUR)
    running = photos(data_dir, "running", age=2 * HOUR)
    failed = photos(data_dir, "failed")
    canceled = photos(data_dir, "canceled")
    trained = photos(data_dir, "trained")
    retried = photos(data_dir, "retried")  # failed once, then trained by its retry
    train(store, JobStatus.FAILED, "A", images_dir=failed)
    train(store, JobStatus.CANCELED, "B", images_dir=canceled)
    succeeded = train(store, JobStatus.SUCCEEDED, "C", images_dir=f"{data_dir}/{trained}/")  # spelled otherwise
    train(store, JobStatus.FAILED, "D", images_dir=retried)
    retry = train(store, JobStatus.SUCCEEDED, "D", images_dir=retried)
    train(store, JobStatus.SUCCEEDED, "G", images_dir=queued)  # trained once; queued again now
    train(store, JobStatus.RUNNING, "E", images_dir=running)
    train(store, JobStatus.QUEUED, "F", images_dir=queued)

    assert planned(store, data_dir) == {orphan, trained, retried}
    assert {r.describe(data_dir) for r in sweep(store, data_dir, retention_days=30)} == {
        f"{orphan} (photos no job uses)", f"{trained} (photos of job {succeeded.id}, which succeeded)",
        f"{retried} (photos of job {retry.id}, which succeeded)",
    }  # fmt: skip
    left = {p.name for p in (data_dir / "uploads" / "characters").iterdir()}
    assert left == {"fresh", "queued", "running", "failed", "canceled"}

    clock.now += 31 * DAY  # the ended jobs are purged: nothing can retry them any more
    assert store.purge() == 6
    assert planned(store, data_dir, now=clock.now) == {fresh, failed, canceled}  # all old by now


# --- outputs -----------------------------------------------------------------------------------------------


def test_a_jobs_output_goes_once_the_job_ended_unless_a_character_uses_it(store: JobStore, data_dir: Path) -> None:
    jobs = {
        "failed": train(store, JobStatus.FAILED, "Failed"),
        "canceled": train(store, JobStatus.CANCELED, "Canceled"),
        "registered": train(store, JobStatus.SUCCEEDED, "Registered", register=True),
        "deleted": train(store, JobStatus.SUCCEEDED, "Deleted", register=True),
        "lost": train(store, JobStatus.SUCCEEDED, "Lost"),  # lost the name race: succeeded, registered nothing
        "running": train(store, JobStatus.RUNNING, "Running"),
        "queued": train(store, JobStatus.QUEUED, "Queued"),  # handed back after a crash: holds its checkpoint
    }
    picture = store.enqueue("imagine", {"prompt": "x"}, user_id=1)
    store.delete_character("Deleted", guild_id=5)
    outputs = {key: folder(job_output_dir(data_dir, job.params["name"], job.id)) for key, job in jobs.items()}
    not_a_training = folder(data_dir / "characters" / f"stray-job{picture.id}")
    purged = folder(data_dir / "characters" / "old-job0")
    future = folder(data_dir / "characters" / f"next-job{picture.id + 1}")  # a job queued after the facts were read
    by_hand = [folder(data_dir / "characters" / name) for name in ("Whiskers", "mittens-jobx", "job3")]

    expected = {outputs[key] for key in ("failed", "canceled", "deleted", "lost")} | {not_a_training, purged}
    root = data_dir.resolve()
    assert planned(store, data_dir) == {path.resolve().relative_to(root).as_posix() for path in expected}
    reasons = {r.path.name: r.reason for r in sweep(store, data_dir, retention_days=30)}
    assert reasons[outputs["failed"].name] == f"output of job {jobs['failed'].id}, which failed; no character uses it"
    assert reasons[outputs["canceled"].name].endswith("which was canceled; no character uses it")
    assert reasons["old-job0"] == "output of job 0, which is gone; no character uses it"
    for path in expected:
        assert not path.exists()
    for path in (outputs["registered"], outputs["running"], outputs["queued"], future, *by_hand):
        assert (path / "photo_01.png").is_file(), path


# --- class images ------------------------------------------------------------------------------------------


def test_class_images_stay_while_their_class_is_used_and_go_when_unused_for_a_while(
    store: JobStore, data_dir: Path
) -> None:
    cache = data_dir / "class-images"
    cat = folder(cache / f"cat-512-{KEY}", age=40 * DAY)
    cat_dog = folder(cache / f"cat-dog-512-{KEY}", age=40 * DAY)  # "cat" must not keep "cat dog"
    teddy = folder(cache / f"teddy-bear-512-{KEY}", age=40 * DAY)
    dog = folder(cache / f"dog-768-{KEY}", age=40 * DAY)
    fox = folder(cache / f"fox-512-{KEY}", age=40 * DAY)
    recent = folder(cache / f"owl-512-{KEY}", age=2 * DAY)
    odd = folder(cache / "my-own-cats", age=40 * DAY)
    store.add_character(character("Mittens", "cat", "characters/m/x.safetensors"))
    store.add_character(character("Tom", "cat", "characters/t/x.safetensors", guild_id=6))
    store.add_character(character("Bear", "teddy bear", "characters/b/x.safetensors", guild_id=None))
    store.add_character(  # made from a picture: trained nothing, keeps no class images
        NewCharacter(name="Pip", identifier="", class_name="dog", lora_path="", reference_digest="a" * 64)
    )
    train(store, JobStatus.FAILED, "Rex", class_name="dog")  # ended: keeps nothing
    train(store, JobStatus.QUEUED, "Foxy", class_name="Fox")

    assert {Path(p).name for p in planned(store, data_dir)} == {cat_dog.name, dog.name}
    assert {Path(p).name for p in planned(store, data_dir, retention_days=1)} == {cat_dog.name, dog.name, recent.name}
    store.delete_character("Mittens", guild_id=5)
    assert cat.name not in {Path(p).name for p in planned(store, data_dir)}  # Tom (another guild) is still a cat
    store.delete_character("Tom", guild_id=6)
    sweep(store, data_dir, retention_days=30)
    assert sorted(p.name for p in cache.iterdir()) == sorted([teddy.name, fox.name, recent.name, odd.name])


# --- the removal itself ------------------------------------------------------------------------------------


def test_removal_stays_inside_the_training_folders_and_never_follows_a_link(
    store: JobStore, data_dir: Path, tmp_path: Path
) -> None:
    elsewhere = folder(tmp_path / "family-photos", age=2 * HOUR)
    uploads = data_dir / "uploads" / "characters"
    uploads.mkdir(parents=True)
    (uploads / "linked").symlink_to(elsewhere, target_is_directory=True)
    (data_dir / "characters").mkdir()
    (data_dir / "characters" / "linked-job0").symlink_to(elsewhere, target_is_directory=True)
    (data_dir / "class-images").symlink_to(tmp_path / "cache", target_is_directory=True)
    outside_cache = folder(tmp_path / "cache" / f"cat-512-{KEY}", age=400 * DAY)
    assert planned(store, data_dir) == set()

    root = data_dir.resolve()
    with pytest.raises(ValueError, match="refusing to delete"):
        remove(
            [Removal(root / "uploads" / "characters" / "gone", "x"), Removal(tmp_path / "family-photos", "x")], data_dir
        )
    with pytest.raises(ValueError, match="refusing to delete"):
        remove([Removal(root / "uploads" / "characters" / ".." / "characters", "x")], data_dir)
    assert remove([Removal(root / "uploads" / "characters" / "linked", "x")], data_dir) == []
    assert remove([Removal(root / "uploads" / "characters" / "gone", "x")], data_dir) == []  # already gone: fine
    assert (elsewhere / "photo_01.png").is_file() and (outside_cache / "photo_01.png").is_file()


async def test_the_bots_async_store_plans_the_same(data_dir: Path) -> None:
    orphan = folder(data_dir / "uploads" / "characters" / "orphan", age=2 * HOUR)
    async with await AsyncJobStore.open(data_dir / "storyloom.db", QueueConfig()) as store:
        job = await store.enqueue("train_subject", {"name": "A", "identifier": "bhna", "class_name": "cat",
                                                    "images_dir": "uploads/characters/kept"}, user_id=1)  # fmt: skip
        kept = folder(data_dir / "uploads" / "characters" / "kept", age=2 * HOUR)
        removed = await sweep_async(store, data_dir, retention_days=30)
    assert [r.path.name for r in removed] == ["orphan"] and not orphan.exists() and kept.exists()
    assert job.status is JobStatus.QUEUED


# --- where it runs -----------------------------------------------------------------------------------------


def test_queue_purge_and_character_delete_remove_what_nothing_needs(
    store: JobStore, data_dir: Path, clock: Clock, capsys
) -> None:
    config = data_dir.parent / "config.toml"
    config.write_text(f'[paths]\ndata_dir = "{data_dir}"\n', encoding="utf-8")
    clock.now -= 40 * DAY
    train(store, JobStatus.FAILED, "Rex", images_dir=photos(data_dir, "rex", age=40 * DAY))
    done = train(store, JobStatus.SUCCEEDED, "Mittens", register=True)
    clock.now += 40 * DAY
    output = folder(job_output_dir(data_dir, "Mittens", done.id))
    cats = folder(data_dir / "class-images" / f"cat-512-{KEY}", age=40 * DAY)

    assert main(["queue", "purge", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "removed 2 job(s)" in out and "removed 1 training folder(s) nothing needs any more:" in out
    assert "  uploads/characters/rex (photos no job uses)" in out  # its failed job is purged: no retry any more
    assert output.is_dir() and cats.is_dir()  # Mittens still uses them

    assert main(["character", "delete", "Mittens", "--guild", "5", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "deleted character 'Mittens' and its files" in out
    reason = "class images of 'cat': no character of that class, unused for 40 days"
    assert f"also removed class-images/cat-512-{KEY} ({reason})" in out
    assert not cats.exists() and not output.exists()


def test_a_training_worker_cleans_up_at_start_and_after_each_training(data_dir: Path) -> None:
    config = load_config(None, environ={}, overrides={
        "paths": {"data_dir": str(data_dir)}, "queue": {"lease_seconds": 2.0, "heartbeat_seconds": 0.1},
    })  # fmt: skip

    def fake_training(context: JobContext) -> HandlerResult:
        name = context.params.name
        output = folder(job_output_dir(config.paths.data_dir, name, context.job.id))
        if name == "Broken":
            raise InvalidInput("this training fails on purpose")
        lora = (output / "photo_01.png").relative_to(config.paths.data_dir).as_posix()
        return HandlerResult(characters=(character(name, "cat", lora, guild_id=None),))

    orphan = folder(data_dir / "uploads" / "characters" / "orphan", age=2 * HOUR)
    with JobStore.from_config(config) as store:
        good = store.enqueue("train_subject", {"name": "Mittens", "identifier": "bhna", "class_name": "cat",
                                               "images_dir": photos(data_dir, "good")}, user_id=1)  # fmt: skip
        with worker_in_thread(config, handlers={JobKind.TRAIN_SUBJECT: fake_training}):
            wait_until(lambda: store.get(good.id).status is JobStatus.SUCCEEDED, 10, what="the training")
            wait_until(lambda: not (data_dir / "uploads" / "characters" / "good").exists(), 5, what="its photos to go")
            assert not orphan.exists() and job_output_dir(data_dir, "Mittens", good.id).is_dir()

            bad = store.enqueue("train_subject", {"name": "Broken", "identifier": "bhna", "class_name": "cat",
                                                  "images_dir": photos(data_dir, "bad")}, user_id=1)  # fmt: skip
            wait_until(lambda: store.get(bad.id).status is JobStatus.FAILED, 10, what="the failing training")
            wait_until(lambda: not job_output_dir(data_dir, "Broken", bad.id).exists(), 5, what="its output to go")
            assert (data_dir / "uploads" / "characters" / "bad").is_dir()  # kept for a retry
