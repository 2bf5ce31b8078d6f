"""Buttons and forms act only where their job belongs, and the 📕 Updated book button costs the bot little.

A custom ID is only a number a client sends back; these tests send custom IDs naming jobs of another server
(or another user's direct messages) on a message of the bot's, as a forged interaction would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import Job, JobKind, JobStatus
from tests.support.bot import FastWorker, bot_config, fast_worker, job_of, running_bot
from tests.support.fakediscord import FakeChannel, FakeDiscord, FakeMessage, FakeUser
from tests.support.images import png


async def finished(store: AsyncJobStore, kind: JobKind, params: dict, user: FakeUser, channel: FakeChannel) -> Job:
    job = await store.enqueue(
        kind, params, user_id=user.id, guild_id=channel.guild_id, channel_id=channel.id, enforce_caps=False
    )
    claimed = await store.claim("fast/1", [kind.value])
    assert claimed is not None and claimed.id == job.id
    artifacts, followups = FastWorker(store).results(claimed)
    await store.complete(job.id, "fast/1", artifacts, followups)
    return await store.get(job.id)


def forged(fake: FakeDiscord, channel: FakeChannel, custom_ids: list[str]) -> FakeMessage:
    """A message of the bot's in ``channel`` whose buttons carry ``custom_ids``."""
    rows = [
        {
            "type": 1,
            "components": [{"type": 2, "style": 2, "label": "x", "custom_id": c} for c in custom_ids[i : i + 5]],
        }
        for i in range(0, len(custom_ids), 5)
    ]
    return fake.state.create_message(channel.id, fake.bot_user, {"content": "look", "components": rows})


async def test_buttons_refuse_jobs_of_another_server_or_of_another_users_direct_messages(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    elsewhere = fake.add_guild("elsewhere")
    [their_channel] = [c for c in fake.state.channels.values() if c.guild_id == elsewhere.id and not c.is_thread]
    picture = await finished(store, JobKind.IMAGINE, {"prompt": "theirs"}, fake.owner, their_channel)
    story = await finished(store, JobKind.STORY, {"summary": "their story"}, fake.owner, their_channel)
    page = (await store.children(story.id))[0]
    private = await finished(store, JobKind.IMAGINE, {"prompt": "mine"}, fake.member, fake.dm_channel)
    p, s, g = picture.id, story.id, page.id
    custom_ids = [
        f"sl:u:{p}:1", f"sl:v:{p}:2", f"sl:r:{p}", f"sl:vs:{p}:1", f"sl:vx:{p}:1", f"sl:x4:{p}:1",
        f"sl:rd:{g}", f"sl:c:{s}", f"sl:bk:{s}", f"sl:ed:{g}", f"sl:et:{s}",
    ]  # fmt: skip
    async with running_bot(bot_config(tmp_path), store, fake):
        jobs_before = len(await store.list_jobs(tuple(JobStatus)))
        message = forged(fake, fake.text_channel, custom_ids)
        for custom_id in custom_ids:
            click = await fake.click_button(message, custom_id)
            ack = await click.wait_ack()
            reply = click.original_response()
            assert ack.type == 4 and reply.ephemeral, custom_id  # refused at once, privately, no form opened
            assert "not one of this server's" in reply.content, (custom_id, reply.content)

        someone_else = forged(fake, fake.dm_with(fake.owner), [f"sl:u:{private.id}:1"])
        click = await fake.click_button(someone_else, f"sl:u:{private.id}:1", user=fake.owner)
        await click.wait_ack()
        assert click.original_response().ephemeral and "not one of yours" in click.original_response().content

        unknown = forged(fake, fake.text_channel, ["sl:u:999999:1"])
        click = await fake.click_button(unknown, "sl:u:999999:1")
        await click.wait_ack()
        assert "not one of this server's" in click.original_response().content  # nothing learned either way
        assert len(await store.list_jobs(tuple(JobStatus))) == jobs_before

        mine = forged(fake, fake.dm_channel, [f"sl:v:{private.id}:1"])  # the user's own job, in their own DMs
        click = await fake.click_button(mine, f"sl:v:{private.id}:1", user=fake.member)
        assert (await click.wait_ack()).type == 5
        [status] = await click.wait_followups(1)
        varied = await store.get(job_of(status))
        assert (varied.kind, varied.parent_id, varied.user_id) == (JobKind.VARY, private.id, fake.member.id)


async def test_the_updated_book_is_laid_out_once_per_version_and_not_reposted_unchanged(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake) as bot, fast_worker(store) as worker:
        handle = await fake.invoke_command("story", {"summary": "a cat and a red ball", "pages": 2})
        story_id = job_of(await handle.wait_original())
        thread = await fake.wait_for(
            lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
        )
        await fake.wait_for_message(thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments))
        page = next(m for m in fake.messages_in(thread) if m.content.startswith("**Page 2"))
        worker.image = png(8, 8, (20, 40, 220))
        redraw = await fake.click_button(page, f"sl:rd:{job_of(page)}")
        redraw_id = job_of((await redraw.wait_followups(1))[0])
        redrawn = await fake.wait_for_message(thread, lambda m: job_of(m) == redraw_id and bool(m.attachments))

        first = await fake.click_button(redrawn, f"sl:bk:{story_id}")
        [book] = await first.wait_followups(1)
        assert book.attachments[0].data.startswith(b"%PDF") and bot.books.layouts == 1
        presses = await asyncio.gather(*(fake.click_button(redrawn, f"sl:bk:{story_id}") for _ in range(5)))
        for press in presses:
            assert (await press.wait_ack()).type == 4
            reply = press.original_response()
            assert reply.ephemeral and "has not changed" in reply.content
        assert bot.books.layouts == 1

        bot.books._repeat_seconds = 0.0  # as if minutes had passed: posted again, but not laid out again
        again = await fake.click_button(redrawn, f"sl:bk:{story_id}")
        [repeat] = await again.wait_followups(1)
        assert repeat.attachments[0].data == book.attachments[0].data and bot.books.layouts == 1

        worker.image = png(8, 8, (220, 200, 20))  # another redraw: a new version of the book
        second = await fake.click_button(redrawn, f"sl:rd:{job_of(redrawn)}")
        second_id = job_of((await second.wait_followups(1))[0])
        newest = await fake.wait_for_message(thread, lambda m: job_of(m) == second_id and bool(m.attachments))
        changed = await fake.click_button(newest, f"sl:bk:{story_id}")
        [updated] = await changed.wait_followups(1)
        assert updated.attachments[0].data != book.attachments[0].data and bot.books.layouts == 2
