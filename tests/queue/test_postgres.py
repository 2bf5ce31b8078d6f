"""What only the PostgreSQL backend has to prove: concurrent claims never share a job, an idle worker wakes on
NOTIFY at once, a dropped connection is reconnected without losing the operation, and a bad URL is one line
that names the server and never the password."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import StoreError
from storyloom.queue import AsyncJobStore, JobKind, JobStatus, JobStore
from tests.support.postgres import drop_connections, require_server

KINDS = [kind.value for kind in JobKind]


def test_many_workers_claiming_at_once_never_get_the_same_job(postgres_url: str) -> None:
    with JobStore.open(postgres_url, QueueConfig(max_waiting_total=1000, max_waiting_per_user=1000)) as store:
        queued = {store.enqueue("imagine", {"prompt": f"{n}"}, user_id=n % 7).id for n in range(120)}

    def drain(worker: int) -> list[int]:
        taken = []
        with JobStore.open(postgres_url) as mine:
            while (job := mine.claim(f"w{worker}", KINDS)) is not None:
                taken.append(job.id)
                mine.complete(job.id, f"w{worker}")
        return taken

    with ThreadPoolExecutor(6) as pool:
        claimed = [job for taken in pool.map(drain, range(6)) for job in taken]
    assert sorted(claimed) == sorted(queued)  # each job exactly once
    with JobStore.open(postgres_url) as store:
        assert {job.status for job in store.list_jobs(tuple(JobStatus))} == {JobStatus.SUCCEEDED}


def test_an_idle_worker_wakes_on_notify_within_milliseconds(postgres_url: str) -> None:
    with JobStore.open(postgres_url) as worker, JobStore.open(postgres_url) as bot:
        assert worker.changed()  # the first look always checks
        assert not worker.changed()
        stop = threading.Event()
        woke = []

        def wait() -> None:
            started = time.monotonic()
            worker.wait_for_change(10.0, stop)
            woke.append(time.monotonic() - started)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        enqueued = time.monotonic()
        bot.enqueue("imagine", {"prompt": "now"}, user_id=1)
        waiter.join(5)
        latency = time.monotonic() - enqueued
        assert woke and latency < 1.0, latency  # woken by NOTIFY, not by the 10 s timeout
        assert worker.changed()
        assert worker.claim("w", KINDS) is not None


def test_a_dropped_connection_is_reconnected_and_the_operation_runs(postgres_url: str) -> None:
    with JobStore.open(postgres_url, QueueConfig(reconnect_seconds=20)) as store:
        job = store.enqueue("imagine", {"prompt": "before"}, user_id=1)
        assert drop_connections(postgres_url) >= 1
        assert store.get(job.id).status is JobStatus.QUEUED  # reconnected, then read
        claimed = store.claim("w", KINDS)
        assert claimed is not None and claimed.id == job.id


async def test_the_bot_side_rides_out_a_dropped_connection_too(postgres_url: str) -> None:
    async with await AsyncJobStore.open(postgres_url, QueueConfig(reconnect_seconds=20)) as store:
        job = await store.enqueue("imagine", {"prompt": "before"}, user_id=1)
        await asyncio.to_thread(drop_connections, postgres_url)
        assert (await store.get(job.id)).status is JobStatus.QUEUED


def test_an_unreachable_server_is_a_store_error_after_the_reconnect_window(postgres_url: str) -> None:
    with JobStore.open(postgres_url, QueueConfig(reconnect_seconds=0.5)) as store:
        store.enqueue("imagine", {"prompt": "x"}, user_id=1)
        store._url = store._url.replace(":5432/", ":1/")  # the server "moved away": every reconnect fails
        drop_connections(postgres_url)
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"lost the connection to the job database PostgreSQL .*within 0.5 s"):
            store.list_jobs((JobStatus.QUEUED,))
        assert time.monotonic() - started < 10


def with_credentials(url: str, *, user: str, password: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}" if database else parts.path))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"database": "storyloom_no_such_database"}, "the database does not exist"),
        ({"user": "storyloom_no_such_role"}, "storyloom_no_such_role"),
        ({"port": 1}, "refused"),
    ],
)
def test_a_wrong_url_is_one_line_naming_the_server_without_the_password(change: dict, reason: str) -> None:
    url = require_server()
    secret = "s3cret-Pw-never-shown"
    target = with_credentials(
        url, user=change.get("user", "postgres"), password=secret, database=change.get("database")
    )
    if "port" in change:
        target = target.replace(":5432", f":{change['port']}")
    with pytest.raises(StoreError) as refused:
        JobStore.open(target)
    message = str(refused.value)
    assert secret not in message and "\n" not in message
    assert "127.0.0.1" in message and reason in message, message

    result = subprocess.run(
        [sys.executable, "-m", "storyloom", "queue", "list"],
        env={"PATH": "/usr/bin:/bin", "STORYLOOM_QUEUE__DATABASE": target, "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and "127.0.0.1" in result.stderr, result.stderr


def test_two_hosts_registering_the_same_name_at_once_get_one_character_and_one_clear_refusal(
    postgres_url: str,
) -> None:
    from storyloom.queue import CharacterExists, NewCharacter

    JobStore.open(postgres_url).close()
    barrier = threading.Barrier(4)

    def register(n: int) -> str:
        with JobStore.open(postgres_url) as store:
            barrier.wait()
            try:
                store.add_character(
                    NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path=f"host{n}.safetensors")
                )
                return "registered"
            except CharacterExists as exc:
                return str(exc)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(register, range(4)))
    assert outcomes.count("registered") == 1
    assert all("already exists" in outcome for outcome in outcomes if outcome != "registered"), outcomes
