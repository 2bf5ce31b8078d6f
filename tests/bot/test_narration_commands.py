"""Read-aloud choices in the bot with a fast stand-in worker: voices and speeds checked before anything is
queued, the default voice and speed kept by /settings, and 🔊 refused for a language no voice speaks."""

from __future__ import annotations

from pathlib import Path

from storyloom.config import load_config
from storyloom.queue.job import JobKind, JobStatus
from tests.support.bot import bot_config, fast_worker, job_of, running_bot
from tests.support.fakediscord import FakeDiscord

VOICES = "voices: bramble, clover, river, willow"


async def test_unknown_voices_are_refused_with_the_voices_there_are(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        for name, options in (("story", {"summary": "a cat", "voice": "granny"}), ("settings", {"voice": "granny"})):
            handle = await fake.invoke_command(name, options)
            await handle.wait_ack()
            reply = handle.original_response()
            assert reply.ephemeral and f"voice 'granny' is unknown; {VOICES}" in reply.content, reply.content
        assert await store.list_jobs(tuple(JobStatus)) == []

        slow = await fake.invoke_command("settings", {"speed": 0.3})
        await slow.wait_ack()
        assert "speed 0.3 is not allowed; use 0.5 (slow) to 2.0 (fast)" in slow.original_response().content

        saved = await fake.invoke_command("settings", {"voice": "Clover", "speed": 0.75})
        [answer] = await saved.wait_followups(1)
        assert "narration voice: clover" in answer.content and "narration speed: 0.75" in answer.content
        assert (await store.user_settings(fake.member.id)) == {"voice": "clover", "speed": "0.75"}


async def test_story_narrate_takes_the_default_voice_and_speaker_presses_use_it(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        await (await fake.invoke_command("settings", {"voice": "bramble", "speed": 1.25})).wait_followups(1)
        handle = await fake.invoke_command("story", {"summary": "a cat and a red ball", "pages": 2, "narrate": True})
        story_id = job_of(await handle.wait_original())
        assert (await store.get(story_id)).params["narrate"] == {"voice": "bramble", "speed": 1.25}
        thread = await fake.wait_for(
            lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
        )
        page = await fake.wait_for_message(thread, lambda m: m.content.startswith("**Page 2**"), timeout=10)
        click = await fake.click_button(page, f"sl:n:{job_of(page)}")
        [status] = await click.wait_followups(1)
        narrate = await store.get(job_of(status))
        assert narrate.kind is JobKind.NARRATE and narrate.parent_id == job_of(page)
        assert narrate.params["narration"] == {"voice": "bramble", "speed": 1.25} and narrate.params["language"] == "en"
        assert narrate.params["pages"] == [{"number": 2, "text": "Text of page 2.", "picture_job": job_of(page)}]


async def test_a_language_no_voice_speaks_is_refused_naming_the_ones_there_are(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    overrides = {
        "paths": {"data_dir": str(tmp_path / "data")},
        "bot": {"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
        "models": {"narration": {"zh": "BricksDisplay/vits-cmn"}},
    }
    config = load_config(None, environ={}, overrides=overrides)
    async with running_bot(config, store, fake), fast_worker(store):
        handle = await fake.invoke_command("story", {"summary": "a cat and a red ball", "pages": 1})
        story_id = job_of(await handle.wait_original())
        thread = await fake.wait_for(
            lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
        )
        book = await fake.wait_for_message(thread, lambda m: f"sl:ab:{story_id}" in m.custom_ids(), timeout=10)
        before = len(await store.list_jobs(tuple(JobStatus)))
        click = await fake.click_button(book, f"sl:ab:{story_id}")
        assert (await click.wait_ack()).type == 4  # answered at once, privately: nothing was queued
        refusal = click.original_response()
        assert refusal.ephemeral
        assert "narration cannot speak English (en); it speaks Chinese (zh)" in refusal.content, refusal.content
        assert len(await store.list_jobs(tuple(JobStatus))) == before
