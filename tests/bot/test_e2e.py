"""End to end: the bot against the fake Discord on 127.0.0.1, with a real worker process on the tiny models.

One store and one supervised worker for the whole module (``backend``), because starting a worker and loading
its models is the slow part; each test gets its own fake Discord, log collector and freshly started bot on them
(``world``), and makes what it needs through fixtures (``grid``: a delivered /imagine grid whose buttons it
presses; ``busy_world``: a recorded session to audit), so any test passes alone and in any order. The worker
killed by one test is restarted by its supervisor for the next.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from storyloom.config import Config
from storyloom.domain.parameters import read_png_parameters
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, JobKind, JobStatus
from tests.support.bot import (
    LogCollector,
    RunningBot,
    SupervisedWorker,
    collecting_logs,
    job_of,
    messages_of_job,
    open_store,
    start_bot,
)  # fmt: skip
from tests.support.fakediscord import FakeDiscord, FakeMessage
from tests.support.fakediscord.interactions import Upload
from tests.support.fakediscord.state import DEFAULT_ATTACHMENT_LIMIT
from tests.support.images import noisy_png
from tests.support.jobs import wait_delivered, wait_job

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORK_TIMEOUT = 150.0  # a worker on a shared 2-core machine can be slow to load the tiny models
EDIT_INTERVAL = 0.5


@dataclass
class Backend:
    """What the module's tests share: the tiny config, the store and one supervised worker kept warm."""

    config: Config
    store: AsyncJobStore
    worker: SupervisedWorker


@dataclass
class World:
    """One test's Discord: a fake of its own, the logs of this test only and a bot on the shared backend."""

    fake: FakeDiscord
    config: Config
    store: AsyncJobStore
    worker: SupervisedWorker
    logs: LogCollector
    running: RunningBot | None = None


@dataclass
class Grid:
    """A delivered /imagine grid and the thread it was posted in."""

    message: FakeMessage
    thread: FakeMessage


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def backend(tmp_path_factory, tiny_models) -> AsyncIterator[Backend]:
    data = tmp_path_factory.mktemp("bot-e2e") / "data"
    config = make_tiny_config(
        data, tiny_models,
        image={"steps": 4}, upscale={"steps": 2}, story={"max_new_tokens": 24},
        bot={"progress_edit_interval": EDIT_INTERVAL, "delivery_poll_interval": 0.05},
        worker={"restart_backoff_seconds": 0.1, "progress_interval": 0.1},
    )  # fmt: skip
    store = await open_store(config)
    worker = SupervisedWorker(config).start()
    try:
        yield Backend(config, store, worker)
    finally:
        worker.stop()
        await store.close()


@asynccontextmanager
async def new_world(backend: Backend) -> AsyncIterator[World]:
    """A fake Discord and a bot connected to it, on the shared store and worker; the bot stops at the end."""
    async with collecting_logs() as logs, FakeDiscord() as fake:
        world = World(fake, backend.config, backend.store, backend.worker, logs)
        try:
            world.running = await start_bot(backend.config, backend.store, fake)
            yield world
        finally:
            if world.running is not None:
                await world.running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def world(backend: Backend) -> AsyncIterator[World]:
    async with new_world(backend) as world:
        yield world


async def make_grid(world: World, prompt: str, **options: Any) -> Grid:
    """/imagine in the text channel, once its grid is posted in the thread, recorded as delivered and the
    status message says it is done."""
    fake = world.fake
    handle = await fake.invoke_command("imagine", {"prompt": prompt, **options})
    status = await handle.wait_original()
    job_id = status_job(status)
    thread = await fake.wait_for(
        lambda: next((t for t in fake.threads_of(fake.text_channel) if t.id == status.id), None)
    )
    message = await fake.wait_for_message(thread, lambda m: job_of(m) == job_id and is_grid(m), timeout=WORK_TIMEOUT)
    await wait_delivered(world.store, job_id)
    await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=10)
    return Grid(message, thread)


@pytest_asyncio.fixture(loop_scope="module")
async def grid(world: World) -> Grid:
    return await make_grid(world, "a small red house", seed=7, steps=6)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def busy_world(backend: Backend) -> World:
    """A session to audit, recorded once: a grid, a bot restart, its buttons pressed while posts fail with 429
    and 500, /queue and /cancel. The bot is stopped and the logs closed before the tests read the records."""
    async with new_world(backend) as world:
        fake = world.fake
        grid = await make_grid(world, "a busy harbour", steps=2)
        await world.running.stop()
        world.running = await start_bot(world.config, world.store, fake)
        source = job_of(grid.message)
        fake.fail_next("POST", "/channels/*/messages", status=429, retry_after=0.05)
        fake.fail_next("POST", "/channels/*/messages", status=500)
        pressed = [
            await fake.click_button(grid.message, custom_id)
            for custom_id in (f"sl:u:{source}:1", f"sl:v:{source}:2", f"sl:r:{source}")
        ]
        for click in pressed:
            job_id = status_job((await click.wait_followups(1))[0])
            await wait_job(world.store, job_id, lambda j: j.is_finished, timeout=WORK_TIMEOUT)
            await wait_delivered(world.store, job_id)
        await (await fake.invoke_command("queue")).wait_followups(1)
        await (await fake.invoke_command("cancel", {"job": 999})).wait_followups(1)
    return world


def is_grid(message: FakeMessage) -> bool:
    ids = message.custom_ids()
    return (
        bool(message.attachments)
        and any(i.startswith("sl:u:") for i in ids)
        and any(i.startswith("sl:r:") for i in ids)
    )


def status_job(message: FakeMessage) -> int:
    job_id = job_of(message)
    assert job_id is not None, message.content
    return job_id


def edit_times(world: World, message: FakeMessage) -> list[float]:
    return [c.at for c in world.fake.calls.filter("PATCH", f"/channels/{message.channel_id}/messages/{message.id}")]


# ------------------------------------------------------------------------------------------------ /imagine
async def test_imagine_shows_progress_then_a_grid_with_nine_buttons(world: World) -> None:
    fake, store = world.fake, world.store
    handle = await fake.invoke_command("imagine", {"prompt": "a small red house", "seed": 7, "steps": 6})
    ack = await handle.wait_ack()
    assert ack.type == 5 and ack.elapsed_ms < 3000
    status = await handle.wait_original()
    assert "queued" in status.content
    job_id = status_job(status)
    [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
    assert thread.id == status.id and thread.name == "a small red house"
    grid = await fake.wait_for_message(thread, is_grid, timeout=WORK_TIMEOUT)
    assert job_of(grid) == job_id

    assert grid.custom_ids() == [
        *(f"sl:u:{job_id}:{n}" for n in range(1, 5)),
        f"sl:r:{job_id}",
        *(f"sl:v:{job_id}:{n}" for n in range(1, 5)),
        f"sl:dm:{job_id}",
        f"sl:del:{job_id}",
    ]
    [picture] = grid.attachments
    one = await store.artifact(job_id, 0, ArtifactKind.IMAGE)
    assert (picture.width, picture.height) == (2 * one.metadata["width"], 2 * one.metadata["height"])  # 2×2
    with Image.open(io.BytesIO(picture.data)) as image:
        assert image.size == (picture.width, picture.height)
    assert "a small red house" in grid.content and f"<@{fake.member.id}>" in grid.content

    final = await fake.wait_for(lambda: (m := fake.message(status.id)).content.startswith("✅") and m, timeout=10)
    history = [e["content"] for e in final.edits]
    assert any("%" in text or "…" in text for text in history), history  # progress was shown while it ran
    assert final.attachments == []  # the preview is gone once the job is done
    times = edit_times(world, status)
    assert all(b - a >= EDIT_INTERVAL * 0.9 for a, b in zip(times, times[1:])), times
    assert (await store.get(job_id)).status is JobStatus.SUCCEEDED
    assert await wait_delivered(store, job_id) == (grid.id,)


async def test_after_a_bot_restart_u1_on_the_old_grid_upscales(world: World, grid: Grid) -> None:
    fake = world.fake
    grid, thread = grid.message, grid.thread
    await world.running.stop()
    await fake.wait_for(lambda: not fake.connected, timeout=5)
    world.running = await start_bot(world.config, world.store, fake)  # a new bot, same store, as after a restart

    source = job_of(grid)
    click = await fake.click_button(grid, f"sl:u:{source}:1", user=fake.manager)  # anyone may press
    assert (await click.wait_ack()).type == 5
    [status] = await click.wait_followups(1)
    job_id = status_job(status)
    job = await world.store.get(job_id)
    assert (job.kind, job.parent_id, job.params["index"], job.user_id) == (JobKind.UPSCALE, source, 0, fake.manager.id)

    result = await fake.wait_for_message(
        thread, lambda m: job_of(m) == job_id and bool(m.attachments), timeout=WORK_TIMEOUT
    )
    assert result.custom_ids() == [
        f"sl:vs:{job_id}:1", f"sl:vx:{job_id}:1", f"sl:vr:{job_id}:1", f"sl:sq:{job_id}:1", f"sl:x4:{job_id}:1",
        f"sl:zo:{job_id}:1:20", f"sl:zo:{job_id}:1:15", f"sl:zc:{job_id}:1",
        *(f"sl:pn:{job_id}:1:{way}" for way in "lrud"),
        f"sl:dm:{job_id}", f"sl:del:{job_id}",
    ]  # fmt: skip
    assert [b["label"] for b in result.buttons()] == [
        "Vary (Subtle)", "Vary (Strong)", "🖌️ Vary (Region)", "🔲 Pick squares", "4× Real-ESRGAN",
        "Zoom Out 2×", "Zoom Out 1.5×", "🔍 Custom Zoom", "⬅️", "➡️", "⬆️", "⬇️", "✉️", "❌",
    ]  # fmt: skip
    width = (await world.store.artifact(source, 0)).metadata["width"]
    assert result.attachments[0].width > width
    assert f"<@{fake.manager.id}>" in result.content
    assert fake.gateway.identify_count == 2


async def test_v2_and_reroll_make_new_grids_delivered_once_despite_429_and_500(world: World, grid: Grid) -> None:
    fake, grid, thread = world.fake, grid.message, grid.thread
    source = job_of(grid)
    fake.fail_next("POST", "/channels/*/messages", status=429, retry_after=0.05)  # the first result post
    fake.delay_next("POST", "/channels/*/messages", 0.0)  # its retry goes through
    fake.fail_next("POST", "/channels/*/messages", status=500)  # the second result post

    vary = await fake.click_button(grid, f"sl:v:{source}:2")
    reroll = await fake.click_button(grid, f"sl:r:{source}")
    vary_id = status_job((await vary.wait_followups(1))[0])
    reroll_id = status_job((await reroll.wait_followups(1))[0])
    varied = await world.store.get(vary_id)
    assert (varied.kind, varied.parent_id, varied.params["index"]) == (JobKind.VARY, source, 1)
    assert (await world.store.get(reroll_id)).kind is JobKind.IMAGINE

    for job_id in (vary_id, reroll_id):
        await fake.wait_for(
            lambda job_id=job_id: any(job_of(m) == job_id and is_grid(m) for m in fake.messages_in(thread)),
            timeout=WORK_TIMEOUT,
        )
    await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
    for job_id in (vary_id, reroll_id):
        posted = [m for m in messages_of_job(fake, thread, job_id) if m.attachments]
        assert len(posted) == 1, f"job {job_id} posted {len(posted)} times"
        assert posted[0].custom_ids()[0] == f"sl:u:{job_id}:1"
    injected = [c.status for c in fake.calls.filter("POST", "/channels/*/messages") if c.injected]
    assert injected == [429, 500]
    original_seeds = (await world.store.artifact(source, 0, ArtifactKind.GRID)).metadata["seeds"]
    new_seeds = (await world.store.artifact(reroll_id, 0, ArtifactKind.GRID)).metadata["seeds"]
    assert new_seeds != original_seeds


# ------------------------------------------------------------------------------------------------ /story
async def test_story_gets_a_thread_named_after_its_title_pages_in_order_then_the_pdf(world: World) -> None:
    fake, store = world.fake, world.store
    handle = await fake.invoke_command("story", {"summary": "a cat finds a red ball in the garden", "pages": 2})
    assert (await handle.wait_ack()).type == 5
    status = await handle.wait_original()
    story_id = status_job(status)
    thread = await fake.wait_for(
        lambda: next((t for t in fake.threads_of(fake.text_channel) if t.id == status.id), None)
    )

    def book_posted():
        return next(
            (m for m in fake.messages_in(thread) if any(a.filename.endswith(".pdf") for a in m.attachments)), None
        )

    book = await fake.wait_for(book_posted, timeout=WORK_TIMEOUT)
    title = (await store.artifact(story_id, 0, ArtifactKind.TEXT)).metadata["title"]
    assert fake.channel(thread.id).name == title[:100]

    posted = [m for m in fake.messages_in(thread)]
    pages = [c for c in await store.children(story_id) if c.page_index is not None]
    assert [job_of(m) for m in posted] == [story_id, pages[0].id, pages[1].id, story_id]
    cover, first, second, _ = posted
    card = await store.artifact(story_id, 0, ArtifactKind.GRID)  # the cast card, when the story has a cast
    assert title in cover.content and bool(cover.attachments) == (card is not None)
    assert cover.custom_ids() == [f"sl:et:{story_id}"]
    for message, page in ((first, pages[0]), (second, pages[1])):
        assert message.content.startswith(f"**Page {page.page_index + 1}**")
        assert message.attachments[0].content_type == "image/png"
        ids = message.custom_ids()
        assert {f"sl:rd:{page.id}", f"sl:u:{page.id}:1", f"sl:n:{page.id}"} <= set(ids)
        assert ids[-2:] == [f"sl:vr:{page.id}:1", f"sl:sq:{page.id}:1"]  # 🖌️ Fix part of this page, 🔲 on their row
    [pdf] = book.attachments
    assert pdf.data.startswith(b"%PDF") and book.custom_ids() == [
        f"sl:c:{story_id}",
        f"sl:ab:{story_id}",
        f"sl:mv:{story_id}",
    ]
    await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=10)

    # ➕ Continue asks what happens next, then queues a story that continues this one.
    click = await fake.click_button(book, f"sl:c:{story_id}")
    assert (await click.wait_ack()).type == 9
    submitted = await click.submit_modal({"next": "the ball rolls into the pond", "pages": "1"})
    assert (await submitted.wait_ack()).type == 5
    next_id = status_job((await submitted.wait_followups(1))[0])
    chapter = await wait_job(store, next_id, lambda j: j.channel_id is not None, timeout=5)
    assert (chapter.kind, chapter.params["continue_from"], chapter.thread_id, chapter.channel_id) == (
        JobKind.STORY,
        story_id,
        None,
        thread.id,
    )
    cancel = await fake.invoke_command("cancel", {"job": next_id})
    [answer] = await cancel.wait_followups(1)
    assert answer.ephemeral and f"job {next_id}" in answer.content
    await wait_job(store, next_id, lambda j: j.is_finished, timeout=WORK_TIMEOUT)


async def test_two_characters_from_pictures_star_in_a_story_that_is_edited_and_continued(world: World) -> None:
    """Characters made from a picture, /story with both: the thread opens with the cast card; a page edited with
    ✏️ is redrawn on its seed with the new words, the updated book reads them, and ➕ Continue writes on from them."""
    fake, store = world.fake, world.store
    for name, seed in (("Bhna", 11), ("Pip", 12)):
        created = await fake.invoke_command(
            "character create",
            {
                "name": name,
                "picture": Upload(f"{name}.png", noisy_png(96, 96, seed=seed)),
                "description": f"{name} the toy",
            },
            user=fake.manager,
        )
        [done] = await created.wait_followups(1)
        assert "is ready" in done.content, done.content
    handle = await fake.invoke_command(
        "story", {"summary": "Bhna and Pip find a ball", "pages": 1, "character": "Bhna", "character2": "Pip"}
    )
    status = await handle.wait_original()
    story_id = status_job(status)
    assert (await store.get(story_id)).params["characters"] == ["Bhna", "Pip"]
    thread = await fake.wait_for(lambda: fake.channel(status.id) if fake.threads_of(fake.text_channel) else None)

    def pdf_after(after: int):
        return next(
            (
                m
                for m in fake.messages_in(thread)
                if m.id > after and any(a.filename.endswith(".pdf") for a in m.attachments)
            ),
            None,
        )

    book = await fake.wait_for(lambda: pdf_after(0), timeout=WORK_TIMEOUT)
    opening = fake.messages_in(thread)[0]
    assert job_of(opening) == story_id and opening.attachments[0].filename.endswith("_cast.png")
    assert "Who is who" in opening.content and "**Bhna** — Bhna the toy" in opening.content
    assert "**Pip** — Pip the toy" in opening.content
    cast = await store.artifacts(story_id)
    assert [a.metadata["character"] for a in cast if a.kind is ArtifactKind.IMAGE][:2] == ["Bhna", "Pip"]

    pages = [c for c in await store.children(story_id) if c.page_index is not None]
    first = next(m for m in fake.messages_in(thread) if job_of(m) == pages[0].id)
    click = await fake.click_button(first, f"sl:ed:{pages[0].id}")
    assert (await click.wait_ack()).type == 9
    edited_text = "Bhna and Pip fly a big yellow kite."
    saved = await click.submit_modal({"text": edited_text, "scene": "a cat and a toy fly a kite", "new_seed": "no"})
    edit_id = status_job((await saved.wait_followups(1))[0])
    redrawn = await fake.wait_for_message(
        thread, lambda m: job_of(m) == edit_id and bool(m.attachments), timeout=WORK_TIMEOUT
    )
    edit = await store.get(edit_id)
    assert edit.params["seed"] == pages[0].params["seed"] and edited_text in redrawn.content

    rebuilt = await fake.click_button(redrawn, f"sl:bk:{story_id}")
    [updated] = await rebuilt.wait_followups(1)
    assert updated.attachments[0].data.startswith(b"%PDF") and updated.attachments[0].data != book.attachments[0].data
    shelved = world.running.bot.books._shelf[story_id]
    assert shelved.plan.pages[0].text == edited_text  # the book laid out with the edited page

    more = await fake.click_button(updated, f"sl:c:{story_id}")
    assert (await more.wait_ack()).type == 9
    submitted = await more.submit_modal({"next": "they sail home", "pages": "1"})
    next_id = status_job((await submitted.wait_followups(1))[0])
    chapter = await wait_job(store, next_id, lambda j: j.is_finished, timeout=WORK_TIMEOUT)
    assert chapter.status is JobStatus.SUCCEEDED, chapter.error
    plan = json.loads((await store.artifact(next_id, 0, ArtifactKind.TEXT)).data)
    assert plan["pages"][0]["text"] == edited_text and len(plan["pages"]) == 2
    [new_page] = await store.children(next_id)
    assert new_page.params["reference"]["job"] == story_id  # the first chapter's cast portraits


# ------------------------------------------------------------------------------------------------ limits and losses
async def test_tiny_upload_limit_reencodes_the_grid_and_says_so(world: World) -> None:
    fake = world.fake
    fake.set_attachment_size_limit(2500)
    try:
        handle = await fake.invoke_command("imagine", {"prompt": "a noisy forest", "steps": 2})
        job_id = status_job(await handle.wait_original())
        thread = await fake.wait_for(
            lambda: next((t for t in fake.threads_of(fake.text_channel) if t.id == handle.original_response().id), None)
        )
        grid = await fake.wait_for_message(
            thread, lambda m: job_of(m) == job_id and bool(m.attachments), timeout=WORK_TIMEOUT
        )
    finally:
        fake.set_attachment_size_limit(DEFAULT_ATTACHMENT_LIMIT)
    [picture] = grid.attachments
    stored = await world.store.artifact(job_id, 0, ArtifactKind.GRID)
    assert len(stored.data) > 2500 >= len(picture.data)  # the store keeps the full PNG
    assert picture.filename.endswith((".webp", ".jpg")) and "re-encoded" in grid.content
    assert "2 KB upload limit" in grid.content


async def test_deleted_status_message_does_not_lose_the_result(world: World) -> None:
    fake = world.fake
    handle = await fake.invoke_command(
        "imagine", {"prompt": "a lighthouse", "steps": 2}, channel=fake.no_threads_channel
    )
    status = await handle.wait_original()
    job_id = status_job(status)
    await fake.wait_for(lambda: "threads are not allowed" in fake.message(status.id).content, timeout=10)
    fake.delete_message(fake.no_threads_channel, status)
    grid = await fake.wait_for_message(
        fake.no_threads_channel, lambda m: job_of(m) == job_id and is_grid(m), timeout=WORK_TIMEOUT
    )
    assert fake.threads_of(fake.no_threads_channel) == []
    assert await wait_delivered(world.store, job_id) == (grid.id,)
    assert [m.id for m in messages_of_job(fake, fake.no_threads_channel, job_id)] == [grid.id]


async def test_worker_killed_mid_imagine_still_gives_exactly_one_grid(world: World) -> None:
    fake, store = world.fake, world.store
    handle = await fake.invoke_command("imagine", {"prompt": "a windmill at dusk", "steps": 40})
    job_id = status_job(await handle.wait_original())
    await wait_job(
        store, job_id, lambda j: j.status is JobStatus.RUNNING and j.progress.step >= 1, timeout=WORK_TIMEOUT
    )
    victim = world.worker.pid
    os.kill(victim, signal.SIGKILL)
    job = await wait_job(store, job_id, lambda j: j.is_finished, timeout=WORK_TIMEOUT)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 1 and job.runs == 2
    assert world.worker.pid != victim
    thread = fake.channel(handle.original_response().id)
    await fake.wait_for(lambda: any(is_grid(m) for m in messages_of_job(fake, thread, job_id)), timeout=10)
    await asyncio.sleep(0.5)
    assert len([m for m in messages_of_job(fake, thread, job_id) if m.attachments]) == 1


async def test_only_the_first_response_uses_the_interaction_token(busy_world: World) -> None:
    fake = busy_world.fake
    deferred = [h for h in fake.interactions if h.ack is not None and h.ack.type == 5]
    assert len(fake.calls.filter("POST", "/webhooks/*")) == len(deferred) > 5  # one followup each: the status
    assert fake.calls.filter("PATCH", "/webhooks/*") == [] and fake.calls.filter("DELETE", "/webhooks/*") == []


async def test_the_token_never_leaks(busy_world: World) -> None:
    world = busy_world
    assert world.fake.token_leaks() == []
    assert world.fake.token not in world.logs.text
    assert len(world.logs.lines) > 50  # the logs were really collected


# ------------------------------------------------------------------------------------- pictures in (real worker)
def upload(name: str, seed: int) -> Upload:
    return Upload(name, noisy_png(72, 56, seed=seed))


async def test_imagine_with_a_picture_draws_through_the_ip_adapter(world: World) -> None:
    fake = world.fake
    options = {"prompt": "a cosy cottage", "seed": 3, "steps": 3, "image": upload("cottage.png", 1)}
    grid = await make_grid(world, **options, image_weight=0.6)
    job_id = job_of(grid.message)
    image = await world.store.artifact(job_id, 0, ArtifactKind.IMAGE)
    parameters = read_png_parameters(Image.open(io.BytesIO(image.data)))
    assert parameters.extra["IP-Adapter"] == "ip-adapter_sd15" and parameters.extra["IP-Adapter weight"] == "0.6"
    assert grid.message.custom_ids()[-2:] == [f"sl:dm:{job_id}", f"sl:del:{job_id}"]

    deleted = await fake.click_button(grid.message, f"sl:del:{job_id}")
    [done] = await deleted.wait_followups(1)
    assert done.ephemeral and fake.message(grid.message.id).deleted
    assert await world.store.artifacts(job_id) == [] and await world.store.job_inputs(job_id) == []


async def test_blend_mixes_three_pictures_into_a_grid(world: World) -> None:
    fake = world.fake
    pictures = {f"image{i}": upload(f"p{i}.png", i) for i in (1, 2, 3)}
    handle = await fake.invoke_command("blend", {**pictures, "seed": 4})
    job_id = status_job(await handle.wait_original())
    thread = await fake.wait_for(lambda: next(iter(fake.threads_of(fake.text_channel)), None))
    message = await fake.wait_for_message(thread, lambda m: job_of(m) == job_id and is_grid(m), timeout=WORK_TIMEOUT)
    image = await world.store.artifact(job_id, 0, ArtifactKind.IMAGE)
    assert read_png_parameters(Image.open(io.BytesIO(image.data))).extra["IP-Adapter images"] == "3"
    assert "🌀" in message.content


async def test_describe_suggests_four_prompts_and_a_button_draws_one(world: World) -> None:
    fake = world.fake
    handle = await fake.invoke_command("describe", {"image": upload("photo.png", 7)})
    job_id = status_job(await handle.wait_original())
    result = await fake.wait_for_message(
        fake.text_channel, lambda m: job_of(m) == job_id and bool(m.custom_ids()), timeout=WORK_TIMEOUT
    )
    described = json.loads((await world.store.artifact(job_id, 0, ArtifactKind.TEXT)).data)
    assert len(described["prompts"]) == 4
    assert result.custom_ids()[:4] == [f"sl:d:{job_id}:{n}" for n in range(1, 5)]
    pressed = await fake.click_button(result, f"sl:d:{job_id}:3")
    imagined = await world.store.get(status_job((await pressed.wait_followups(1))[0]))
    assert imagined.kind is JobKind.IMAGINE and imagined.params["prompt"] == described["prompts"][2]
    await wait_job(world.store, imagined.id, lambda j: j.is_finished, timeout=WORK_TIMEOUT)
    assert (await world.store.get(imagined.id)).status is JobStatus.SUCCEEDED
