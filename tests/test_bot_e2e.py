"""End to end: the bot against the fake Discord on 127.0.0.1, with a real worker process on the tiny models.

One world for the whole module (the fake, the store, one supervised worker kept warm, the bot), because
starting a worker and loading its models is the slow part; the tests run in order and some use what an
earlier one produced (the grid whose buttons are pressed). The last test kills the worker.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from conftest import make_tiny_config
from fakediscord import FakeDiscord, FakeMessage

from test_bot_support import (
    LogCollector, SupervisedWorker, collecting_logs, job_of, messages_of_job, open_store, running_bot, wait_job,
)  # fmt: skip

from storyloom.bot.app import StoryloomBot
from storyloom.config import Config
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, JobKind, JobStatus

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORK_TIMEOUT = 120.0  # a worker on a shared 2-core machine can be slow to load the tiny models


@dataclass
class World:
    fake: FakeDiscord
    config: Config
    store: AsyncJobStore
    worker: SupervisedWorker
    logs: LogCollector
    bot: StoryloomBot | None = None
    shared: dict[str, Any] = field(default_factory=dict)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory, tiny_models) -> AsyncIterator[World]:
    data = tmp_path_factory.mktemp("bot-e2e") / "data"
    config = make_tiny_config(
        data, tiny_models,
        image={"steps": 4}, upscale={"steps": 2}, story={"max_new_tokens": 24},
        bot={"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
        worker={"restart_backoff_seconds": 0.1, "progress_interval": 0.1},
    )  # fmt: skip
    store = await open_store(config)
    worker = SupervisedWorker(config).start()
    async with collecting_logs() as logs, FakeDiscord() as fake:
        world = World(fake, config, store, worker, logs)
        try:
            async with running_bot(config, store, fake) as bot:
                world.bot = bot
                yield world
        finally:
            worker.stop()
            await store.close()


def grid_messages(fake: FakeDiscord, channel) -> list[FakeMessage]:
    return [m for m in fake.messages_in(channel) if any(c.startswith("sl:u:") for c in m.custom_ids()) and "sl:r:" in " ".join(m.custom_ids())]


async def test_imagine_shows_progress_then_a_grid_with_nine_buttons(world: World) -> None:
    fake, store = world.fake, world.store
    handle = await fake.invoke_command("imagine", {"prompt": "a small red house", "seed": 7, "steps": 6})
    ack = await handle.wait_ack()
    assert ack.type == 5 and ack.elapsed_ms < 3000
    status = await handle.wait_original()
    assert "queued" in status.content
    [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
    grid = await fake.wait_for_message(thread, lambda m: bool(m.attachments), timeout=WORK_TIMEOUT)
    job_id = job_of(grid)
    assert job_id is not None and f"job {job_id}" in status.content

    assert grid.custom_ids() == [
        *(f"sl:u:{job_id}:{n}" for n in range(1, 5)), f"sl:r:{job_id}", *(f"sl:v:{job_id}:{n}" for n in range(1, 5))
    ]
    [picture] = grid.attachments
    one = await store.artifact(job_id, 0, ArtifactKind.IMAGE)
    assert (picture.width, picture.height) == (2 * one.metadata["width"], 2 * one.metadata["height"])
    with Image.open(io.BytesIO(picture.data)) as image:
        assert image.size == (picture.width, picture.height)
    assert "a small red house" in grid.content and f"<@{fake.member.id}>" in grid.content

    final = await fake.wait_for(lambda: (m := fake.message(status.id)).content.startswith("✅") and m, timeout=10)
    history = [e["content"] for e in final.edits]
    assert any("%" in text or "…" in text for text in history), history  # progress was shown while it ran
    assert final.attachments == []  # the preview is gone once the job is done
    world.shared["grid"] = grid
    world.shared["thread"] = thread
