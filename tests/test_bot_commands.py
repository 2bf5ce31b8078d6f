"""The bot against the fake Discord with a fast stand-in worker: commands, replies, delivery rules.

The stand-in completes jobs in the store at once with small made-up results, so these tests exercise the
bot's side (acknowledging, validating, queueing, status messages, threads, exactly-once delivery, upload
limits) in seconds. ``test_bot_e2e.py`` runs the same paths with a real worker on the tiny models.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from fakediscord import FakeDiscord

from test_bot_support import fast_worker, job_of, messages_of_job, open_store, running_bot, wait_job

from storyloom.config import Config, load_config
from storyloom.queue.job import JobKind, JobStatus


def bot_config(tmp_path: Path, **bot) -> Config:
    """A config for bot-only tests: nothing here loads a model."""
    return load_config(
        None, environ={}, overrides={
            "paths": {"data_dir": str(tmp_path / "data")},
            "bot": {"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05, **bot},
            "queue": {"max_waiting_per_user": 5},
        },
    )  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path):
    opened = await open_store(bot_config(tmp_path))
    yield opened
    await opened.close()


async def test_imagine_is_deferred_queued_and_delivered_into_a_thread(fake: FakeDiscord, store, tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a red cat"})
        assert (await handle.wait_ack()).type == 5
        status = await handle.wait_original()
        [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
        grid = await fake.wait_for_message(thread, lambda m: bool(m.attachments), timeout=10)
        job_id = job_of(grid)
        assert job_id is not None and f"job {job_id}" in status.content
        assert grid.custom_ids() == [
            *(f"sl:u:{job_id}:{n}" for n in range(1, 5)), f"sl:r:{job_id}", *(f"sl:v:{job_id}:{n}" for n in range(1, 5))
        ]
        await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=5)
        assert thread.name == "a red cat"
        assert await store.is_delivered(job_id)
