"""Read-aloud books end to end: the bot against the fake Discord, a real worker on the tiny models (story LM,
Stable Diffusion and the tiny VITS voices), the recordings decoded with PyAV."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from storyloom.models.narration.media import probe
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue.job import ArtifactKind, JobKind
from tests.support.bot import SupervisedWorker, job_of, open_store, start_bot
from tests.support.fakediscord import FakeDiscord, FakeMessage
from tests.support.fakediscord.state import DEFAULT_ATTACHMENT_LIMIT

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORK_TIMEOUT = 240.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def backend(tmp_path_factory, tiny_models) -> AsyncIterator[tuple]:
    data = tmp_path_factory.mktemp("narration-e2e") / "data"
    config = make_tiny_config(
        data, tiny_models,
        image={"steps": 2}, story={"max_new_tokens": 24},
        bot={"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
        worker={"progress_interval": 0.1},
    )  # fmt: skip
    store = await open_store(config)
    worker = SupervisedWorker(config).start()
    try:
        yield config, store
    finally:
        worker.stop()
        await store.close()


def attachment_named(suffix: str):
    return lambda m: any(a.filename.endswith(suffix) for a in m.attachments)


async def pressed_result(fake: FakeDiscord, message: FakeMessage, custom_id: str, channel, suffix: str) -> FakeMessage:
    """Press ``custom_id`` on ``message`` and wait for the result of the job it queued in ``channel``."""
    click = await fake.click_button(message, custom_id)
    [status] = await click.wait_followups(1)
    job_id = job_of(status)
    assert job_id is not None, status.content
    return await fake.wait_for_message(
        channel, lambda m: job_of(m) == job_id and m.id != status.id and m.content.startswith(suffix),
        timeout=WORK_TIMEOUT,
    )  # fmt: skip


async def test_a_story_read_aloud_page_by_page_then_as_audiobook_and_video(backend) -> None:
    config, store = backend
    async with FakeDiscord() as fake:
        running = await start_bot(config, store, fake)
        try:
            await _read_aloud(fake, store)
        finally:
            await running.stop()


async def _read_aloud(fake: FakeDiscord, store) -> None:
    handle = await fake.invoke_command(
        "story", {"summary": "a cat finds a red ball in the garden", "pages": 2, "narrate": True, "voice": "river"}
    )
    status = await handle.wait_original()
    story_id = job_of(status)
    thread = await fake.wait_for(
        lambda: next((t for t in fake.threads_of(fake.text_channel) if t.id == status.id), None)
    )
    book = await fake.wait_for_message(thread, attachment_named(".pdf"), timeout=WORK_TIMEOUT)
    assert book.custom_ids() == [f"sl:c:{story_id}", f"sl:ab:{story_id}", f"sl:mv:{story_id}"]
    pages = [c for c in await store.children(story_id) if c.kind is JobKind.STORY_PAGE]
    plan = await store.artifact(story_id, 0, ArtifactKind.TEXT)
    assert (pages[0].params["narrate"], pages[0].params["plan"]["language"]) == ({"voice": "river"}, "en"), plan

    # narrate:True — under each page, its recording, in page order.
    posted = fake.messages_in(thread)
    for page in pages:
        number = page.page_index + 1
        [picture] = [m for m in posted if job_of(m) == page.id and attachment_named(".png")(m)]
        assert {f"sl:rd:{page.id}", f"sl:u:{page.id}:1", f"sl:n:{page.id}"} <= set(picture.custom_ids())
        [audio] = [m for m in posted if job_of(m) == page.id and attachment_named(".ogg")(m)]
        assert posted.index(audio) == posted.index(picture) + 1 and f"**Page {number}**" in audio.content
        info = probe(audio.attachments[0].data)
        [stored] = [a for a in await store.artifacts(page.id) if a.kind is ArtifactKind.FILE]
        assert info.streams == ("audio",) and info.audio_rate == 48000 and info.audio_seconds > 0
        assert info.audio_seconds == pytest.approx(stored.metadata["seconds"], abs=0.03)

    # 🔊 on page 1: the same recording as narrate:True made (same text, voice, speed, model and seed).
    first = next(m for m in posted if job_of(m) == pages[0].id and attachment_named(".png")(m))
    await (await fake.invoke_command("settings", {"voice": "river"})).wait_followups(1)
    spoken = await pressed_result(fake, first, f"sl:n:{pages[0].id}", thread, "🔊")
    [ogg] = spoken.attachments
    earlier = next(m for m in posted if job_of(m) == pages[0].id and attachment_named(".ogg")(m))
    assert ogg.filename == "page-1.ogg" and ogg.data == earlier.attachments[0].data

    # The same page where uploads are smaller: re-encoded at a lower bitrate to fit, and the message says so.
    fake.set_attachment_size_limit(len(ogg.data) * 2 // 3)
    try:
        smaller = await pressed_result(fake, first, f"sl:n:{pages[0].id}", thread, "🔊")
    finally:
        fake.set_attachment_size_limit(DEFAULT_ATTACHMENT_LIMIT)
    [fitted] = smaller.attachments
    assert len(fitted.data) <= len(ogg.data) * 2 // 3 and "re-encoded at" in smaller.content
    assert probe(fitted.data).audio_seconds == pytest.approx(probe(ogg.data).audio_seconds, abs=0.03)

    # 🎧: one M4A, a chapter at the start of every page.
    audiobook = await pressed_result(fake, book, f"sl:ab:{story_id}", thread, "🎧")
    [m4a] = audiobook.attachments
    info = probe(m4a.data)
    assert m4a.filename.endswith(".m4a") and info.streams == ("audio",)
    assert [title for _, _, title in info.chapters] == ["Page 1", "Page 2"]
    assert info.chapters[0][0] == 0.0 and info.chapters[0][1] == pytest.approx(info.chapters[1][0])

    # 🎬: one video stream and one audio stream of the same length as the audiobook.
    video = await pressed_result(fake, book, f"sl:mv:{story_id}", thread, "🎬")
    [mp4] = video.attachments
    shown = probe(mp4.data)
    assert mp4.filename.endswith(".mp4") and shown.streams == ("video", "audio")
    assert shown.audio_seconds == pytest.approx(info.audio_seconds, abs=0.05)
    assert len(shown.chapters) == 2

    # A video larger than the channel's upload limit: the message says so instead of failing.
    fake.set_attachment_size_limit(len(mp4.data) // 2)
    try:
        refused = await pressed_result(fake, book, f"sl:mv:{story_id}", thread, "🎬")
    finally:
        fake.set_attachment_size_limit(DEFAULT_ATTACHMENT_LIMIT)
    assert refused.attachments == [] and "larger than this channel's upload limit" in refused.content
